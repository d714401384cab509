"""A processor's status endpoint down past a poll's quick retries (about four minutes) no longer
leaves its task needing staff, whose Retry then submitted a new job: the job stands at the
processor, so the task stays pending with a note saying its status cannot be read and why, and the
next poll asks again, backing off, until the system's completion timeout (whose message then says
since when). A refusal (the processor forgot the job) still needs staff at once.
workflows/system_task.py `_poll`: the real workflows on the time-skipping server, with fake
activities (tests/workflow_fakes.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from tests.test_workflow_system_tasks import statuses
from tests.workflow_fakes import FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, stack_fixture  # noqa: F401 (the fixture)


def _down() -> ApplicationError:
    return ApplicationError("HTTP 503 from the processor's status endpoint", type="HttpSystemUnavailable")


def _notes(stack: FastStack, request_id: str) -> list[tuple[str, str | None]]:
    """The processor task's results as recorded, in order."""
    return [(r.result.status, r.result.message) for r in stack.fakes.task_records
            if r.request_id == request_id and r.result.system == "processor"]


async def test_a_processor_whose_status_is_down_for_hours_is_asked_again_by_itself(stack: FastStack):
    fakes = stack.fakes
    fakes.fail("poll_system_action", _down)
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("crm"), FakeSystem("processor", connector="opendsr", answers_on_poll=2)]))

    await stack.sleep(timedelta(minutes=30))  # the first poll, its quick retries spent
    state = await request.until(lambda s: any("could not be read" in (m or "") for _, m in _notes(stack, request.id)))
    assert statuses(state)["processor"] == ("pending", 1)
    note = next(m for _, m in _notes(stack, request.id) if m and "could not be read" in m)
    assert note.startswith("asked; its status could not be read: ") and "503" in note
    assert "asked again by itself" in note
    failed_before = fakes.attempts["poll_system_action"]
    await stack.sleep(timedelta(hours=8))
    assert fakes.attempts["poll_system_action"] > failed_before  # asked again, by itself
    assert fakes.staff_alerts(request.id) == []

    fakes.heal("poll_system_action")
    await stack.sleep(timedelta(hours=14))
    final = await request.result()
    assert final.status == "completed" and statuses(final)["processor"] == ("done", 1)
    assert fakes.asked(request.id).count(("processor", "erase", 1)) == 1  # no new job was submitted
    assert fakes.staff_alerts(request.id) == []
    # Read again: the note of its failure was taken back before the job ended.
    assert [s for s, m in _notes(stack, request.id)][-2:] == ["pending", "done"]
    assert "could not be read" not in (_notes(stack, request.id)[-2][1] or "")


async def test_a_status_down_until_the_completion_timeout_needs_staff_saying_since_when(stack: FastStack):
    fakes = stack.fakes
    fakes.fail("poll_system_action", _down)
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("processor", connector="opendsr", answers_on_poll=1, completion_timeout_days=14)]))

    await stack.sleep(timedelta(days=15))
    state = await request.until(lambda s: statuses(s)["processor"] == ("needs_attention", 1))
    status, message = _notes(stack, request.id)[-1]
    assert status == "needs_attention"
    assert message is not None and message.startswith(
        "no answer from the processor within 14 days; its status could not be read since ")
    assert "503" in message
    await request.until(lambda s: fakes.staff_alerts(request.id) == ["attention:processor:1"])
    assert state.status != "completed"
    await request.handle.terminate("test over")


async def test_a_processor_refusing_the_poll_needs_staff_at_once(stack: FastStack):
    """A refusal is no outage: the task needs staff at the first poll, as before."""
    fakes = stack.fakes
    fakes.fail("poll_system_action", lambda: ApplicationError(
        "HTTP 404: the processor has no such job", type="PermanentConnectorError", non_retryable=True))
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("processor", connector="opendsr", answers_on_poll=1)]))

    await stack.sleep(timedelta(minutes=10))
    await request.until(lambda s: statuses(s)["processor"] == ("needs_attention", 1))
    assert _notes(stack, request.id)[-1] == ("needs_attention", "HTTP 404: the processor has no such job")
    assert not any("could not be read" in (m or "") for _, m in _notes(stack, request.id))
    await request.handle.terminate("test over")
