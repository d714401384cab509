"""Team work (assignments, notes) while the request's workflow writes, and bounds on what one
member of staff writes to a request other staff read, or sends its subject (docs/security.md,
"Team work under load and in bulk"). In process; a workflow runs for the codes only."""

from __future__ import annotations

import asyncio

from api import staff_bodies
from dsrflow.domain.audit import append_event
from dsrflow.stores import team_store
from dsrflow.stores.deferred_store import settle_deferred
from dsrflow.stores.staff_tokens import issue_token
from dsrflow.stores.team_store import assign
from tests.support import (
    assert_problem,
    console_sign_in,
    eventually,
    kept_whole_under,
    letters_for,
    live_view,
    place_claims_hold,
    staff_headers,
    stored_request,
    unique_email,
    wait_for_letter,
)


async def test_taking_a_request_while_its_workflow_records_a_step_waits_for_it(pool, settings):
    """An agent takes a request (`PUT .../assignee` "me", the console's "Take it") just as its
    workflow records a step: its event, then the request's row (activities/lifecycle.py registers
    the due dates so, in one statement). Before, the assignment locked the request's row first and
    its audit chain second, the step the other way round: PostgreSQL broke the deadlock by failing
    one of them, the agent's answer a 500 (seen on a request opened a moment before) or the
    workflow's step retried. Now both are done."""
    rid = await stored_request(pool, settings, "assigned-while-registered")
    token_id = (await issue_token(pool, "agent", "takes it"))[0]["id"]
    async with pool.acquire() as step:
        transaction = step.transaction()
        await transaction.start()
        try:
            await append_event(step, event_key=f"{rid}:registered-test", request_id=rid,
                               event_type="request.registered", actor="system", data={})
            taking = asyncio.create_task(assign(pool, rid, token_id, actor=f"agent:{token_id[:8]}"))
            await asyncio.sleep(0.3)  # the assignment waits for the chain's head, which the step holds
            await step.execute("UPDATE dsr_requests SET verified_at = coalesce(verified_at, now()) WHERE id = $1", rid)
        finally:
            await transaction.commit()
        await taking
    assert await pool.fetchval("SELECT assignee::text FROM request_assignments WHERE request_id = $1", rid) == token_id
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = 'staff.assigned'",
                               rid) == 1


async def test_a_request_keeps_a_bounded_number_of_notes(http, pool, settings, monkeypatch):
    """An agent's script (or whoever holds a stolen cookie) posts notes on a request without end.
    Before, every one was kept: thousands of notes on its page, in its timeline and its evidence
    pack for the compliance officer who answers for it. Now a request keeps NOTES_PER_REQUEST
    (here 3) from one member of staff: their next is refused, over REST (422 naming the note) and
    on the console (said beside the form), nothing kept; a retry of a note already kept still
    answers as before, and a colleague still notes."""
    monkeypatch.setattr(team_store, "NOTES_PER_REQUEST", 3)
    rid = await stored_request(pool, settings, "many-notes")
    csrf = await console_sign_in(http, pool, "agent")  # its cookie calls REST too, with the token in a header
    agent = {"X-CSRF-Token": csrf}
    for n in range(3):
        answer = await http.post(f"/v1/requests/{rid}/notes", headers={**agent, "Idempotency-Key": f"n{n}"},
                                 json={"note": f"Note {n}"})
        assert answer.status_code == 201, answer.text
    kept = answer.json()["id"]
    body = assert_problem(await http.post(f"/v1/requests/{rid}/notes", headers=agent, json={"note": "One more"}), 422)
    assert body["errors"][0]["field"] == "note" and "3 notes on this request" in body["errors"][0]["message"], body
    again = await http.post(f"/v1/requests/{rid}/notes", headers={**agent, "Idempotency-Key": "n2"},
                            json={"note": "Note 2"})
    assert again.status_code == 201 and again.json()["id"] == kept, again.text
    page = await http.post(f"/console/requests/{rid}/notes", data={"csrf_token": csrf, "note": "And one more"},
                           follow_redirects=True)
    assert 'id="note-error"' in page.text and "the most it keeps from one member of staff" in page.text, page.text
    assert await pool.fetchval("SELECT count(*) FROM request_notes WHERE request_id = $1", rid) == 3
    colleague = await http.post(f"/v1/requests/{rid}/notes", headers=await staff_headers(pool, "compliance"),
                                json={"note": "Read the three notes above: nothing to add but this."})
    assert colleague.status_code == 201, colleague.text


async def test_one_member_of_staff_changes_a_requests_assignment_a_bounded_number_of_times(http, pool, settings,
                                                                                         monkeypatch):
    """A script hands a request to and fro (`PUT .../assignee` "me", then null): before, every change
    was kept, each an event in the timeline the compliance officer reads. Now one member of staff
    changes a request's assignment ASSIGNMENTS_PER_REQUEST times (here 3): the next is 422 naming
    the assignee, on the console said in the team panel, nothing changed or recorded; a colleague
    still assigns it."""
    monkeypatch.setattr(team_store, "ASSIGNMENTS_PER_REQUEST", 3)
    rid = await stored_request(pool, settings, "handed-to-and-fro")
    csrf = await console_sign_in(http, pool, "agent")
    agent = {"X-CSRF-Token": csrf}
    for assignee in ("me", None, "me"):
        answer = await http.put(f"/v1/requests/{rid}/assignee", headers=agent, json={"assignee": assignee})
        assert answer.status_code == 200, answer.text
    body = assert_problem(await http.put(f"/v1/requests/{rid}/assignee", headers=agent, json={"assignee": None}), 422)
    assert body["errors"][0]["field"] == "assignee" and "3 times" in body["errors"][0]["message"], body
    page = await http.post(f"/console/requests/{rid}/assignment", data={"csrf_token": csrf, "assignee": ""},
                           follow_redirects=True)
    assert "the most one member of staff may" in page.text, page.text
    events = "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type LIKE 'staff.%assigned'"
    assert await pool.fetchval(events, rid) == 3
    assert await pool.fetchval("SELECT assignee FROM request_assignments WHERE request_id = $1", rid) is not None
    colleague = await http.put(f"/v1/requests/{rid}/assignee", headers=await staff_headers(pool, "compliance"),
                               json={"assignee": None})
    assert colleague.status_code == 200 and colleague.json() is None, colleague.text


async def test_staff_send_one_request_a_bounded_number_of_codes(http, pool, mail_sink, monkeypatch):
    """An agent's script resends the verification code in a loop (`POST .../resend-verification`,
    naming the round it read, or none). The workflow caps the codes the subject asks for, not
    staff's: before, each call mailed the subject another code, from the controller's address,
    without end. Now once CODES_MAX codes (here 2) went to a request, a resend is 409 with why,
    over REST and on the console (whose page offers none any more), and nothing more is sent."""
    monkeypatch.setattr(staff_bodies, "CODES_MAX", 2)
    agent = await staff_headers(pool, "agent")
    rid = (await http.post("/v1/requests", headers=agent, json={
        "type": "access", "subject": {"email": unique_email("codes-in-a-loop")}})).json()["id"]
    await wait_for_letter(mail_sink, rid, "verification")
    assert (await http.post(f"/v1/requests/{rid}/resend-verification", headers=agent)).status_code == 200
    await live_view(http, agent, rid, until=lambda v: (v.get("verification") or {}).get("round") == 2)

    async def two_codes_went() -> bool:
        return len(letters_for(mail_sink, rid, "verification")) >= 2
    await eventually(two_codes_went, timeout=30)
    body = assert_problem(await http.post(f"/v1/requests/{rid}/resend-verification", headers=agent), 409)
    assert "2 codes have been sent" in body["detail"] and body["round"] == 2, body
    body = assert_problem(await http.post(f"/v1/requests/{rid}/resend-verification", headers=agent,
                                          json={"round": 2}), 409)
    csrf = await console_sign_in(http, pool, "agent")
    page = await http.post(f"/console/requests/{rid}/resend-verification", data={"csrf_token": csrf, "round": "2"})
    assert page.status_code == 409 and "no other was sent" in page.text, page.text
    assert "Send a new code" not in (await http.get(f"/console/requests/{rid}")).text  # nor offered any more
    await asyncio.sleep(1)  # a code the refusals had sent would be on its way by now
    assert len(letters_for(mail_sink, rid, "verification")) == 2


async def test_settling_a_deferred_erasure_while_the_sweep_records_it_waits_for_it(pool, settings):
    """Compliance records a deferred erasure as done by other means just as the erasure sweep
    records the processor's answer for the same rows: its event, then the rows
    (activities/deferred_processors.py `_record`, one statement). The settlement locked the rows
    first and the request's audit chain second: PostgreSQL failed one of them as a deadlock (the
    officer's answer a 500). Now both are done, one after the other."""
    email = unique_email("settled-while-swept")
    rid = await stored_request(pool, settings, "settled-while-swept", type_="erasure", email=email)
    await kept_whole_under(pool, settings, rid, email, "crm", await place_claims_hold(pool, settings, email, ["crm"]))
    await pool.execute("UPDATE deferred_erasures SET failed_at = now(), failure = 'refused' WHERE request_id = $1", rid)
    async with pool.acquire() as sweep:
        transaction = sweep.transaction()
        await transaction.start()
        try:
            await append_event(sweep, event_key=f"{rid}:deferred:crm:test:submitted", request_id=rid,
                               event_type="erasure.deferred_submitted", actor="erasure-sweep", data={"system": "crm"})
            settling = asyncio.create_task(settle_deferred(pool, rid, "crm", "The processor confirmed by phone.",
                                                           actor="compliance:0000aaaa"))
            await asyncio.sleep(0.3)  # the settlement waits for the chain's head, which the sweep holds
            await sweep.execute("UPDATE deferred_erasures SET external_id = 'job-1' WHERE request_id = $1", rid)
        finally:
            await transaction.commit()
        await settling
    assert await pool.fetchval("SELECT bool_and(settled_by IS NOT NULL) FROM deferred_erasures WHERE request_id = $1", rid)
