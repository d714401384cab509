"""The evidence pack read as a data protection officer reads it, fact by fact: what a supervisory
authority would ask that the pack must answer without opening anything else (tests/test_evidence.py
covers the pack's parts on real runs). Requests here are stored as intake stores them and given
the facts each check needs, so each test takes a moment."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime

from api.read_models.evidence import assemble_evidence
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.stores.staff_tokens import create_token
from tests.support import staff_headers, stored_request, unique_email, wait_for_letter


async def _pack(pool, settings, rid: str) -> dict:
    return await assemble_evidence(pool, rid, secret=load_secret_key(settings))


async def _closed(pool, rid: str, *, received_at: datetime, due: date, closed_at: datetime) -> None:
    await pool.execute("""UPDATE dsr_requests SET received_at = $2, due_date = $3, current_due_date = $3,
                                 status = 'completed', closed_at = $4 WHERE id = $1""",
                       rid, received_at, due, closed_at)


async def test_on_time_is_judged_on_the_controllers_calendar_day_not_utcs(http, pool, settings):
    """Due on 4 January (Brussels); closed at 23:30 UTC on the 4th, which is 00:30 on the 5th in
    Brussels: a day late. The pack compared the UTC date and said "yes"."""
    rid = await stored_request(pool, settings, "dpo-late")
    await _closed(pool, rid, received_at=datetime(2026, 12, 3, 23, 30, tzinfo=UTC), due=date(2027, 1, 4),
                  closed_at=datetime(2027, 1, 4, 23, 30, tzinfo=UTC))

    d = (await _pack(pool, settings, rid))["deadlines"]

    assert (d["answered_on_time"], d["closed_on"]) == (False, date(2027, 1, 5))
    # Received at 23:30 UTC on 3 December: 4 December in Brussels, the day the month counts from.
    assert d["basis"]["received_on"] == date(2026, 12, 4) and d["basis"]["timezone"] == "Europe/Brussels"
    assert d["basis"]["calendar"] == "BE" and "one month from the day of receipt" in d["basis"]["rule"]
    page = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text
    assert "<dt>Answered on time</dt><dd>no: closed 5 January 2027 (Europe/Brussels)" in page
    assert "4 December 2026 in the controller's time (Europe/Brussels)" in page


async def test_an_extension_says_when_the_subject_was_told_and_whether_before_the_first_due_date(
        http, pool, settings):
    rid = await stored_request(pool, settings, "dpo-extended")
    await pool.execute("UPDATE dsr_requests SET due_date = '2027-01-04', extended = true WHERE id = $1", rid)
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{rid}:extended", request_id=rid, event_type="deadline.extended",
                           actor="compliance:test", data={"from": "2027-01-04", "to": "2027-03-04",
                                                          "reason": "Records in six systems"})
    # Told at 23:30 UTC on the due date: 00:30 on 5 January in Brussels, too late.
    await pool.execute("""INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject, message_id,
                                                    body_text, body_html, sent_at)
                          VALUES ($1, $2, 'extension', 'x@example.com', 'More time', $3, 'text', 'html', $4)""",
                       f"{rid}:extension:{uuid.uuid4().hex}", rid, f"<{uuid.uuid4().hex}@dsrflow>",
                       datetime(2027, 1, 4, 23, 30, tzinfo=UTC))

    extension = (await _pack(pool, settings, rid))["deadlines"]["extension"]

    assert extension["subject_told_at"] == datetime(2027, 1, 4, 23, 30, tzinfo=UTC)
    assert extension["told_before_due_date"] is False
    page = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text
    # The time in Brussels, the zone named, as the day it is judged on: 00:30 on the 5th, not 23:30 UTC on the 4th.
    assert "The subject was told on 5 January 2027, 00:30 CET (UTC+1) (the extension letter below), after the first" in page
    assert "from 4 January 2027 to 4 March 2027" in page and "2027-01-04" not in page


async def _events(pool, rid: str, *events: tuple[str, str, dict]) -> None:
    async with pool.acquire() as conn:
        for n, (kind, actor, data) in enumerate(events):
            await append_event(conn, event_key=f"{rid}:dpo:{n}", request_id=rid, event_type=kind, actor=actor, data=data)


async def test_the_decisions_are_stated_with_who_took_them_and_a_failed_letter_with_its_answer(http, pool, settings):
    """A refusal's ground, an approval and its note, an appeal, and a letter whose sending failed
    and that staff skipped: the pack held them as raw events only, if at all."""
    rid = await stored_request(pool, settings, "dpo-decided", type_="erasure", regime="vcdpa")
    await _events(pool, rid,
                  ("step.failed", "workflow", {"step": "send_letter", "about": "acknowledgement letter",
                                               "message": "the relay refused the recipient", "transient": False}),
                  ("step.resolved", "compliance:test", {"step": "send_letter", "about": "acknowledgement letter",
                                                        "message": "the relay refused the recipient", "transient": False,
                                                        "resolution": "skipped by staff: Acknowledged by post"}),
                  ("letter.skip_settled", "workflow", {"purpose": "acknowledgement", "went": False}),
                  ("package.reviewed", "compliance:test", {}),
                  ("approval.granted", "compliance:test", {"note": "Package checked"}),
                  ("status.denied", "compliance:other", {"reason_code": "manifestly_unfounded"}))
    appeal = await stored_request(pool, settings, "dpo-appeal", type_="erasure", regime="vcdpa")
    await pool.execute("""UPDATE dsr_requests SET details = jsonb_build_object('appeal_of', $2::text)
                          WHERE id = $1""", appeal, rid)

    decided = (await _pack(pool, settings, rid))["decisions"]

    assert decided["refusal"]["kind"] == "denial" and decided["refusal"]["ground"] == "manifestly_unfounded"
    assert decided["refusal"]["by"] == "compliance:other" and decided["refusal"]["letter_sent_at"] is None
    assert (decided["approval"]["by"], decided["approval"]["note"]) == ("compliance:test", "Package checked")
    (failed,) = decided["letters_not_sent"]
    assert failed["letter"] == "acknowledgement letter" and failed["answer"] == "skipped by staff: Acknowledged by post"
    assert failed["went_after_all"] is False
    assert [a["id"] for a in decided["appeals"]] == [appeal]
    assert (await _pack(pool, settings, appeal))["decisions"]["appeal_of"]["id"] == rid
    page = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text
    # A VCDPA request: the ground in words, no GDPR article cited.
    assert "ground: manifestly unfounded; the explanation" in page and "<strong>which was not sent</strong>" in page
    assert "manifestly_unfounded" not in page and "status.denied" not in page
    assert "skipped by staff: Acknowledged by post; it was withdrawn and never went" in page


async def test_a_denials_explanation_is_in_the_trail_and_the_pack(http, pool, mail_sink):
    """A denial's explanation was in the letter alone: the audit trail and the evidence pack gave
    its ground only, so a DPO reading the pack could not say why without opening the letter. The
    page names who refused as the console does (label and role), not by a raw actor id."""
    compliance = {"Authorization": f"Bearer {await create_token(pool, 'compliance', 'Jane Peeters')}"}
    opened = await http.post("/v1/requests", headers=compliance, json={
        "type": "access", "subject": {"email": unique_email("denied-why")}})
    rid = opened.json()["id"]
    await wait_for_letter(mail_sink, rid, "verification")
    explanation = "The same request was answered in full last week."
    denied = await http.post(f"/v1/requests/{rid}/deny", headers=compliance,
                             json={"reason_code": "manifestly_unfounded", "explanation": explanation})
    assert denied.status_code == 200, denied.text
    await wait_for_letter(mail_sink, rid, "denial")
    event = await pool.fetchval("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                                "AND event_type = 'status.denied'", rid)
    assert event["explanation"] == explanation
    pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()
    assert pack["decisions"]["refusal"]["reason"] == explanation
    page = await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)
    assert f"by Jane Peeters (compliance), ground: manifestly unfounded (Art. 12(5) GDPR): “{explanation}”" in page.text
    assert re.search(r"the denial letter below, which went \d{1,2} \w+ \d{4}, \d{2}:\d{2} CES?T \(UTC\+[12]\), by the due date",
                     page.text)
