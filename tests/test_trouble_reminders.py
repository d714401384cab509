"""A failed step that waits for staff is brought back to them each morning until it is answered
(workflows/step_trouble.py TROUBLE_REMINDERS), on the time-skipping server (tests/workflow_stack.py).

Before, a trouble's alert was the only e-mail staff had of it. Above all a denial's letter the
relay refused for good: the request is closed, so the deadline's overdue reminders no longer run,
and the subject's letter with the reasons and remedies was owed with nothing but the queue's
"needs attention" and DsrStepNeedsAttentionForADay to say so.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from schemas.requests import RequestType
from schemas.steps import RetryStepInput
from schemas.workflow import LetterJob
from tests.staff_answers import DENY, awaiting_approval, replays
from tests.workflow_fakes import SHIPPED, FakeActivities
from tests.workflow_stack import FastStack, Request, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

TZ = ZoneInfo(SHIPPED.policy.defaults.timezone)
REFUSED = "550 5.1.1 mailbox unavailable"


def refuse(fakes: FakeActivities, purpose: str) -> None:
    """The relay refuses this letter for good (a deterministic error: no retry cures it)."""
    fakes.fail("send_letter", lambda: ValueError(REFUSED), when=lambda job: job.purpose == purpose)


def trouble_alerts(fakes: FakeActivities, request: Request) -> list[LetterJob]:
    """The staff alerts about the request's failed steps, in order: each trouble's, and its reminders."""
    return [j for j in fakes.letters if j.request_id == request.id and j.to_staff and j.key.startswith("step:")]


def next_morning(moment: datetime) -> datetime:
    """9:00 the controller's time, the day after `moment`'s."""
    return datetime.combine(moment.astimezone(TZ).date() + timedelta(days=1), time(9), tzinfo=TZ)


def local(job: LetterJob, fakes: FakeActivities) -> datetime:
    return fakes.sent_at[f"{job.request_id}:{job.purpose}:{job.key}"].astimezone(TZ)


async def test_a_denial_letter_the_relay_refuses_is_brought_back_to_staff_each_morning_until_retried(
        stack: FastStack):
    fakes = stack.fakes
    request = await awaiting_approval(stack)
    refuse(fakes, "denial")
    answer = await request.handle.execute_update(DSR.deny, DENY)
    assert answer.status == "denied" and answer.trouble is not None and answer.trouble.key == "owed-send_letter:1"
    denied_at = await stack.env.get_current_time()

    # Three days pass: the closed request's workflow waits for the letter, and staff hear of it
    # each morning.
    await stack.sleep(next_morning(denied_at) + timedelta(days=2, hours=1) - denied_at)
    await request.until(lambda _: len(trouble_alerts(fakes, request)) >= 4)
    alerts = trouble_alerts(fakes, request)
    assert [j.key for j in alerts] == ["step:owed-send_letter:1", *(f"step:owed-send_letter:1:day-{n}" for n in (1, 2, 3))]
    first = next_morning(denied_at)
    for n, reminder in enumerate(alerts[1:]):
        sent = local(reminder, fakes)
        assert sent.date() == first.date() + timedelta(days=n)
        assert (sent.hour, sent.minute) == (9, 0)  # across a change of clocks too (tests/test_reminder_local_hour.py)
        assert reminder.params["kind"] == "needs_attention"
        assert reminder.params["days_left"] is None  # a closed request has no days left to count
    assert alerts[1].params["facts"] == {"what": "step_failed", "step": "send_letter", "about": "denial letter",
                                         "message": f"ValueError: {REFUSED}", "skippable": True, "waited": 1}
    assert alerts[3].params["facts"]["waited"] == 3  # read in tests/test_staff_alert_reading.py
    assert (await request.state()).trouble is not None  # still waiting

    # The relay takes it now; staff retry: the letter goes, the reminders stop, the request ends.
    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:ann"))
    assert (await request.result()).status == "denied"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "denial"]
    assert len(trouble_alerts(fakes, request)) == 4
    await replays(stack, request)


async def test_a_failed_step_of_an_open_request_is_no_longer_reminded_once_it_succeeds(stack: FastStack):
    """The acknowledgement's letter fails for good: reminded the next morning; retried once the
    relay takes it, the request carries on, and no reminder of that step comes any more."""
    fakes = stack.fakes
    refuse(fakes, "acknowledgement")
    request = await stack.open(request_type=RequestType.access, approval_required=True)
    state = await request.until(lambda s: s.trouble is not None)
    assert state.trouble is not None and state.status == "in_progress"
    opened = await stack.env.get_current_time()

    await stack.sleep(next_morning(opened) + timedelta(hours=1) - opened)
    await request.until(lambda _: len(trouble_alerts(fakes, request)) >= 2)
    reminder = trouble_alerts(fakes, request)[-1]
    assert reminder.key == f"step:{state.trouble.key}:day-1"
    # An open request's reminder counts the days left, as its other alerts do.
    assert state.due_date is not None
    assert reminder.params["days_left"] == (state.due_date - local(reminder, fakes).date()).days

    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:ann"))
    await request.until(lambda s: s.status == "awaiting_approval" and s.trouble is None)
    await stack.sleep(timedelta(days=3))
    await request.until(lambda _: "approval" in fakes.staff_alerts(request.id))
    assert len(trouble_alerts(fakes, request)) == 2
    assert fakes.subject_letters(request.id) == ["acknowledgement"]
    await replays(stack, request)
    await request.handle.terminate("test over")
