"""Staff's morning reminders (a failed step's, an overdue request's) and a UK complaint's progress
letters go at 9:00 the controller's time on the right day, whatever change of clocks lies between
the request's deadline checkpoints and the moment (workflows/step_trouble.py LOCAL_HOUR), on the
time-skipping server (tests/workflow_stack.py).

Before, the controller's days were 24 h steps from the checkpoints' midnight (a UTC instant): a
trouble opened in the first hour of the day after a change was reminded at 8:00 or 10:00, or the
same day; a complaint received in the first hour of its day had its letters a day early. The
instants asserted are UTC, as the staff member's or the complainant's mailbox has them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schemas.requests import RequestType
from tests.staff_answers import replays
from tests.workflow_fakes import SHIPPED, RequestSpec
from tests.workflow_stack import FastStack, stack_fixture  # noqa: F401 (the fixture)

BRUSSELS = SHIPPED.policy.defaults.timezone
assert BRUSSELS == "Europe/Brussels"  # changes on the last Sundays of March and October
NEW_YORK = "America/New_York"  # on the second Sunday of March and the first of November


def _utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


async def _at(stack: FastStack, when: datetime) -> None:
    """Move the fresh server's virtual clock (today's date) on to `when`."""
    now = await stack.env.get_current_time()
    assert when > now, "the scenario's dates must lie ahead of the machine's clock: move them on a year"
    await stack.sleep(when - now)


def _sent(stack: FastStack, request_id: str, key_start: str) -> list[tuple[str, datetime]]:
    """(key, when) of the staff alerts whose key starts so, in the order they went."""
    fakes = stack.fakes
    return [(j.key, fakes.sent_at[f"{request_id}:{j.purpose}:{j.key}"]) for j in fakes.letters
            if j.request_id == request_id and j.to_staff and j.key.startswith(key_start)]


def _near(at: datetime, expected: datetime) -> bool:
    return abs(at - expected) < timedelta(minutes=1)


# (zone, received, the trouble opens at 00:30 local the day after the change, its reminders' days)
TROUBLES = {
    # October: received in summer time (due 15 October), the trouble on 1 November at 00:30 CET.
    "brussels-october": (BRUSSELS, _utc(2027, 9, 15, 8), _utc(2027, 10, 31, 23, 30),
                         [_utc(2027, 11, 2, 8), _utc(2027, 11, 3, 8)]),
    # March: received in winter time (due 10 March), the trouble on 29 March at 00:30 CEST.
    "brussels-march": (BRUSSELS, _utc(2027, 2, 10, 9), _utc(2027, 3, 28, 22, 30),
                       [_utc(2027, 3, 30, 7), _utc(2027, 3, 31, 7)]),
    # New York: received in daylight time, the trouble on 8 November at 00:30 EST (9:00 = 14:00 UTC).
    "new-york-november": (NEW_YORK, _utc(2027, 9, 1, 14), _utc(2027, 11, 8, 5, 30),
                          [_utc(2027, 11, 9, 14), _utc(2027, 11, 10, 14)]),
    # and in standard time, the trouble on 15 March at 00:30 EDT (9:00 = 13:00 UTC).
    "new-york-march": (NEW_YORK, _utc(2027, 1, 20, 15), _utc(2027, 3, 15, 4, 30),
                       [_utc(2027, 3, 16, 13), _utc(2027, 3, 17, 13)]),
}


@pytest.mark.parametrize("case", list(TROUBLES))
async def test_staff_are_reminded_at_nine_local_the_morning_after_across_a_change_of_clocks(
        stack: FastStack, case: str):
    """A request past its due date whose acknowledgement the relay refuses for good, at 00:30 the
    day after a change: the trouble's reminders go at 9:00 the next mornings, and so do the
    overdue request's daily reminders (due before the change, reminded after it)."""
    zone, received, opened, mornings = TROUBLES[case]
    fakes = stack.fakes
    fakes.fail("send_letter", lambda: ValueError("550 5.1.1 mailbox unavailable"),
               when=lambda job: job.purpose == "acknowledgement")
    await _at(stack, opened)
    request = await stack.open(RequestSpec(request_type=RequestType.access, approval_required=True,
                                           received_at=received, timezone=zone,
                                           regime="gdpr" if zone == BRUSSELS else "vcdpa"))
    state = await request.until(lambda s: s.trouble is not None)
    assert state.trouble is not None and state.due_date is not None
    assert state.due_date < opened.astimezone(ZoneInfo(zone)).date()  # due before the change

    await stack.sleep(mornings[-1] + timedelta(hours=1) - await stack.env.get_current_time())
    await request.until(lambda _: len(_sent(stack, request.id, "step:")) >= 3)
    alerts = _sent(stack, request.id, "step:")
    key = f"step:{state.trouble.key}"
    assert [k for k, _ in alerts] == [key, f"{key}:day-1", f"{key}:day-2"]
    assert _near(alerts[0][1], opened)  # the alert, when it opened
    for (_, at), morning in zip(alerts[1:], mornings, strict=True):
        assert _near(at, morning), (at, morning)

    # The overdue request's daily reminders since (the one due went as it opened), at the same
    # hour: the morning it opened, and the next two.
    overdue = [at for _, at in _sent(stack, request.id, "overdue:") if at > opened + timedelta(minutes=1)]
    expected = [mornings[0] - timedelta(days=1), *mornings]
    assert len(overdue) == len(expected) and all(map(_near, overdue, expected)), (overdue, expected)
    await replays(stack, request)
    await request.handle.terminate("test over")


# A UK complaint received the week before the October change (Monday 25 October 2027 in Brussels),
# late in the morning or in its first half hour: its 14-day letters on 8 and 22 November at 9:00 CET
# (08:00 UTC). One received on 28 September (due 28 October, before the change): its third letter,
# late, on 9 November at 9:00 CET, not 07:00 UTC (9:00 in summer time).
COMPLAINTS = {
    "week-before-10h00-cest": (_utc(2027, 10, 25, 8), [_utc(2027, 11, 8, 8), _utc(2027, 11, 22, 8)]),
    "week-before-00h30-cest": (_utc(2027, 10, 24, 22, 30), [_utc(2027, 11, 8, 8), _utc(2027, 11, 22, 8)]),
    "due-before": (_utc(2027, 9, 28, 8), [_utc(2027, 10, 12, 7), _utc(2027, 10, 26, 7), _utc(2027, 11, 9, 8)]),
}


@pytest.mark.parametrize("case", list(COMPLAINTS))
async def test_a_complaints_progress_letters_go_at_nine_local_across_the_october_change(stack: FastStack, case: str):
    received, letters = COMPLAINTS[case]
    await _at(stack, received)
    request = await stack.open(RequestSpec(regime="uk_gdpr", complaint=True, approval_required=True))
    await request.until(lambda s: s.status == "awaiting_approval")

    await stack.sleep(letters[-1] + timedelta(hours=1) - await stack.env.get_current_time())
    await request.until(lambda _: sum(j.purpose == "complaint_progress" for j in stack.fakes.letters) >= len(letters))
    fakes = stack.fakes
    sent = [(j.key, fakes.sent_at[f"{request.id}:{j.purpose}:{j.key}"]) for j in fakes.letters
            if j.request_id == request.id and j.purpose == "complaint_progress"]
    assert [k for k, _ in sent] == [str(n) for n in range(1, len(letters) + 1)]
    for (_, at), expected in zip(sent, letters, strict=True):
        assert _near(at, expected), (at, expected)
    # Its replay under the patch: tests/histories/complaint_progress.json (tests/test_replay.py).
    await request.handle.terminate("test over")
