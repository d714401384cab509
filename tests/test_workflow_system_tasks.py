"""Fast tests of what staff carry on with when a system's task fails: a task that needs attention
holds the response until retried or resolved (a cancellation meanwhile sends none), and an
asynchronous processor is answered by callback, by polling with backoff, or never (then it needs
attention after its timeout).

Same stack as tests/test_workflow_paths.py: the real workflows on the time-skipping server, every
activity a fake registered under its real name (tests/workflow_fakes.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowHandle

from schemas.staff_answers import ResolveTaskInput, RetryTaskInput
from schemas.workflow import CancelInput, ProcessorUpdate, RequestState, TaskResult, task_workflow_id
from tests.workflow_fakes import FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, Request, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR


def statuses(state: RequestState) -> dict[str, tuple[str, int]]:
    return {r.system: (r.status, r.attempt) for r in state.results}


def response_after(stack: FastStack, request: Request) -> timedelta:
    """How long after receipt (on the virtual clock) the response went out."""
    received = stack.fakes.specs[request.id].received_at
    assert received is not None
    return stack.fakes.sent_at[f"{request.id}:response:1"] - received


async def test_tasks_needing_attention_hold_the_response_until_retried_or_resolved(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("crm"), FakeSystem("billing", broken="API key revoked"), FakeSystem("mailer", broken="quota exceeded")]))
    stuck = await request.until(lambda s: statuses(s) == {
        "crm": ("done", 1), "billing": ("needs_attention", 1), "mailer": ("needs_attention", 1)}
        and len(fakes.staff_alerts(request.id)) == 2)
    assert stuck.status == "in_progress"
    assert {r.system: r.message for r in stuck.results}["billing"] == "API key revoked"
    assert sorted(fakes.staff_alerts(request.id)) == ["attention:billing:1", "attention:mailer:1"]
    assert "response" not in fakes.subject_letters(request.id)

    fakes.system(request.id, "mailer").broken = None  # the quota was raised: a retry now succeeds
    retried = await request.handle.execute_update(DSR.retry_task, RetryTaskInput(system="mailer", actor="staff:gus"))
    again = await request.handle.execute_update(DSR.retry_task, RetryTaskInput(system="billing", actor="staff:gus"))

    assert (retried.status, retried.attempt) == ("done", 2)
    assert (again.status, again.attempt, again.message) == ("needs_attention", 2, "API key revoked")
    await request.until(lambda s: "attention:billing:2" in fakes.staff_alerts(request.id))
    assert "only a task needing attention" in await refused(
        request.handle.execute_update(DSR.retry_task, RetryTaskInput(system="crm")))
    assert "no task for system 'erp'" in await refused(
        request.handle.execute_update(DSR.resolve_task, ResolveTaskInput(system="erp", note="done by hand")))
    assert "response" not in fakes.subject_letters(request.id)

    resolved = await request.handle.execute_update(DSR.resolve_task, ResolveTaskInput(
        system="billing", note="Erased by hand in the billing console", actor="staff:hal"))

    assert (resolved.status, resolved.message) == ("done", "resolved by staff: Erased by hand in the billing console")
    final = await request.result()
    assert final.status == "completed"
    assert statuses(final) == {"crm": ("done", 1), "billing": ("done", 2), "mailer": ("done", 2)}
    assert fakes.asked(request.id) == [("billing", "erase", 1), ("billing", "erase", 2), ("crm", "erase", 1),
                                       ("mailer", "erase", 1), ("mailer", "erase", 2)]
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert sorted(fakes.staff_alerts(request.id)) == ["attention:billing:1", "attention:billing:2", "attention:mailer:1"]
    assert [(e.event_type, e.actor) for e in fakes.events if e.event_type.startswith("task.")] == [
        ("task.retried", "staff:gus"), ("task.retried", "staff:gus"), ("task.resolved", "staff:hal")]
    assert fakes.task_records[-1].result == resolved  # the resolution is stored as the task's result


async def test_cancelling_while_a_task_needs_attention_sends_no_response(stack: FastStack):
    request = await stack.open(RequestSpec(systems=[FakeSystem("crm"), FakeSystem("billing", broken="API key revoked")]))
    await request.until(lambda s: statuses(s).get("billing") == ("needs_attention", 1))

    await request.handle.execute_update(DSR.cancel, CancelInput(reason="Duplicate of an earlier request"))

    final = await request.result()
    assert final.status == "cancelled" and statuses(final)["billing"] == ("needs_attention", 1)
    assert stack.fakes.subject_letters(request.id) == ["acknowledgement", "cancellation"]
    assert stack.fakes.staff_alerts(request.id) == ["attention:billing:1"]


async def _called_back(stack: FastStack, update: ProcessorUpdate) -> tuple[Request, list[TaskResult]]:
    """A request whose processor is called back while its task waits: the verified callback
    (api/callbacks) signals the system's task workflow. The request, and the processor's results
    as recorded."""
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("crm"), FakeSystem("processor", connector="opendsr", answers_on_poll=1, recipient="Acme Mail")]))
    await request.until(lambda s: statuses(s).get("processor") == ("pending", 1))
    task: WorkflowHandle = stack.env.client.get_workflow_handle(task_workflow_id(request.id, "processor", "erase", 1))
    await task.signal("processor_update", update)

    final = await request.result()
    assert final.status == "completed" and statuses(final)["processor"] == ("done", 1)
    return request, [r.result for r in stack.fakes.task_records if r.result.system == "processor"]


async def test_an_asynchronous_processor_answers_by_callback_before_the_first_poll(stack: FastStack):
    request, recorded = await _called_back(stack, ProcessorUpdate(status="completed"))

    assert len(stack.fakes.polls) == 1  # a callback without its count is confirmed by one poll
    assert response_after(stack, request) < timedelta(minutes=5)  # not left for the first scheduled poll
    assert [r.status for r in recorded] == ["pending", "done"]


async def test_a_signed_callback_with_its_count_settles_the_task_without_a_poll(stack: FastStack):
    _, recorded = await _called_back(stack, ProcessorUpdate(status="completed", results_count=4))

    assert stack.fakes.polls == []  # the callback's own count is the outcome
    assert [(r.status, r.found, r.changed) for r in recorded] == [("pending", 0, 0), ("done", 4, 4)]
    assert recorded[-1].external_id == "job-processor-1" and recorded[-1].recipient == "Acme Mail"


async def test_an_asynchronous_processor_without_callback_is_polled_with_backoff(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[FakeSystem("processor", connector="opendsr", answers_on_poll=3)]))

    final = await request.result()

    assert final.status == "completed" and statuses(final)["processor"] == ("done", 1)
    assert len(fakes.polls) == 3 and {p.external_id for p in fakes.polls} == {"job-processor-1"}
    # Polled after 5, 15 and 35 minutes: each wait twice the one before.
    assert timedelta(minutes=35) <= response_after(stack, request) < timedelta(minutes=36)


async def test_a_processor_that_never_answers_needs_attention_after_its_timeout(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("processor", connector="opendsr", answers_on_poll=10**6, completion_timeout_days=3)]))
    await request.until(lambda s: statuses(s).get("processor") == ("pending", 1))

    await stack.sleep(timedelta(days=2, hours=23))
    assert statuses(await request.state())["processor"] == ("pending", 1)
    await stack.sleep(timedelta(hours=2))
    flagged = await request.until(lambda s: statuses(s)["processor"] == ("needs_attention", 1)
                                  and fakes.staff_alerts(request.id) == ["attention:processor:1"])

    assert flagged.results[0].message == "no answer from the processor within 3 days"
    await request.handle.execute_update(DSR.resolve_task, ResolveTaskInput(
        system="processor", note="The processor confirmed the erasure by e-mail"))
    assert (await request.result()).status == "completed"
    assert stack.fakes.subject_letters(request.id) == ["acknowledgement", "response"]
