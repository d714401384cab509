"""Requests that would freeze silently past their due date (freeze audit): a request that stays open
after its statutory deadline is brought back to staff each day until it is closed, and every
warning names what holds it back, on the time-skipping server (tests/workflow_stack.py).

Before, the overdue alert was the last letter staff had of a request: an approval nobody gave,
an objection nobody decided or a failed step nobody retried waited on, with the subject unanswered.
"""

from __future__ import annotations

from datetime import timedelta

from activities.lifecycle import deadline_checkpoints
from schemas.requests import RequestType
from schemas.workflow import LetterJob
from tests.staff_answers import DENY, awaiting_approval, replays
from tests.workflow_fakes import SHIPPED, FakeActivities
from tests.workflow_stack import FastStack, Request, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

WARNING_DAYS = SHIPPED.policy.deadline_warnings_days


def staff_alerts(fakes: FakeActivities, request: Request) -> list[LetterJob]:
    return [j for j in fakes.letters if j.request_id == request.id and j.to_staff]


async def until_alerted(stack: FastStack, request: Request, count: int) -> list[LetterJob]:
    """The request's staff alerts once there are `count` (the letter's step runs after its timer)."""
    await request.until(lambda _: len(staff_alerts(stack.fakes, request)) >= count)
    return staff_alerts(stack.fakes, request)


async def test_an_approval_nobody_gives_is_brought_back_to_staff_each_day_past_the_due_date(stack: FastStack):
    request = await awaiting_approval(stack)
    state = await request.state()
    assert state.due_date is not None
    checkpoints = deadline_checkpoints(state.due_date, SHIPPED.policy.defaults.timezone, WARNING_DAYS)
    due = state.due_date.isoformat()
    before = len(staff_alerts(stack.fakes, request))  # the approval's own alert
    warned = before + len(WARNING_DAYS) + 1  # ... the warnings and the overdue alert

    await stack.sleep(checkpoints.overdue_at - await stack.env.get_current_time() + timedelta(hours=1))
    await until_alerted(stack, request, warned)
    await stack.sleep(timedelta(days=2, hours=9))  # reminders go at 9:00 in the controller's day
    alerts = await until_alerted(stack, request, warned + 2)

    assert [j.key for j in alerts[before:]] == [
        *(f"due_in_{days}_days:{due}" for days in sorted(WARNING_DAYS, reverse=True)),
        f"overdue:{due}", f"overdue:{due}:day-2", f"overdue:{due}:day-3"]
    reminder = alerts[-1].params
    # The letter says "its deadline passed 3 days ago" (activities/templates/letters/staff_alert.txt.j2).
    assert reminder["kind"] == "overdue" and reminder["days_left"] == -3
    assert reminder["facts"] == {"what": "deadline", "status": "awaiting_approval", "late": 3}
    assert (await request.state()).overdue

    # Closed: the reminders stop.
    await request.handle.execute_update(DSR.deny, DENY)
    assert (await request.result()).status == "denied"
    assert len(staff_alerts(stack.fakes, request)) == warned + 2
    await replays(stack, request)


async def test_warnings_and_reminders_name_an_objection_nobody_decides(stack: FastStack):
    request = await stack.open(request_type=RequestType.objection, objection_scope="legitimate_interest")
    state = await request.until(lambda s: s.awaiting_decision)
    assert state.due_date is not None
    checkpoints = deadline_checkpoints(state.due_date, SHIPPED.policy.defaults.timezone, WARNING_DAYS)

    await stack.sleep(checkpoints.overdue_at - await stack.env.get_current_time() + timedelta(days=1, hours=10))
    alerts = await until_alerted(stack, request, 1 + len(WARNING_DAYS) + 2)

    assert [j.key for j in alerts][0] == "objection-decision"
    for alert in alerts[1:]:  # each warning, the overdue alert and its reminder
        assert alert.params["facts"]["objection"] is True, alert.key
    assert alerts[-1].key.endswith(":day-2")
    await request.handle.terminate("test over")


async def test_a_failed_response_letter_is_named_in_the_overdue_reminders(stack: FastStack):
    """The response's letter fails for good (a template its relay refuses) and waits for staff:
    the alert of its trouble went once; the deadline's letters say which step waits."""
    fakes = stack.fakes
    fakes.fail("send_letter", lambda: ValueError("the relay refused the letter for good"),
               when=lambda job: job.purpose == "response")
    request = await stack.open()
    state = await request.until(lambda s: s.trouble is not None)
    assert state.due_date is not None and state.status == "in_progress"
    checkpoints = deadline_checkpoints(state.due_date, SHIPPED.policy.defaults.timezone, WARNING_DAYS)

    await stack.sleep(checkpoints.overdue_at - await stack.env.get_current_time() + timedelta(days=1, hours=10))
    await request.until(lambda _: any(j.key.endswith(":day-2") and not j.key.startswith("step:")
                                      for j in staff_alerts(fakes, request)))
    alerts = staff_alerts(fakes, request)

    assert alerts[0].key.startswith("step:send_letter:")
    # The trouble's own reminders (tests/test_trouble_reminders.py) aside, the deadline's letters:
    deadline = [alert for alert in alerts if not alert.key.startswith("step:")]
    assert len(deadline) == len(WARNING_DAYS) + 2
    for alert in deadline:
        assert alert.params["facts"]["failed_steps"] == [{"step": "send_letter", "about": "response letter"}], alert.key
    assert [j.key.split(":")[-1] for j in deadline[-2:]] == [state.due_date.isoformat(), "day-2"]
    await request.handle.terminate("test over")
