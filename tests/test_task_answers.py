"""Staff's answer to a system's task that needs attention (retry, resolve) when its own record
fails: the database down past the call's patience (workflows/task_fanout.py TASK_ANSWERS_BOUNDED).

Before, the record was retried for the policy's threshold (15 minutes) while the caller waited,
and then the update failed with its answer already taken: a retried task stayed `pending` with
nothing running, so the request answered the subject without it; a resolution stood as `done`
with no evidence of who made it, and the response could go out before it was on record. Same
stack as tests/test_workflow_paths.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from schemas.workflow import ResolveTaskInput, RetryTaskInput
from tests.test_owed_steps import answered_while_held, still_running
from tests.test_staff_races import hold, replays
from tests.workflow_fakes import FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR
from workflows.dsr_steps import CALLER_WAITS

ANSWERS: dict[str, tuple[Any, Any, str, str]] = {
    "retry": (DSR.retry_task, RetryTaskInput(system="billing", actor="compliance:gus"), "task.retried", "the retry"),
    "resolve": (DSR.resolve_task, ResolveTaskInput(system="billing", note="Erased by hand in the billing console",
                                                    actor="compliance:hal"), "task.resolved", "the resolution"),
}


@pytest.mark.parametrize("answer", ANSWERS)
async def test_an_answer_whose_record_fails_is_taken_back_and_the_request_keeps_waiting(stack: FastStack, answer: str):
    fakes = stack.fakes
    update, body, event, what = ANSWERS[answer]
    request = await stack.open(RequestSpec(systems=[FakeSystem("crm"), FakeSystem("billing", broken="API key revoked")]))
    await request.until(lambda s: {r.system: r.status for r in s.results}.get("billing") == "needs_attention")
    fakes.system(request.id, "billing").broken = None
    writing = hold(fakes, "record_event", lambda e: e.event_type == event)
    answering = asyncio.ensure_future(request.handle.execute_update(update, body))
    await request.until(lambda _: writing)

    await stack.sleep(CALLER_WAITS + timedelta(seconds=5))
    reason = await asyncio.wait_for(refused(answering), 20)

    assert f"{what} could not be recorded" in reason and "the task still needs attention" in reason
    state = await request.state()
    assert {r.system: (r.status, r.attempt) for r in state.results}["billing"] == ("needs_attention", 1)
    await still_running(request)  # the subject is not answered without the system
    assert "response" not in fakes.subject_letters(request.id)

    fakes.heal("record_event")
    done = await request.handle.execute_update(update, body)
    assert done.status == "done"
    final = await request.result()
    assert final.status == "completed" and fakes.event_types(request.id).count(event) == 1
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    await replays(stack, request)


async def test_a_retry_of_a_sql_task_whose_system_does_not_answer_is_answered_pending(stack: FastStack):
    """A sql system answers in milliseconds, so staff's retry waits for its result; before, a
    system that did not answer held the call through all its retries (about 8 minutes)."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[FakeSystem("crm"), FakeSystem("billing", broken="API key revoked")]))
    await request.until(lambda s: {r.system: r.status for r in s.results}.get("billing") == "needs_attention")
    fakes.system(request.id, "billing").broken = None
    asking = hold(fakes, "run_system_action", lambda task: task.task.system == "billing" and task.attempt == 2)

    answer = await answered_while_held(stack, request, asking, DSR.retry_task,
                                       RetryTaskInput(system="billing", actor="compliance:gus"))

    assert (answer.status, answer.attempt) == ("pending", 2)
    await still_running(request)
    assert "response" not in fakes.subject_letters(request.id)
    fakes.heal("run_system_action")
    final = await request.result()
    assert final.status == "completed"
    assert {r.system: (r.status, r.attempt) for r in final.results}["billing"] == ("done", 2)
    await replays(stack, request)


async def test_a_retry_of_a_sql_task_is_answered_with_its_result(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[FakeSystem("billing", broken="API key revoked")]))
    await request.until(lambda s: {r.system: r.status for r in s.results}.get("billing") == "needs_attention")
    fakes.system(request.id, "billing").broken = None

    answer = await asyncio.wait_for(request.handle.execute_update(
        DSR.retry_task, RetryTaskInput(system="billing", actor="compliance:gus")), 20)

    assert (answer.status, answer.attempt) == ("done", 2)
    assert (await request.result()).status == "completed"



async def test_a_retry_still_running_when_the_other_systems_finish_lets_the_response_go_once_it_is_done(
        stack: FastStack):
    """The fan-out ends while staff's retry of one task is still under way: the response waits for
    the retry and goes out once it is done. Before, `settle` waited for the set of stuck tasks to
    change, which it never did (none was stuck), so the request stayed `in_progress` with every
    task done (seen on the holds page's restriction, resolved while a processor confirmed)."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("mailer", connector="opendsr", answers_on_poll=2, broken="API key revoked"),
        FakeSystem("processor", connector="opendsr", answers_on_poll=1)]))
    await request.until(lambda s: {r.system: r.status for r in s.results}.get("mailer") == "needs_attention")
    fakes.system(request.id, "mailer").broken = None
    answer = await request.handle.execute_update(DSR.retry_task, RetryTaskInput(system="mailer", actor="compliance:gus"))
    assert (answer.status, answer.attempt) == ("pending", 2)

    # The processor confirms on its first poll (5 minutes), the retried mailer on its second (15).
    final = await request.result()
    assert final.status == "completed"
    assert {r.system: (r.status, r.attempt) for r in final.results} == {"mailer": ("done", 2), "processor": ("done", 1)}
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    await replays(stack, request)
