"""Red team of a SaaS outage's carry-on (workflows/system_task.py `_unreached`): once the service
answers again and the task waits on something else (the service's job, its quota day), the
request's workflow must no longer show it as unreachable nor take staff's Resolve, which the task,
polling, would not heed. The real workflows on the time-skipping server, with fake activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from schemas.staff_answers import ResolveTaskInput
from schemas.workflow import waits_unreached
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
