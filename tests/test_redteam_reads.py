"""Red team of the read side, as an agent (2026-12-05): what compliance alone reads must not reach
them, on the console or over REST (api/read_models/staff_reach.py; docs/security.md "What an
agent reads").

A deferred erasure is compliance's (api/staff_writes.py `DEFERRED_ROLES`, read as legal-claims
holds are): once the hold that kept records ended, what became of them says that it ended. The
note settling one, and the alert saying a processor did not carry one out, reached agents as any
other note and staff alert."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from activities.context import ActivityContext
from activities.deferred_processors import record_failure
from activities.mail import Mailer
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.deferred_store import settle_deferred
from dsrflow.stores.team_store import add_note
from tests.support import api_client, console_sign_in, place_claims_hold, served, staff_headers, stored_request
from tests.test_approval import approval_settings, open_request, wait_for_status  # noqa: F401 - a fixture too

SETTLED = "Their DPO confirmed by phone on 3 December that the contact is gone: the dispute settled."
TEAM_NOTE = "Called the subject back about the letter."
FAILED = "the processor's API answered 500"
ALERT = "could not erase the records a hold had kept"  # letters/_staff_alert_detail.txt.j2, deferred_failed


@pytest.fixture
async def client(settings, pool, dev_server, task_queue) -> AsyncIterator:
    """The app alone: these requests have no workflow, so no worker is needed."""
    async with api_client(settings, dev_server.client, task_queue) as http:
        yield http


async def _deferred_erasure(pool, settings, *, settle: bool) -> str:
    """A completed erasure whose CRM record a legal-claims hold kept; the hold released, the CRM
    did not erase it (the real alert staff get), and compliance recorded it as erased by other
    means when `settle`. An agent noted something on the request too."""
    rid = await stored_request(pool, settings, "deferred-read", "erasure")
    email = await pool.fetchval("SELECT subject_email FROM dsr_requests WHERE id = $1", rid)
    hold = await place_claims_hold(pool, settings, email, ["crm"])
    await pool.execute("UPDATE legal_holds SET released_at = now(), released_by = 'compliance:test' WHERE id = $1",
                       hold["id"])
    await pool.execute("UPDATE dsr_requests SET status = 'completed', closed_at = now() WHERE id = $1", rid)
    await pool.execute(
        """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                          hold_ref, erase_after, policy_version)
           SELECT id, 'subject-hash', 'crm', 'contacts', '42', 'legal_claims', $2, NULL, policy_version
             FROM dsr_requests WHERE id = $1""", rid, str(hold["id"]))
    rows = await pool.fetch("SELECT id, attempt FROM deferred_erasures WHERE request_id = $1", rid)
    ctx = ActivityContext(pool=pool, settings=settings, mailer=Mailer(settings), secret=load_secret_key(settings))
    await record_failure(ctx, rid, "crm", rows, FAILED, asked=False)
    if settle:
        await settle_deferred(pool, rid, "crm", SETTLED, actor="compliance:test")
    await add_note(pool, rid, TEAM_NOTE, actor="agent:test")
    return rid


@pytest.mark.parametrize("role", ["agent", "compliance"])
async def test_the_note_settling_a_deferred_erasure_is_compliances(role, client, pool, settings):
    rid = await _deferred_erasure(pool, settings, settle=True)
    compliance = role == "compliance"

    listed = await client.get(f"/v1/requests/{rid}/notes", headers=await staff_headers(pool, role))
    assert listed.status_code == 200, listed.text
    assert [n["body"] for n in listed.json()] == ([SETTLED, TEAM_NOTE] if compliance else [TEAM_NOTE])

    await console_sign_in(client, pool, role)
    page = await client.get(f"/console/requests/{rid}")
    assert page.status_code == 200, page.text
    assert TEAM_NOTE in page.text and f"Internal notes ({2 if compliance else 1})" in page.text
    assert (SETTLED in page.text) is compliance


async def test_an_agent_does_not_read_the_alert_about_a_deferred_erasure(client, pool, settings):
    rid = await _deferred_erasure(pool, settings, settle=False)
    key = await pool.fetchval("SELECT letter_key FROM sent_letters WHERE request_id = $1 AND purpose = 'staff_alert'",
                              rid)
    path = f"/console/requests/{rid}/letters/staff_alert/{key.split(':', 2)[2]}"

    await console_sign_in(client, pool, "compliance")
    assert ALERT in (await client.get(path)).text
    assert path in (await client.get(f"/console/requests/{rid}")).text

    await console_sign_in(client, pool, "agent")
    alert = await client.get(path)
    never_sent = await client.get(f"/console/requests/{rid}/letters/staff_alert/deferred-billing")
    assert (alert.status_code, never_sent.status_code) == (404, 404)  # alike: not even its existence
    page = await client.get(f"/console/requests/{rid}")
    assert path not in page.text and "Staff alerts" not in page.text


APPROVAL_NOTE = "Checked with legal: the billing export stays out while claim 2026/17 runs."


@pytest.fixture
async def approving(approval_settings, pool, dev_server, task_queue) -> AsyncIterator:  # noqa: F811 - the fixture imported
    async with served(approval_settings, pool, dev_server.client, task_queue) as http:
        yield http


async def test_an_agent_reads_that_a_release_was_approved_not_by_whom_or_why(approving, pool):
    """The approver and their note are a decision of the audit timeline, which the console shows
    compliance alone; `GET /v1/requests/{id}` gave both to an agent."""
    rid = await open_request(approving, pool, "access")
    await wait_for_status(approving, pool, rid, "awaiting_approval")
    compliance = await staff_headers(pool, "compliance")
    approved = await approving.post(f"/v1/requests/{rid}/approve", headers=compliance, json={"note": APPROVAL_NOTE})
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"]["note"] == APPROVAL_NOTE

    seen = (await approving.get(f"/v1/requests/{rid}", headers=await staff_headers(pool, "agent"))).json()
    assert seen["approval"] == {"note": "[withheld]", "explanation": None, "actor": "[withheld]"}
    assert APPROVAL_NOTE not in str(seen) and seen["approval_required"] is True
    assert (await approving.get(f"/v1/requests/{rid}", headers=compliance)).json()["approval"]["note"] == APPROVAL_NOTE


async def test_what_an_agent_may_not_read_answers_alike_whether_it_exists(client, pool, settings):
    """Found sound: every read that is compliance's answers an agent 403 before it looks anything
    up, so a request or a hold that exists and one that does not answer alike; a role claimed in
    the address or a header is no role (the token's row is)."""
    rid = await stored_request(pool, settings, "alike", "erasure")
    hold = await place_claims_hold(pool, settings, "alike@example.com", ["crm"])
    nobody = "00000000-0000-4000-8000-000000000000"
    headers = {**await staff_headers(pool, "agent"), "X-Role": "compliance", "X-Dsrflow-Role": "compliance"}
    for path in ("/v1/requests/{}/events", "/v1/requests/{}/evidence", "/v1/requests/{}/package",
                 "/v1/requests/{}/deferred-erasures", "/v1/requests/{}/evidence.html", "/v1/legal-holds/{}"):
        real = path.format(hold["id"] if "legal-holds" in path else rid)
        answers = [(await client.get(url, headers=headers, params={"role": "compliance"})).status_code
                   for url in (real, path.format(nobody))]
        assert answers == [403, 403], path
    listed = await client.get("/v1/legal-holds", headers=headers, params={"email": "alike@example.com"})
    assert listed.status_code == 403
