"""A change the SaaS carried out whose answer we never heard. A HubSpot GDPR delete, its worker gone
before the answer was kept (the try stopped in process while HubSpot's 204 is held back): the retry
goes on from the run's journal, sends the delete again and takes HubSpot's answer to it (404 for a
contact already gone by id; 204 again by address) as the first try's doing: the erasure is done,
the contact counted as deleted and in the ledger, never "not found" nor an error. A Stripe POST
whose answer did not come in time: its retry, with the same Idempotency-Key, meets Stripe's 409
while Stripe still carries out the first, and is tried again. Stripe's and Mailchimp's windows
are killed for real in tests/test_saas_crash.py and tests/test_saas_long_runs.py; GA4's in
tests/test_saas_ga4.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from devstack.saas.stripe import create_stripe_app
from policy.model import DEFAULT_POLICY
from tests.saas_runs_support import HeldAnswer
from tests.saas_support import connector, http_policy, hubspot_served, stripe_config, stripe_configured, subject
from tests.support import stored_request, unique_email
from tests.yaml_files import read_yaml


@pytest.mark.parametrize("blocklist", [False, True], ids=["by-id", "by-address"])
async def test_a_hubspot_delete_whose_answer_was_lost_is_done_on_the_retry(pool, settings, monkeypatch, tmp_path,
                                                                          blocklist):
    email = unique_email("hubspot-lost")
    rid = await stored_request(pool, settings, "hubspot-lost", "erasure", email=email)
    config = read_yaml(DEFAULT_POLICY.parent / "http/hubspot.yaml")
    config["limits"]["per_second"] = 50  # (four searches in all: under HubSpot's five a second)
    config["vars"]["blocklist_email"] = blocklist
    loaded = http_policy(tmp_path, {"crm_hubspot": {"label": "HubSpot CRM", "connector": "http", "config": config}})
    async with hubspot_served(monkeypatch, tmp_path) as (app, _, _url):
        contact = app.state.data.add_contact(email, "Ada", "Lovelace")
        gate, carried_out = asyncio.Event(), asyncio.Event()

        def held(request: Request, document: Any) -> Response:
            carried_out.set()  # HubSpot has deleted the contact; its answer is not heard
            return HeldAnswer(gate, Response(status_code=204))

        app.state.standin.tamper("/gdpr-delete", held, method="POST")
        first = connector(loaded, "crm_hubspot", pool)
        try:
            trying = asyncio.ensure_future(first.erase(subject(email, rid)))
            await asyncio.wait_for(carried_out.wait(), 30)
            trying.cancel()  # the worker dies
            await asyncio.gather(trying, return_exceptions=True)
        finally:
            app.state.standin.tampers.clear()
            gate.set()
            await first.close()
        retry = connector(loaded, "crm_hubspot", pool)
        try:
            outcome = await retry.erase(subject(email, rid))
        finally:
            await retry.close()
        deletes = [s.status for s in app.state.standin.requests("POST", "/gdpr-delete")]
    assert outcome.status == "done" and outcome.datasets["contacts"] == {"found": 1, "deleted": 1}
    assert outcome.erased == {"contacts": [(contact, "deleted")]}
    assert contact not in app.state.data.contacts
    assert deletes == [204, 204] if blocklist else deletes == [204, 404]


async def test_a_stripe_post_whose_key_is_still_in_use_is_tried_again(pool, monkeypatch, tmp_path):
    """A customer the accounting hold keeps is minimised. Stripe carries out the POST and its
    answer does not come in time (half a second here): the retry, with the same Idempotency-Key,
    meets Stripe's 409 idempotency_key_in_use (the first still being carried out), which Stripe
    documents as saving no answer and to be tried again; the next try gets the first's answer
    replayed. Before, the 409 was a refusal: the task needed staff for a change Stripe had made."""
    app = create_stripe_app("sk_test_in_use")
    customer = app.state.data.add_customer("ada@example.com", "Ada Lovelace", phone="+32 470 00 00 00")
    app.state.data.add_invoice(customer, int(time.time()) - 30 * 86400)
    gate, first = asyncio.Event(), asyncio.Event()

    def slow_first(request: Request, document: Any) -> Response:
        if first.is_set():
            return JSONResponse(document)
        first.set()  # carried out; its answer outlasts the wait, and its key is in use meanwhile
        app.state.standin.inject(409, path=f"/v1/customers/{customer}", times=1)
        return HeldAnswer(gate, JSONResponse(document))

    app.state.standin.tamper(f"/v1/customers/{customer}", slow_first, method="POST")
    config = stripe_config()
    config["timeout_seconds"] = 0.5
    config["retry"]["backoff_seconds"] = 0.1
    async with stripe_configured(app, "sk_test_in_use", config, monkeypatch, tmp_path, pool) as system:
        try:
            outcome = await system.erase(subject("ada@example.com"))
        finally:
            gate.set()  # the first answer goes (to nobody) before the stand-in stops
    posts = app.state.standin.requests("POST", f"/v1/customers/{customer}")
    assert [p.status for p in posts] == [200, 409, 200]
    assert len({p.headers["idempotency-key"] for p in posts}) == 1
    assert outcome.status == "done" and outcome.datasets["customers"]["minimised"] == 1
    assert app.state.data.customers[customer]["phone"] is None
