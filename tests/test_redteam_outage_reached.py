"""Red team of a SaaS outage's carry-on (workflows/system_task.py `_unreached`): once the service
answers again and the task waits on something else (the service's job, its quota day), the
request's workflow must no longer show it as unreachable nor take staff's Resolve, which the task,
polling, would not heed. The real workflows on the time-skipping server, with fake activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from schemas.staff_answers import ResolveTaskInput
from schemas.workflow import TaskResult, task_workflow_id, waits_unreached
from tests.workflow_fakes import FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR


async def test_a_task_whose_saas_is_back_and_waits_on_its_job_is_no_longer_shown_unreachable(stack: FastStack):
    fakes = stack.fakes
    fakes.fail("run_system_action", lambda: ApplicationError("HTTP 503 from the service", type="HttpSystemUnavailable"))
    request = await stack.open(RequestSpec(systems=[FakeSystem("newsletter", connector="http", answers_on_poll=3)]))
    await stack.sleep(timedelta(minutes=30))
    await request.until(lambda s: any(waits_unreached(r) for r in s.results))

    fakes.heal("run_system_action")
    await stack.sleep(timedelta(minutes=10))  # the next try: the service takes the job
    state = await request.until(lambda s: not any(waits_unreached(r) for r in s.results))
    [task] = state.results
    assert (task.status, task.external_id) == ("pending", "job-newsletter-1"), task
    assert "only a task needing attention" in await refused(request.handle.execute_update(
        DSR.resolve_task, ResolveTaskInput(system="newsletter", note="Deleted by hand in Mailchimp")))
    await request.handle.terminate("test over")


async def test_a_resolution_crossing_the_end_of_the_wait_ends_the_task_polling_its_job(stack: FastStack):
    """Staff's Resolve taken by the request's workflow just before it heard that the service was
    back (the two cross) reaches a task already polling its job: the task ends with staff's result
    and polls no more (it ignored it, polling on, and on a quota day submitting more). The crossing
    is made by sending the task the resolution as the request's workflow does."""
    fakes = stack.fakes
    fakes.fail("run_system_action", lambda: ApplicationError("HTTP 503 from the service", type="HttpSystemUnavailable"))
    request = await stack.open(RequestSpec(systems=[FakeSystem("newsletter", connector="http", answers_on_poll=10**6)]))
    await stack.sleep(timedelta(minutes=30))
    state = await request.until(lambda s: any(waits_unreached(r) for r in s.results))
    fakes.heal("run_system_action")
    await stack.sleep(timedelta(minutes=10))
    await request.until(lambda s: not any(waits_unreached(r) for r in s.results))

    resolution = state.results[0].model_copy(update={"status": "done", "external_id": None,
                                                     "message": "resolved by staff: Deleted by hand in Mailchimp"})
    task = stack.env.client.get_workflow_handle(task_workflow_id(request.id, "newsletter", "erase", 1),
                                                    result_type=TaskResult)
    polls = fakes.attempts["poll_system_action"]
    await task.signal("staff_resolved", resolution)
    ended = await task.result()
    assert (ended.status, ended.message) == ("done", "resolved by staff: Deleted by hand in Mailchimp")
    await stack.sleep(timedelta(days=1))
    assert fakes.attempts["poll_system_action"] == polls
    assert (await request.result()).status == "completed"
