"""A deadline warning's staff alert the relay refuses for good does not hold the deadline watch back
(workflows/deadline_watch.py WATCH_LETTERS_ASIDE), on the time-skipping server
(tests/workflow_stack.py).

Before, the watch sent each alert in its own loop: the refused warning waited there for staff, so
the request never became overdue (no `deadline.overdue` audit event, no overdue flag for the
queue's state, no overdue alert nor daily reminders), and the console still offered Extend past
the due date, which the workflow then refused.
"""

from __future__ import annotations

from datetime import timedelta

from activities.lifecycle import deadline_checkpoints
from schemas.steps import RetryStepInput
from tests.staff_answers import DENY, EXTEND, awaiting_approval, replays
from tests.workflow_fakes import SHIPPED
from tests.workflow_stack import FastStack, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

WARNING_DAYS = sorted(SHIPPED.policy.deadline_warnings_days, reverse=True)
REFUSED = "550 5.7.1 the staff list accepts members only"


async def test_a_warning_the_relay_refuses_for_good_does_not_hold_the_overdue_flag_back(stack: FastStack):
    fakes = stack.fakes
    request = await awaiting_approval(stack)
    # The approval's own staff alert goes once the request waits; under load it may not have gone
    # yet, and refused it would be a trouble of the request's own, shown before the watch's.
    await request.until(lambda _: "approval" in fakes.staff_alerts(request.id))
    fakes.fail("send_letter", lambda: ValueError(REFUSED), when=lambda job: job.to_staff)  # every staff alert
    state = await request.state()
    assert state.due_date is not None
    checkpoints = deadline_checkpoints(state.due_date, SHIPPED.policy.defaults.timezone, tuple(WARNING_DAYS))
    due = state.due_date.isoformat()

    # Past the warnings and the due date.
    await stack.sleep(checkpoints.overdue_at - await stack.env.get_current_time() + timedelta(hours=1))
    state = await request.until(lambda s: s.overdue)

    # The first warning's alert waits for staff, as its own trouble ...
    assert state.trouble is not None and state.trouble.key == "watch-send_letter:1"
    assert state.trouble.about == "staff alert letter" and REFUSED in state.trouble.message
    # ... and the request is overdue all the same: on record, and in the state the console reads
    # (it offers Extend only to a request that is not overdue; the workflow refuses it too).
    assert fakes.event_types(request.id)[-len(WARNING_DAYS) - 1:] == [
        *(f"deadline.due_in_{days}_days" for days in WARNING_DAYS), "deadline.overdue"]
    assert "has passed" in await refused(request.handle.execute_update(DSR.extend, EXTEND))
    assert set(state.warnings_sent) == set(WARNING_DAYS)

    # The relay takes staff alerts again; staff retry: the refused warning goes, then only the
    # newest of those it held back (the overdue alert), not the stale warning.
    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:ann"))
    await request.until(lambda s: s.trouble is None and f"overdue:{due}" in fakes.staff_alerts(request.id))
    assert [key for key in fakes.staff_alerts(request.id) if not key.startswith("step:")] == [
        "approval", f"due_in_{WARNING_DAYS[0]}_days:{due}", f"overdue:{due}"]

    await request.handle.execute_update(DSR.deny, DENY)
    assert (await request.result()).status == "denied"
    await replays(stack, request)
