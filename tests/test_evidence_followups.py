"""The evidence pack read as a DPO reads it, second pass: the deadline rule of every law, as its
provision (an appeal's cited a source file of ours, `dsrflow/domain/deadlines.py`), and the calendar
said as it counts (a VCDPA request's read "the calendar of United States", whose 45 days are plain
calendar days); and the trail's lines for a stopped request and a restriction's kept records in
words ("timed_out", "retention rule web_logs")."""

from __future__ import annotations

import pytest

from api.read_models import event_lines, event_types
from tests.evidence_pages import readable, section
from tests.support import staff_headers, stored_request

# Each law's rule as the page states it: the provision it rests on, and whose holidays count.
RULES = {
    "gdpr": ("one month from the day of receipt (Art. 12(3) GDPR)", "Regulation 1182/71, Art. 3(2)(c) and 3(4)",
             "The public holidays are those of Belgium, the member state where the controller acts"),
    "uk_gdpr": ("one month from the day of receipt", "(Art. 12(3) UK GDPR; the ICO's guidance on the right of access)",
                "The bank holidays are those of England."),
    "ccpa": ("45 calendar days from receipt (Cal. Civ. Code § 1798.130(a)(2))",
             "receipt confirmed within 10 business days (Cal. Code Regs. tit. 11, § 7021(a))",
             "the 10 business days to confirm receipt leave out weekends and the public holidays of California."),
    "vcdpa": ("45 calendar days from receipt (Va. Code § 59.1-577)", "Extension: once, by 45 days (90 in all)",
              "All days count, weekends and public holidays included, and a deadline stays on the day it falls."),
    "ctdpa": ("45 calendar days from receipt (Conn. Gen. Stat. § 42-518)", "Extension: once, by 45 days",
              "All days count, weekends and public holidays included"),
    "cpa": ("45 calendar days from receipt (C.R.S. § 6-1-1306(2))", "Extension: once, by 45 days",
            "All days count, weekends and public holidays included"),
    "lgpd": ("15 days from receipt (Art. 19, II LGPD, applied to every right); no extension", "",
             "All days count, weekends and public holidays included"),
    "pipeda": ("30 days from receipt (PIPEDA, s. 8(3), for access, applied to every request)", "Extension: once, by 30 days, the subject told within the "
               "first 30 (PIPEDA, s. 8(4))", "The holidays are Sundays and the public holidays of Canada"),
}
APPEALS = {
    "vcdpa": "an appeal of a refused request: 60 calendar days from receipt of the appeal (Va. Code § 59.1-577(C)); "
             "no extension",
    "ctdpa": "an appeal of a refused request: 60 calendar days from receipt of the appeal (Conn. Gen. Stat. "
             "§ 42-518(d)); no extension",
    "cpa": "an appeal of a refused request: 45 calendar days from receipt of the appeal (C.R.S. § 6-1-1306(3)(b)). "
           "Extension: once, by 60 days (105 in all)",
}


async def _computed(http, pool, settings, regime: str, appeal_of: str | None = None) -> tuple[str, str]:
    """(the request's id, what its pack says under "How they are computed")."""
    rid = await stored_request(pool, settings, f"rule-{regime}", type_="erasure", regime=regime)
    if appeal_of:
        await pool.execute("UPDATE dsr_requests SET details = jsonb_build_object('appeal_of', $2::text) WHERE id = $1",
                           rid, appeal_of)
    page = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text
    deadlines = section(readable(page), "Deadlines", "Decisions")
    return rid, deadlines.split("How they are computed ", 1)[1].split(" Due ", 1)[0]


@pytest.mark.parametrize("regime", sorted(RULES))
async def test_each_laws_deadline_rule_cites_its_provision_and_the_calendar_it_counts_in(
        http, pool, settings, regime):
    rid, computed = await _computed(http, pool, settings, regime)

    rule, more, calendar = RULES[regime]
    assert rule in computed and more in computed and calendar in computed, computed
    for wrong in (".py", "dsrflow", "calendar of", "Working days and holidays"):
        assert wrong not in computed, (wrong, computed)
    if regime not in ("gdpr", "uk_gdpr", "ccpa", "pipeda"):  # plain calendar days: no country's holidays
        assert "holidays of" not in computed and "United States" not in computed and "of Brazil" not in computed

    if regime in APPEALS:
        _, appeal = await _computed(http, pool, settings, regime, appeal_of=rid)
        assert APPEALS[regime] in appeal, appeal
        assert "dsrflow/domain/deadlines.py" not in appeal and "(appeal)" not in appeal, appeal
        assert "All days count, weekends and public holidays included" in appeal


def test_a_stopped_request_and_a_restrictions_kept_records_read_as_words():
    """The console's history and the pack's audit table share these lines."""
    describe = event_lines.describe_event
    assert describe({"event_type": "request.workflow_ended", "data": {"ended": "timed_out"}}) == \
        "Stopped: its workflow ended before its work was done (it had timed out)"
    assert describe({"event_type": "request.workflow_ended", "data": {"ended": "terminated"}}) == \
        "Stopped: its workflow ended before its work was done (it had been terminated)"
    # Frozen (the start sweep's alert: activities/request_start_sweep.py), by a bug or a dropped key.
    assert describe({"event_type": "request.workflow_failing", "data": {"attempts": 7, "unheld_key": None}}) == \
        "Frozen: its workflow fails each time it tries to carry on; staff alerted (7 attempts; the worker's log " \
        "names the error)"
    assert describe({"event_type": "request.workflow_failing", "data": {"attempts": 3, "unheld_key": "k1"}}).endswith(
        "(3 attempts; sealed with key 'k1', which this deployment no longer holds)")
    # The stretch's start as the page writes a moment: on the request's clock, the zone named.
    assert describe({"event_type": "request.workflow_recovered", "data": {
        "failing_since": "2026-12-05T10:00:00+00:00", "noticed": "2026-12-05T12:10:00+00:00"}},
        timezone="Europe/Brussels") == \
        "Carries on: its workflow no longer fails (frozen since 5 December 2026, 11:00 CET (UTC+1))"
    assert describe({"event_type": "request.resumed", "data": {"ended": "timed_out", "reason": "Outage fixed"}}) == \
        "Resumed: its workflow carries on from where it stopped (it had timed out: Outage fixed)"
    assert describe({"event_type": "restriction.kept_from_erasure", "data": {
        "by": "retention rule web_logs", "rule": "web_logs", "system": "analytics", "dataset": "page_events",
        "records": 12, "as_of": "2027-01-04T02:00:00+00:00"}}) == \
        "Restricted records kept from an erasure (12 record(s), from the retention rule “web logs”)"
    assert describe({"event_type": "restriction.kept_from_erasure", "data": {
        "by": "deferred erasure", "records": 3, "as_of": "2027-01-04T02:00:00+00:00"}}) == \
        "Restricted records kept from an erasure (3 record(s), from an erasure a hold had deferred)"


# Each event whose line carries a detail, with data as its writer records it: no line shows a code.
_RECORDED = {
    "request.workflow_ended": {"ended": "timed_out"},
    "request.workflow_failing": {"since": "2026-12-05T10:00:00+00:00", "attempts": 6, "unheld_key": None},
    "request.workflow_recovered": {"failing_since": "2026-12-05T10:00:00+00:00", "noticed": "2026-12-05T12:10:00+00:00"},
    "request.resumed": {"ended": "continued_as_new", "reason": "Fixed"},
    "restriction.kept_from_erasure": {"by": "retention rule web_logs", "rule": "web_logs", "records": 2},
    "letter.sent": {"purpose": "restriction_lift"},
    "letter.refused": {"purpose": "staff_alert", "message_id": "<x@dsrflow>", "to_staff": True,
                       "reply": "550 5.7.1 rejected by policy"},
    "letter.skip_settled": {"purpose": "closed_unverified", "went": False},
    "verification.succeeded": {"method": "email_code"},
    "status.denied": {"reason_code": "identity_not_established"},
    "status.closed_unverified": {},
    "status.awaiting_approval": {},
    "deadline.due_in_7_days": {},
    "task.needs_attention": {"system": "email_marketing"},
    "step.failed": {"step": "send_letter", "about": "restriction lift letter", "message": "relay down"},
    "step.resolved": {"step": "record_event", "about": "approval.granted record", "resolution": "retried"},
}


def test_a_letter_the_relay_refused_for_good_says_which_and_the_relays_reply():
    """A sweep's alert the relay refused for good (activities/sweep_alerts.py) is on the timeline
    with the relay's reply, not the bare "Letter refused" an unnamed event reads as."""
    line = event_lines.describe_event({"event_type": "letter.refused", "data": _RECORDED["letter.refused"]}, {}, {})
    assert line.startswith("Letter refused for good by the mail relay") and "550 5.7.1 rejected by policy" in line, line


@pytest.mark.parametrize("kind", sorted({*_RECORDED, *event_types.EVENT_WORDS}))
def test_no_event_line_shows_a_code(kind):
    line = event_lines.describe_event({"event_type": kind, "data": _RECORDED.get(kind, {})},
                                      {}, {"email_marketing": "E-mail marketing (newsletters)"})
    assert "_" not in line and kind not in line, line
