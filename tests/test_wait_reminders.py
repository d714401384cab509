"""Waits nobody was brought back to (RELIABILITY.md, "Where a request can wait"), on the
time-skipping server with every activity a fake (tests/workflow_stack.py).

A restriction's lift runs after the request was answered, so no deadline watch follows it: a
system that could not lift it was alerted once, and after that only the queue and
DsrTaskNeedsAttentionForADay said the restriction the subject was told would end still held
there. Its alerts also counted "days left" (0) to a due date long answered.
"""

from __future__ import annotations

from datetime import timedelta

from schemas.requests import RequestType
from schemas.restrictions import LiftRestrictionInput
from schemas.staff_answers import RetryTaskInput
from schemas.steps import RetryStepInput
from schemas.workflow import LetterJob
from tests.staff_answers import replays
from tests.test_trouble_reminders import local, next_morning, refuse
from tests.workflow_fakes import FakeActivities, FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, Request, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

LIFT = LiftRestrictionInput(reason="The accuracy of the data has been verified", actor="compliance:kim")


def lift_alerts(fakes: FakeActivities, request: Request) -> list[LetterJob]:
    return [j for j in fakes.letters if j.request_id == request.id and j.key.startswith("lift-attention:")]


async def test_a_lift_task_that_needs_staff_is_brought_back_to_them_each_morning_until_retried(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(RequestSpec(request_type=RequestType.restriction, systems=[FakeSystem("crm")]))
    await request.until(lambda s: s.status == "completed" and fakes.restrictions)
    fakes.system(request.id, "crm").broken = "crm: permission denied for table contacts"
    await request.handle.execute_update(DSR.lift_restriction, LIFT)
    await request.until(lambda s: any(r.status == "needs_attention" for r in s.results))
    stuck_at = await stack.env.get_current_time()

    await stack.sleep(next_morning(stuck_at) + timedelta(days=2, hours=1) - stuck_at)
    await request.until(lambda _: len(lift_alerts(fakes, request)) >= 4)
    alerts = lift_alerts(fakes, request)
    assert [j.key for j in alerts] == ["lift-attention:crm:1", *(f"lift-attention:crm:1:day-{n}" for n in (1, 2, 3))]
    # The request was answered: no days left, nor late, to count.
    assert [j.params["days_left"] for j in alerts] == [None] * 4
    first = next_morning(stuck_at)
    for n, reminder in enumerate(alerts[1:]):
        assert local(reminder, fakes).date() == first.date() + timedelta(days=n)
        assert reminder.params["kind"] == "needs_attention"
        assert reminder.params["facts"] == {"what": "task_stuck", "system": "crm", "action": "lift_restriction",
                                            "message": "crm: permission denied for table contacts", "waited": n + 1}

    # Staff fix it and retry: the lift ends, and no reminder comes any more.
    fakes.system(request.id, "crm").broken = None
    await request.handle.execute_update(DSR.retry_task, RetryTaskInput(system="crm", actor="compliance:kim"))
    await request.result()
    assert len(lift_alerts(fakes, request)) == 4
    assert ("crm", "lift_restriction", 2) in fakes.asked(request.id)
    await replays(stack, request)


async def test_a_lift_letter_that_fails_counts_no_days_to_the_answered_due_date(stack: FastStack):
    """The lift's own failed step: reminded each morning (workflows/step_trouble.py), and neither
    its alert nor its reminders say the request is 0 days from, or days past, its due date."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(request_type=RequestType.restriction, systems=[FakeSystem("crm")]))
    await request.until(lambda s: s.status == "completed" and fakes.restrictions)
    refuse(fakes, "restriction_lift")
    lifting = await request.handle.execute_update(DSR.lift_restriction, LIFT)
    assert lifting.trouble is not None
    failed_at = await stack.env.get_current_time()

    await stack.sleep(next_morning(failed_at) + timedelta(hours=1) - failed_at)
    await request.until(lambda _: any(j.key.endswith(":day-1") for j in fakes.letters if j.request_id == request.id))
    alerts = [j for j in fakes.letters if j.request_id == request.id and j.key.startswith("step:")]
    assert [j.params["days_left"] for j in alerts] == [None, None]

    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:kim"))
    await request.result()
    await replays(stack, request)
