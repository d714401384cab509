"""End to end: an erasure request through DataSubjectRequestWorkflow reaches http systems (Stripe,
GA4) beside the demo systems. GA4 is asked about the client ids the analytics data held even
though the analytics erasure runs at the same time, Stripe keeps what the billing hold covers,
and the response letter says both."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import asyncpg
import pytest

from devstack.saas.ga4 import create_ga4_app, new_service_account
from devstack.saas.stripe import create_stripe_app
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack, served
from tests.saas_support import http_system
from tests.support import staff_headers, text_of, wait_for_letter
from workers.dsr_worker import build_worker


@pytest.fixture
async def saas(monkeypatch, tmp_path):
    google, stripe = create_ga4_app(), create_stripe_app("sk_test_e2e")
    account = new_service_account()
    google.state.data.trust(account)
    async with served(google) as google_url, served(stripe) as stripe_url:
        monkeypatch.setenv("GA4_API_BASE", f"{google_url}/analytics/v3")
        monkeypatch.setenv("GA4_TOKEN_URL", f"{google_url}/token")
        monkeypatch.setenv("GA4_SERVICE_ACCOUNT", json.dumps(account))
        monkeypatch.setenv("GA4_PROPERTY_ID", str(uuid.uuid4().int % 10**9))
        monkeypatch.setenv("STRIPE_API_BASE", stripe_url)
        monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_e2e")
        yield google, stripe


async def test_erasure_through_stripe_and_ga4(saas, postgres, settings, pool, dev_server, tmp_path, mail_sink):
    google, stripe = saas
    customer = stripe.state.data.add_customer("ada@example.com", "Ada Lovelace", phone="+32 470 00 00 00")
    stripe.state.data.add_invoice(customer, int(time.time()) - 86400)
    systems = {"billing_stripe": http_system("http/stripe.yaml", "Stripe (card payments)"),
               "ga4": http_system("http/ga4.yaml", "Google Analytics 4")}
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, extra_systems=systems) as stack:
        conn = await asyncpg.connect(stack.databases["analytics"])
        try:
            client_ids = {r["client_id"] for r in await conn.fetch(
                "SELECT DISTINCT e.client_id FROM page_events e JOIN users u USING (user_id) "
                "WHERE u.email = 'ada@example.com' AND e.client_id IS NOT NULL")}
        finally:
            await conn.close()
        assert client_ids
        # The property knows each of Ada's browsers by its client id, which the analytics system
        # keeps as the _ga cookie's value: "GA1.1." and then the client id.
        browsers = {client_id.split(".", 2)[2] for client_id in client_ids}
        google.state.data.users = {("CLIENT_ID", browser) for browser in browsers}
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "identity_attested": True, "subject": {"email": "ada@example.com"}})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 120)
            letter = text_of(await wait_for_letter(mail_sink, rid, "response"))
        conn = await asyncpg.connect(stack.databases["analytics"])
        try:
            left = await conn.fetchval(
                "SELECT count(*) FROM page_events WHERE client_id = ANY($1::text[])", list(client_ids))
        finally:
            await conn.close()
    assert left == 0  # the analytics system erased them meanwhile
    sent = {(r["type"], r["userId"]) for r in google.state.data.requests}
    # Each browser asked for by the id Google knows, and so erased: before, the requests named the
    # cookie values, which Google accepts and erases nothing for.
    assert {value for kind, value in sent if kind == "CLIENT_ID"} == browsers
    assert google.state.data.users == set() and google.state.data.erased == {("CLIENT_ID", b) for b in browsers}
    assert any(kind == "USER_ID" for kind, _ in sent)
    tasks = {r["system"]: r for r in await pool.fetch("SELECT * FROM system_tasks WHERE request_id = $1", uuid.UUID(rid))}
    assert tasks["ga4"]["status"] == "done" and tasks["billing_stripe"]["status"] == "done"
    assert tasks["billing_stripe"]["kept"] == 2  # the customer and its invoice
    assert stripe.state.data.customers[customer]["phone"] is None
    assert "Google accepted our request to delete your Google Analytics data" in letter
    assert "within 72 hours" in letter
    # The datasets' labels, one law's records in one item (activities/letter_outcome.py).
    assert re.search(r"\b2 records of customer details and invoices in our system “Stripe \(card payments\)”", letter)
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1 AND system = 'billing_stripe'",
                               uuid.UUID(rid)) == 2


async def test_a_system_that_refuses_to_be_read_holds_the_package_back_and_alerts_staff(
        saas, postgres, settings, pool, dev_server, tmp_path, mail_sink, monkeypatch):
    _, stripe = saas
    stripe.state.data.add_customer("grace@example.com", "Grace Hopper")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_revoked")
    systems = {"billing_stripe": http_system("http/stripe.yaml", "Stripe (card payments)")}
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, extra_systems=systems) as stack:
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "access", "identity_attested": True, "subject": {"email": "grace@example.com"}})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            alert = text_of(await wait_for_letter(mail_sink, rid, "staff_alert", timeout=60))
            assert "Stripe (card payments)" in alert and "HTTP 401" in alert and "grace@example.com" not in alert
            task = await pool.fetchrow("SELECT * FROM system_tasks WHERE request_id = $1", uuid.UUID(rid))
            assert (task["system"], task["action"], task["status"]) == ("billing_stripe", "access", "needs_attention")
            listed = await http.get("/v1/requests", params={"q": rid}, headers=await staff_headers(pool, "agent"))
            assert listed.json()["items"][0]["needs_attention"] is True

            monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_e2e")  # the key is put right
            state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 120)
            assert state["status"] == "completed"
            assert state["package"]["systems"]["billing_stripe"] == 1  # Grace's customer record
            assert await pool.fetchval("SELECT status FROM system_tasks WHERE request_id = $1",
                                       uuid.UUID(rid)) == "done"
            item = (await http.get("/v1/requests", params={"q": rid},
                                   headers=await staff_headers(pool, "agent"))).json()["items"][0]
            assert item["needs_attention"] is False
