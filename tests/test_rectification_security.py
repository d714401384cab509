"""Issue 14, items 1 and 7, as attacks on the real stack (API over HTTP, Postgres, Temporal, the
demo systems): rectification limited to what the policy declares, and changes (a rectification,
an erasure an agent attested) approved by compliance before they reach a system; identities that
point at different people reach no one. docs/security.md, "Rectification and erasure by the
wrong hands"."""

from __future__ import annotations

import asyncio
import re
import uuid

import asyncpg
import pytest

from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import (
    assert_problem,
    console_sign_in,
    letters_for,
    live_view,
    staff_headers,
    unique_email,
    verification_code,
    wait_for_letter,
)
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow

GATED = {"approval_required_for": ["access", "portability", "rectification", "attested_erasure"]}


@pytest.fixture
async def stack(postgres, settings, dev_server, tmp_path):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, policy_updates=GATED) as running:
        yield running


async def _rows(url: str, sql: str) -> list[tuple]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def _snapshot(stack) -> dict[str, list[tuple]]:
    """Every row the attacks aim at, to show nothing changed."""
    db = stack.databases
    return {
        "customers": await _rows(db["billing"], "SELECT * FROM customers ORDER BY id"),
        "invoices": await _rows(db["billing"], "SELECT * FROM invoices ORDER BY id"),
        "mandates": await _rows(db["billing"], "SELECT * FROM mandates ORDER BY id"),
        "contacts": await _rows(db["crm"], "SELECT * FROM contacts ORDER BY id"),
        "users": await _rows(db["analytics"], "SELECT * FROM users ORDER BY user_id"),
    }


async def _status(http, pool, rid: str, wanted: str, timeout: float = 45) -> dict:
    return await live_view(http, await staff_headers(pool, "agent"), rid, lambda view: view["status"] == wanted, timeout)


async def test_subject_cannot_rectify_what_the_policy_does_not_declare(stack, pool):
    """Invoice totals, key and identity columns, mandates, 500 corrections, over-long or
    multi-line values: 422 naming the field, no request stored, no system touched."""
    before_rows = await _snapshot(stack)
    before_requests = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    attacks = {
        "corrections.total": {"total": "0"},
        "corrections.net_amount": {"net_amount": "0.01"},
        "corrections.status": {"status": "revoked"},  # a mandate's
        "corrections.customer_number": {"customer_number": "C-000001"},  # a key/identity column
        "corrections.customer_id": {"customer_id": "C-000001"},
        "corrections.email": {"email": "attacker@example.net"},
        "corrections.id": {"id": "1"},
        "corrections.last_name": {"last_name": "x" * 101},  # the column takes 100
        "corrections.phone": {"phone": "=HYPERLINK(\"http://evil\")"},
        "corrections.first_name": {"first_name": "Ada\r\nBcc: everyone@example.com"},
        "corrections": {f"note_{i}": "x" for i in range(500)},
    }
    async with api(stack) as http:
        for field, corrections in attacks.items():
            r = await http.post("/v1/public/requests", json={
                "type": "rectification", "email": unique_email("rect"), "corrections": corrections})
            problem = assert_problem(r, 422)
            assert field in [e["field"] for e in problem["errors"]], (field, problem)
        too_long = await http.post("/v1/public/requests", json={
            "type": "rectification", "email": unique_email("rect"), "corrections": {"street": "x" * 5000}})
        assert "corrections.street" in [e["field"] for e in assert_problem(too_long, 422)["errors"]]

        # The portal's form says the same, beside the field, and keeps nothing either.
        form = await http.get("/portal")
        submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
        page = await http.post("/portal/requests", data={
            "submission": submission, "type": "rectification", "email": unique_email("rect"),
            "other_corrections": "total: 0\nmandate_reference: MANDATE-X\n"})
        assert page.status_code == 422
        assert "total: is not something we can correct on request" in page.text
        assert "mandate_reference: is not something" in page.text

        # And so does the staff API: an agent cannot do it for the subject either.
        agent = await staff_headers(pool, "agent")
        r = await http.post("/v1/requests", headers=agent, json={
            "type": "rectification", "subject": {"email": "ada@example.com"}, "identity_attested": True,
            "corrections": {"total": "0"}})
        assert "corrections.total" in [e["field"] for e in assert_problem(r, 422)["errors"]]

    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before_requests
    assert await _snapshot(stack) == before_rows


async def _approved(http, pool, rid: str, note: str) -> None:
    approved = await http.post(f"/v1/requests/{rid}/approve", headers=await staff_headers(pool, "compliance"),
                               json={"note": note})
    assert approved.status_code == 200, approved.text


async def _answers(dev_server, rid: str, systems: set[str], *, wanted: str | None = None) -> dict:
    """Each system's result once the `systems` have answered (with the status `wanted`, if given)."""
    handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
    for _ in range(300):
        state = await handle.query(DataSubjectRequestWorkflow.state)
        results = {r.system: r for r in state.results if r.status != "pending" and r.status == (wanted or r.status)}
        if systems <= set(results):
            return results
        await asyncio.sleep(0.2)
    raise AssertionError(f"no answer from {systems}: {state.results}")


async def _approved_and_settled(http, pool, dev_server, body: dict, systems: set[str], *,
                                wanted: str | None = None) -> tuple[str, dict]:
    """An attested request, approved by compliance: its id and its `systems`' answers."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json=body)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    await _status(http, pool, rid, "awaiting_approval")
    await _approved(http, pool, rid, "Caller gave customer number")
    return rid, await _answers(dev_server, rid, systems, wanted=wanted)


async def test_verified_rectification_waits_for_compliance_then_changes_only_declared_columns(
        stack, pool, dev_server, mail_sink):
    db = stack.databases
    before = await _snapshot(stack)
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        r = await http.post("/v1/public/requests", json={
            "type": "rectification", "email": "ada@example.com",
            "corrections": {"name": "Ada King", "last_name": "King"}})
        assert r.status_code == 202, r.text
        rid = r.json()["id"]
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        verified = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
        assert verified.status_code == 200, verified.text

        view = await _status(http, pool, rid, "awaiting_approval")
        assert view["approval_required"] is True
        await wait_for_letter(mail_sink, rid, "staff_alert")
        assert await _snapshot(stack) == before  # verified, but no system touched yet
        assert await pool.fetchval("SELECT count(*) FROM system_tasks WHERE request_id = $1", rid) == 0
        assert_problem(await http.post(f"/v1/requests/{rid}/approve", headers=await staff_headers(pool, "agent")), 403)
        await console_sign_in(http, pool, "compliance")
        page = await http.get(f"/console/requests/{rid}")
        assert "The corrections have been checked: the systems may be changed now." in page.text

        await _approved(http, pool, rid, "Name change checked against the subject's ID")
        done = {system: r.status for system, r in (await _answers(dev_server, rid, {"crm", "billing"})).items()}
        assert (done["crm"], done["billing"]) == ("done", "done"), done
    assert await _rows(db["billing"], "SELECT name FROM customers WHERE email = 'ada@example.com'") == [("Ada King",)]
    assert await _rows(db["crm"], "SELECT last_name FROM contacts WHERE email = 'ada@example.com'") == [("King",)]
    after = await _snapshot(stack)
    assert after["invoices"] == before["invoices"] and after["mandates"] == before["mandates"]
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 ORDER BY seq", uuid.UUID(rid))]
    assert events.index("approval.granted") < min(i for i, e in enumerate(events) if e.startswith("task.")), events


async def test_agent_attested_erasure_waits_for_compliance(stack, pool, dev_server, mail_sink):
    before = await _snapshot(stack)
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        agent = await staff_headers(pool, "agent")
        r = await http.post("/v1/requests", headers=agent, json={
            "type": "erasure", "subject": {"email": "grace@example.com"}, "identity_attested": True})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        await _status(http, pool, rid, "awaiting_approval")
        await wait_for_letter(mail_sink, rid, "staff_alert")
        await asyncio.sleep(1)  # time enough for a fan-out that should not happen
        assert await _snapshot(stack) == before
        assert letters_for(mail_sink, rid, "response") == []
        assert_problem(await http.post(f"/v1/requests/{rid}/approve", headers=agent), 403)
        denied = await http.post(f"/v1/requests/{rid}/deny", headers=await staff_headers(pool, "compliance"), json={
            "reason_code": "identity_not_established", "explanation": "The caller could not confirm the account"})
        assert denied.status_code == 200, denied.text
        await _status(http, pool, rid, "denied")
    assert await _snapshot(stack) == before


async def test_email_with_another_persons_customer_id_erases_no_one(stack, pool, dev_server):
    """Grace's e-mail with Ada's customer number (C-000000): once approved, the systems that
    know both see they disagree; every task stops needing attention, nothing of either is
    erased, and no message names either identity."""
    before = await _snapshot(stack)
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid, flagged = await _approved_and_settled(http, pool, dev_server, {
            "type": "erasure", "subject": {"email": "grace@example.com", "customer_id": "C-000000"},
            "identity_attested": True}, {"crm", "analytics", "billing"}, wanted="needs_attention")
        for result in flagged.values():
            assert "point at different records" in (result.message or "")
            assert "C-000000" not in result.message and "grace@" not in result.message
        view = (await http.get(f"/v1/requests/{rid}", headers=await staff_headers(pool, "agent"))).json()
        assert view["status"] == "in_progress"
    assert await _snapshot(stack) == before
    # The e-mail marketing processor was never asked to erase anyone either.
    assert await _rows(stack.databases["email_marketing"],
                       "SELECT count(*) FROM subscribers WHERE email = 'grace@example.com'") == [(1,)]


async def test_a_correction_leaves_the_records_an_erasure_kept_as_the_law_keeps_them(stack, pool, dev_server):
    """Ada's account is erased; her customer record stays, minimised, for the invoices the
    accounting statute keeps. A later rectification naming her customer number (an agent's
    attested call, approved) changes the billing address of no record the law keeps as it was."""
    db = stack.databases
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        erased, _ = await _approved_and_settled(http, pool, dev_server, {
            "type": "erasure", "subject": {"email": "ada@example.com"}, "identity_attested": True},
            {"crm", "billing", "analytics"})
        kept = await _rows(db["billing"], "SELECT id, street, city FROM customers WHERE customer_number = 'C-000000'")
        assert len(kept) == 1  # kept for the invoices, as the hold says
        assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1 AND system = 'billing' "
                                   "AND dataset = 'customers' AND record_key = $2", erased, str(kept[0][0])) == 1
        corrected, results = await _approved_and_settled(http, pool, dev_server, {
            "type": "rectification", "subject": {"email": unique_email("ada-new"), "customer_id": "C-000000"},
            "identity_attested": True, "corrections": {"street": "Nieuwstraat 1", "city": "Gent"}}, {"billing"})
        # The REST API's task list says what the console says (tests/test_dpo_rectification.py).
        view = (await http.get(f"/v1/requests/{corrected}", headers=await staff_headers(pool, "agent"))).json()
    (billing,) = [r for r in view["results"] if r["system"] == "billing"]
    assert (billing["status"], billing["uncorrected"], billing["status_words"]) == (
        "done", 1, "records kept as an earlier erasure left them, not corrected"), billing
    assert await _rows(db["billing"], "SELECT id, street, city FROM customers WHERE customer_number = 'C-000000'") == kept
    assert "1 record(s) kept under a hold since an erasure were left as kept" in (results["billing"].message or "")
    # Counted per dataset too, which the response letter names as not corrected (tests/test_dpo_rectification.py).
    assert results["billing"].datasets["customers"]["left"] == 1
    # The record exists: done, not "not found" (before, not_found: found counts the rest only).
    assert (results["billing"].status, results["billing"].found, results["billing"].changed) == ("done", 0, 0)
