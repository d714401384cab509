"""The UK GDPR's month starts once the identity is verified (DESIGN.md, Deadlines): before, a UK
request kept the dates counted from receipt whatever day the subject verified, and its acknowledgement
promised the receipt's date to a subject who had not verified yet.

A UK request received on Friday 23 April 2027 was due on Monday 24 May (23 May a Sunday); verified
on Friday 30 April, its month ends on Sunday 30 May, rolled past the Spring bank holiday (Monday 31
May) to Tuesday 1 June; its extension to Friday 30 July. A GDPR request received and verified on the
same days keeps 24 May (Art. 12(3) GDPR runs from receipt).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from activities.lifecycle import LifecycleActivities
from activities.staff_alert_words import step_label
from api.read_models.evidence_deadlines import deadlines, policy_defaults
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.deadlines import compute_deadline, receipt_date_for
from dsrflow.i18n import long_date, translations
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy, parse_policy
from schemas.clock_start import EXTEND_ONCE_VERIFIED, facts_clock_waits
from schemas.requests import NewRequest, RequestStatus
from schemas.verification_clock import VerifiedAt
from schemas.workflow import StartRequest, workflow_id_for
from tests.letters_as_sent import LANGUAGES, as_sent, both, request_row
from tests.support import (
    api_client,
    console_sign_in,
    letters_for,
    staff_headers,
    stored_request,
    text_of,
    wait_for_letter,
)
from tests.workflow_fakes import SHIPPED, FakeActivities, RequestSpec
from tests.workflow_stack import FastStack, stack_fixture  # noqa: F401 (the fixture)
from workers.dsr_worker import activity_context, build_worker
from workflows.dsr import DataSubjectRequestWorkflow

RECEIVED = datetime(2027, 4, 23, 9, 0, tzinfo=UTC)  # Friday 23 April, 11:00 in Brussels
VERIFIED = RECEIVED + timedelta(days=7)
RECEIPT_DUE, MOVED_DUE, MOVED_EXTENDED = date(2027, 5, 24), date(2027, 6, 1), date(2027, 7, 30)


async def _eventually(check, timeout: float = 20) -> None:
    """Until `check()` (or what it returns to await) is true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not ((await result) if inspect.isawaitable(result := check()) else result):
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.1)


async def _open(client, pool, task_queue, loaded, secret: bytes, regime: str) -> str:
    """A request of `regime` received at RECEIVED (the virtual clock's now), its workflow started."""
    new = NewRequest(type="erasure", regime=regime, subject={"email": f"uk{uuid.uuid4().hex[:6]}@example.com"})
    row, _ = await create_request(pool, new, loaded_policy=loaded, secret=secret, actor="test", idempotency_key=None)
    rid = str(row["id"])
    await pool.execute("UPDATE dsr_requests SET received_at = $2 WHERE id = $1", rid, RECEIVED)
    await client.start_workflow(DataSubjectRequestWorkflow.run, StartRequest(request_id=rid, policy_version=loaded.version),
                                id=workflow_id_for(rid), task_queue=task_queue)
    return rid


def _code(message) -> str:
    return re.search(r"\b(\d{6})\b", text_of(message)).group(1)


async def _dates(pool, rid: str) -> tuple[date, date, date]:
    row = await pool.fetchrow("SELECT due_date, extended_due_date, current_due_date FROM dsr_requests WHERE id = $1", rid)
    return row["due_date"], row["extended_due_date"], row["current_due_date"]


def _deadline_alerts(mail_sink, rid: str) -> list[str]:
    return [text_of(m) for m in letters_for(mail_sink, rid, "staff_alert")
            if re.search(r"due in|overdue", m["Subject"])]


def _waiting_policy(settings):
    """The shipped policy, but the code stays valid past the seventh day and no reminder replaces
    it; the erasure then waits for compliance's approval, open while its deadlines pass."""
    content = load_policy(settings.policy_path).content
    return parse_policy({**content, "approval_required_for": ["erasure"],
                         "verification": {**content["verification"], "expires_after_days": 30,
                                          "reminder_after_days": 40}})


async def test_a_uk_requests_month_starts_on_the_day_its_identity_is_verified(
        settings, pool, time_skipping, mail_sink, task_queue):
    env, client = time_skipping, time_skipping.client
    loaded = _waiting_policy(settings)
    assert compute_deadline("uk_gdpr", RECEIVED.date(), verified=VERIFIED.date()).due_date == MOVED_DUE
    await env.sleep(RECEIVED - await env.get_current_time())
    async with build_worker(client, settings, pool, task_queue=task_queue), \
            api_client(settings, client, task_queue) as http:
        uk, extended, eu = [await _open(client, pool, task_queue, loaded, load_secret_key(settings), regime)
                            for regime in ("uk_gdpr", "uk_gdpr", "gdpr")]
        codes = {rid: _code(await wait_for_letter(mail_sink, rid, "verification")) for rid in (uk, extended, eu)}
        acknowledgement = " ".join(text_of(await wait_for_letter(mail_sink, uk, "acknowledgement")).split())
        assert "within one month of the day you confirm your identity" in acknowledgement
        assert long_date(RECEIPT_DUE, "en") not in acknowledgement

        await env.sleep(VERIFIED - await env.get_current_time())
        for rid, code in codes.items():
            r = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
            assert r.status_code == 200, r.text
        for rid in codes:
            await _eventually(lambda rid=rid: _status_is(pool, rid, "awaiting_approval"))
        assert await _dates(pool, uk) == (MOVED_DUE, MOVED_EXTENDED, MOVED_DUE)
        state = await client.get_workflow_handle(workflow_id_for(uk)).query(DataSubjectRequestWorkflow.state)
        assert (state.due_date, state.extended_due_date, state.current_due_date) == (MOVED_DUE, MOVED_EXTENDED, MOVED_DUE)
        started = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND event_type = "
                                   "'deadline.clock_started'", uuid.UUID(uk))
        assert [e["data"] for e in started] == [{
            "received_on": "2027-04-23", "verified_on": "2027-04-30", "clock_start": "2027-04-30",
            "from": "2027-05-24", "to": "2027-06-01", "extended_from": "2027-07-23", "extended_to": "2027-07-30"}]
        # Under the GDPR the month ran from receipt and still does.
        eu_due = compute_deadline("gdpr", RECEIVED.date(), establishment="BE")
        assert await _dates(pool, eu) == (eu_due.due_date, eu_due.extended_due_date, eu_due.due_date) \
            and eu_due.due_date == RECEIPT_DUE
        assert not await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = "
                                       "'deadline.clock_started'", uuid.UUID(eu))

        # The extension letter counts from the moved dates.
        compliance = await staff_headers(pool, "compliance")
        r = await http.post(f"/v1/requests/{extended}/extend", headers=compliance, json={"reason": "Nine systems."})
        assert r.status_code == 200 and r.json()["current_due_date"] == MOVED_EXTENDED.isoformat(), r.text
        notice = " ".join(text_of(await wait_for_letter(mail_sink, extended, "extension")).split())
        assert f"by {long_date(MOVED_EXTENDED, 'en')} at the latest (instead of {long_date(MOVED_DUE, 'en')})" in notice
        assert (await _dates(pool, extended))[2] == MOVED_EXTENDED

        # No warning at the receipt's times (17 and 22 May, overdue when 24 May ends) ...
        await env.sleep(datetime(2027, 5, 24, 21, 0, tzinfo=UTC) - await env.get_current_time())
        await asyncio.sleep(0.5)
        assert _deadline_alerts(mail_sink, uk) == []
        # ... the first at the start of 25 May, seven days before 1 June; overdue when 1 June ends.
        await env.sleep(datetime(2027, 5, 24, 22, 1, tzinfo=UTC) - await env.get_current_time())
        await _eventually(lambda: len(_deadline_alerts(mail_sink, uk)) == 1)
        assert f"due in 7 days, on {long_date(MOVED_DUE, 'en')}" in " ".join(_deadline_alerts(mail_sink, uk)[0].split())
        await env.sleep(datetime(2027, 6, 1, 22, 1, tzinfo=UTC) - await env.get_current_time())
        await _eventually(lambda: len(_deadline_alerts(mail_sink, uk)) == 3)
        assert f"its deadline, {long_date(MOVED_DUE, 'en')}, has passed" in " ".join(_deadline_alerts(mail_sink, uk)[2].split())
        state = await client.get_workflow_handle(workflow_id_for(uk)).query(DataSubjectRequestWorkflow.state)
        assert state.overdue and sorted(state.warnings_sent) == [2, 7]
        events = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1 AND event_type "
                                  "LIKE 'deadline.%' ORDER BY seq", uuid.UUID(uk))
        assert [(e["event_type"], e["data"].get("due_date")) for e in events][1:] == [
            (f"deadline.{kind}", "2027-06-01") for kind in ("due_in_7_days", "due_in_2_days", "overdue")]

        # The evidence pack says when the month started, and why.
        page = (await http.get(f"/v1/requests/{uk}/evidence", headers=compliance)).json()["deadlines"]
        assert page["basis"]["clock"] == {
            "start": "2027-04-30", "because": "identity_verified", "verified_on": "2027-04-30",
            "from": "2027-05-24", "to": "2027-06-01", "extended_from": "2027-07-23", "extended_to": "2027-07-30"}
        assert [a["event"] for a in page["alerts"]] == ["deadline.due_in_7_days", "deadline.due_in_2_days",
                                                        "deadline.overdue"]
        for rid in codes:
            await client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")


async def _status_is(pool, rid: str, status: str) -> bool:
    return await pool.fetchval("SELECT status FROM dsr_requests WHERE id = $1", rid) == status


async def test_the_clock_starts_once_however_often_its_step_runs(pool, settings):
    """A retry, or a replay after a crash, stores the same dates and audits the start once; a GDPR
    request's step moves nothing."""
    lifecycle = LifecycleActivities(activity_context(settings, pool))
    uk, eu = [await stored_request(pool, settings, f"uk-clock-{regime}", type_="erasure", regime=regime)
              for regime in ("uk_gdpr", "gdpr")]
    for rid in (uk, eu):  # verified by code, not attested
        await pool.execute("UPDATE dsr_requests SET received_at = $2, attested_by = NULL, due_date = $3, "
                           "current_due_date = $3 WHERE id = $1", rid, RECEIVED, RECEIPT_DUE)
    version = await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1", uk)

    def verified(rid: str) -> VerifiedAt:
        return VerifiedAt(request_id=rid, policy_version=version, verified_at=VERIFIED)

    first, again = [await lifecycle.start_clock_at_verification(verified(uk)) for _ in range(2)]
    assert first == again and (first.clock_start, first.due_date, first.extended_due_date) == (
        VERIFIED.date(), MOVED_DUE, MOVED_EXTENDED)
    assert first.due.due_date == MOVED_DUE and first.extended.due_date == MOVED_EXTENDED
    assert await _dates(pool, uk) == (MOVED_DUE, MOVED_EXTENDED, MOVED_DUE)
    events = await pool.fetch("SELECT event_type FROM audit_events WHERE request_id = $1 AND event_type LIKE "
                              "'deadline.%'", uuid.UUID(uk))
    assert [e["event_type"] for e in events] == ["deadline.clock_started"]

    assert await lifecycle.start_clock_at_verification(verified(eu)) is None
    assert (await _dates(pool, eu))[0] == RECEIPT_DUE
    assert not await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type LIKE "
                                   "'deadline.%'", uuid.UUID(eu))

    # The pack's account of it, as the read model gives it (no workflow ran: the row and the trail).
    async with pool.acquire() as conn:
        row = dict(await conn.fetchrow("SELECT * FROM dsr_requests WHERE id = $1", uk))
        trail = [dict(e) for e in await conn.fetch("SELECT * FROM audit_events WHERE request_id = $1", uuid.UUID(uk))]
        pack = deadlines(row, trail, [], await policy_defaults(conn, version))
    assert pack["basis"]["clock"]["because"] == "identity_verified" and pack["alerts"] == []
    assert "from the day they completed it" in pack["basis"]["rule"]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_unverified_uk_request_is_promised_no_date_counted_from_receipt(language):
    """Awaiting verification, a UK request's acknowledgement says the answer comes within one month
    of the day the subject confirms their identity; verified (attested) or under the GDPR, it gives
    the date as before."""
    due = long_date(request_row("uk_gdpr", "erasure", language)["current_due_date"], language)
    unverified = await as_sent("acknowledgement", "erasure", {"verification_required": True}, regime="uk_gdpr",
                               language=language)
    attested = await as_sent("acknowledgement", "erasure", {"verification_required": False}, regime="uk_gdpr",
                             language=language)
    eu = await as_sent("acknowledgement", "erasure", {"verification_required": True}, language=language)
    eu_due = long_date(request_row("gdpr", "erasure", language)["current_due_date"], language)
    for part in both(unverified):
        assert due not in part, part
    assert all(due in part for part in both(attested)) and all(eu_due in part for part in both(eu))
    if language == "en":
        for part in both(unverified):
            assert "We will answer within one month of the day you confirm your identity, at the latest." in part
            assert "we will tell you, with our reasons, within one month of the day you confirm your identity" in part


async def test_a_back_dated_uk_request_is_not_overdue_before_its_subject_verifies(stack: FastStack):
    """Received 40 days before it was entered: its month has not started, so the watch warns of
    nothing while the subject has not verified (before, it was overdue at once on the receipt's
    count: the 7- and 2-day warnings, the overdue flag, event and alert); verified, its month starts
    that day, and the watch warns before the new date."""
    fakes, now = stack.fakes, await stack.env.get_current_time()
    spec = RequestSpec(regime="uk_gdpr", attested=False, approval_required=True, received_at=now - timedelta(days=40))
    request = await stack.open(spec)
    await request.until(lambda s: s.verification is not None and s.verification.round == 1)
    await stack.sleep(timedelta(days=1))  # the receipt's warnings and overdue flag would all be due by now
    state = await request.state()
    assert (state.status, state.overdue, state.warnings_sent) == ("awaiting_verification", False, [])
    assert fakes.staff_alerts(request.id) == [] and "deadline.overdue" not in fakes.event_types(request.id)

    now = await stack.env.get_current_time()
    await request.handle.execute_update(DataSubjectRequestWorkflow.verify, fakes.typed(request.id, fakes.code(request.id)))
    state = await request.until(lambda s: s.status == "awaiting_approval")
    tz = SHIPPED.policy.defaults.timezone
    moved = compute_deadline("uk_gdpr", receipt_date_for(spec.received_at, tz, "uk_gdpr"),
                             verified=receipt_date_for(now, tz, "uk_gdpr")).due_date
    assert not state.overdue and state.current_due_date == moved > receipt_date_for(now, tz, "uk_gdpr") + timedelta(days=27)
    assert fakes.event_types(request.id).count("deadline.clock_started") == 1
    await stack.sleep(datetime.combine(moved - timedelta(days=6), datetime.min.time(), UTC) - now)
    state = await request.until(lambda s: f"due_in_7_days:{moved.isoformat()}" in fakes.staff_alerts(request.id))
    assert not state.overdue


async def test_the_watch_knows_a_uk_complaint_from_a_request_by_its_facts():
    """The watch waits for verification only where the month does: a UK request's, not a UK
    complaint's to us (its facts carry no extension: DPA 2018 s. 164A counts from its receipt), a
    GDPR request's or a verified one's."""
    fakes, rid = FakeActivities(), str(uuid.uuid4())
    fakes.specs[rid] = RequestSpec(regime="uk_gdpr", attested=False, received_at=RECEIVED)
    facts = await fakes.prepare_request(StartRequest(request_id=rid, policy_version=SHIPPED.version))
    complaint = compute_deadline("uk_gdpr", RECEIVED.date(), appeal=True)
    waiting = RequestStatus.awaiting_verification
    assert facts_clock_waits(facts, waiting) and not facts_clock_waits(facts, RequestStatus.in_progress)
    assert not facts_clock_waits(facts.model_copy(update={"due_date": complaint.due_date,
                                                          "extended_due_date": complaint.extended_due_date}), waiting)
    assert not facts_clock_waits(facts.model_copy(update={"regime": "gdpr"}), waiting)


def _words(html: str) -> str:
    """A page's text on one line, its tags left out."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def test_before_its_subject_verifies_a_uk_request_shows_no_date_and_takes_no_extension(
        settings, pool, time_skipping, mail_sink, task_queue):
    """Awaiting verification, a UK request's month has not started: the portal says what the
    acknowledgement said (no date counted from receipt) in each language, the console labels the
    receipt's date provisional and offers no extension, and the API refuses one (409, naming why).
    Verified, the portal gives the moved date, the console offers the extension and its timeline
    says how the dates moved. Before, the portal said "We answer by 24 May 2027", the console
    counted days to it, and an extension letter promised 23 July, which verification moved to 30 July."""
    env, client = time_skipping, time_skipping.client
    loaded = _waiting_policy(settings)
    await env.sleep(RECEIVED - await env.get_current_time())
    async with build_worker(client, settings, pool, task_queue=task_queue), \
            api_client(settings, client, task_queue) as http:
        uk = await _open(client, pool, task_queue, loaded, load_secret_key(settings), "uk_gdpr")
        code = _code(await wait_for_letter(mail_sink, uk, "verification"))
        for language in LANGUAGES:
            page = _words((await http.get(f"/portal/requests/{uk}?lang={language}")).text)
            assert long_date(RECEIPT_DUE, language) not in page, (language, page)
            assert translations(language).gettext(
                "We will answer within one month of the day you confirm your identity, at the latest.") in page

        compliance = await staff_headers(pool, "compliance")
        r = await http.post(f"/v1/requests/{uk}/extend", headers=compliance, json={"reason": "Nine systems."})
        assert r.status_code == 409 and EXTEND_ONCE_VERIFIED in r.json()["detail"], r.text
        listed = (await http.get(f"/v1/requests?q={uk}", headers=compliance)).json()["items"]
        assert [item["due_dates_provisional"] for item in listed] == [True]
        await console_sign_in(http, pool, "compliance")
        queue = _words((await http.get(f"/console/queue?q={uk}")).text)
        assert "provisional: due 1 month after verification" in queue and "days left" not in queue
        console = _words((await http.get(f"/console/requests/{uk}")).text)
        assert "provisional: due 1 month after verification" in console
        assert "Extend the deadline" not in console and "Could extend to" not in console

        await env.sleep(VERIFIED - await env.get_current_time())
        r = await http.post(f"/v1/public/requests/{uk}/verify", json={"code": code})
        assert r.status_code == 200, r.text
        # The page the confirmation leads to, at once: the workflow may not have moved the dates yet.
        assert long_date(RECEIPT_DUE, "en") not in (await http.get(f"/portal/requests/{uk}?lang=en")).text
        await _eventually(lambda: _status_is(pool, uk, "awaiting_approval"))
        page = _words((await http.get(f"/portal/requests/{uk}?lang=en")).text)
        assert f"We answer by {long_date(MOVED_DUE, 'en')}" in page
        console = _words((await http.get(f"/console/requests/{uk}")).text)
        assert "Extend the deadline" in console and "provisional" not in console
        assert ("Deadline counted from identity verification (received 23 April 2027, verified 30 April 2027: "
                "due 24 May 2027 → 1 June 2027, could extend to 23 July 2027 → 30 July 2027)") in console
        await client.get_workflow_handle(workflow_id_for(uk)).terminate("test over")


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_failure_of_the_clocks_step_is_named_in_words(language):
    """A staff alert names the step that failed; the new one was named by its code."""
    label = step_label("start_clock_at_verification", t=translations(language))
    assert label != "start_clock_at_verification" and "_" not in label
