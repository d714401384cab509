"""Staff tell a UK complainant of progress by hand (DPA 2018 s. 164A(5)(b);
workflows/complaint_progress.py ProgressByHand): `POST /v1/requests/{id}/tell-progress` with a note
the progress letter quotes as written. Compliance and admin may (an agent is refused, 403); one
letter per `Idempotency-Key` however often it is sent, the note escaped in the letter's HTML,
recorded with who sent it in the trail and the evidence pack; refused once the complaint is closed
(409) and for a request that is no UK complaint (422). The real app in-process with a worker on
the test's queue, PostgreSQL and the Temporal dev server (the conftest's `http`); the cadence the
letter moves is tests/test_complaint_progress.py's (virtual time)."""

from __future__ import annotations

import uuid

from tests.refused_requests import stored_refusal
from tests.support import eventually, letters_for, staff_headers, text_of, unique_email, wait_for_letter
from workflows.complaint_progress import NOT_A_COMPLAINT, TOLD_BY_HAND

NOTE = "We asked the billing team to check the <b>records</b> again & expect their answer on Friday."


async def _complaint(http, pool, settings, email: str) -> str:
    """A UK complaint an agent opens for its subject (not attested: it awaits their code)."""
    refused = await stored_refusal(pool, settings, email, "uk_gdpr", type="erasure")
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "regime": "uk_gdpr", "subject": {"email": email}, "appeal_of": refused})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_compliance_tells_a_complainant_of_progress_once_per_key(http, pool, settings, mail_sink):
    email = unique_email("progress-by-hand")
    complaint = await _complaint(http, pool, settings, email)
    await wait_for_letter(mail_sink, complaint, "verification")
    url = f"/v1/requests/{complaint}/tell-progress"

    agent = await http.post(url, headers=await staff_headers(pool, "agent"), json={"note": NOTE})
    assert agent.status_code == 403, agent.text
    compliance = {**await staff_headers(pool, "compliance"), "Idempotency-Key": f"progress-{uuid.uuid4()}"}
    for _ in range(2):  # a retried call: one letter
        r = await http.post(url, headers=compliance, json={"note": NOTE})
        assert r.status_code == 200, r.text
    again = await http.post(url, headers=compliance, json={"note": "Other words under the same key"})
    assert again.status_code == 409 and "already used" in again.json()["detail"], again.text

    letter = await wait_for_letter(mail_sink, complaint, "complaint_progress")
    assert "&lt;b&gt;records&lt;/b&gt; again &amp; expect" in letter.get_body(preferencelist=("html",)).get_content()
    assert " ".join(NOTE.split()) in " ".join(text_of(letter).split())

    async def recorded() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND "
                                        "event_type = 'letter.sent' AND data->>'purpose' = 'complaint_progress'",
                                        uuid.UUID(complaint)))

    await eventually(recorded)
    assert len(letters_for(mail_sink, complaint, "complaint_progress")) == 1
    [told] = await pool.fetch("SELECT actor, data FROM audit_events WHERE request_id = $1 AND event_type = $2",
                              uuid.UUID(complaint), TOLD_BY_HAND)
    assert told["actor"].startswith("compliance:") and told["data"]["note"] == NOTE
    pack = (await http.get(f"/v1/requests/{complaint}/evidence", headers=compliance)).json()
    [event] = [e for e in pack["audit"]["events"] if e["event_type"] == TOLD_BY_HAND]
    assert (event["actor"], event["data"]["note"]) == (told["actor"], NOTE)
    assert "complaint_progress" in [lt["purpose"] for lt in pack["letters"]]

    # Withdrawn by its subject: closed, so no progress letter follows (409, the workflow's words).
    r = await http.post(f"/v1/requests/{complaint}/cancel", headers=compliance,
                        json={"reason": "Withdrawn by phone", "withdrawn_by_subject": True})
    assert r.status_code == 200, r.text
    closed = await http.post(url, headers=await staff_headers(pool, "admin"), json={"note": NOTE})
    assert closed.status_code == 409, closed.text
    assert closed.json()["detail"].startswith("this complaint is closed (status cancelled)"), closed.text


async def test_a_request_that_is_no_uk_complaint_is_refused_naming_why(http, pool, settings):
    email = unique_email("progress-not-complaint")
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "regime": "uk_gdpr", "subject": {"email": email}})
    assert r.status_code == 201, r.text
    refused = await http.post(f"/v1/requests/{r.json()['id']}/tell-progress",
                              headers=await staff_headers(pool, "compliance"), json={"note": NOTE})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == NOT_A_COMPLAINT
