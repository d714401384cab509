"""Staff's answer to a system's task that needs attention (retry, resolve) when its own record
is slow or fails: the database down past the call's patience (workflows/task_fanout.py
TASK_ANSWERS_OWED).

Before TASK_ANSWERS_BOUNDED the record was retried for the policy's threshold (15 minutes) while
the caller waited, and then the update failed with its answer already taken: a retried task
stayed `pending` with nothing running, so the request answered the subject without it. Before
TASK_ANSWERS_OWED the answer was taken back after 30 s, while a record the database took late
stayed in the audit trail for an answer that never counted. Now the answer stands, its records
are owed steps, and nothing follows from it (the new attempt, the response) before they are done.
Same stack as tests/test_workflow_paths.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from schemas.requests import RequestType
from schemas.restrictions import LiftAnnounced, LiftCarriedOut, LiftRestrictionInput, RestrictionInForce
from schemas.staff_answers import ResolveTaskInput, RetryTaskInput
from tests.staff_answers import CLOSES, answered_while_held, hold, replays
from tests.test_owed_steps import still_running
from tests.workflow_fakes import FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

ANSWERS: dict[str, tuple[Any, Any, str, list[str]]] = {
    "retry": (DSR.retry_task, RetryTaskInput(system="billing", actor="compliance:gus"), "task.retried",
              ["record_event"]),
    "resolve": (DSR.resolve_task, ResolveTaskInput(system="billing", note="Erased by hand in the billing console",
                                                    actor="compliance:hal"), "task.resolved",
                ["record_event", "record_task_result"]),
}


@pytest.mark.parametrize("answer", ANSWERS)
async def test_an_answer_whose_record_is_slow_stands_and_holds_the_response_until_it_is_on_record(
        stack: FastStack, answer: str):
    fakes = stack.fakes
    update, body, event, owed = ANSWERS[answer]
    request = await stack.open(RequestSpec(systems=[FakeSystem("crm"), FakeSystem("billing", broken="API key revoked")]))
    await request.until(lambda s: {r.system: r.status for r in s.results}.get("billing") == "needs_attention")
    fakes.system(request.id, "billing").broken = None
    writing = hold(fakes, "record_event", lambda e: e.event_type == event)

    taken = await answered_while_held(stack, request, writing, update, body)

    # Answered within ANSWER_WITHIN, the answer standing and its records under way.
    assert taken.status == ("pending" if answer == "retry" else "done")
    assert (await request.state()).owed == owed
    await still_running(request)
    assert "response" not in fakes.subject_letters(request.id)
    assert [c.attempt for c in fakes.system_calls if c.task.system == "billing"] == [1]  # not run again yet
    # Kept failing past the policy's threshold: staff are told which record.
    await stack.sleep(timedelta(minutes=fakes.specs[request.id].attention_after_minutes))
    troubled = await request.until(lambda s: s.trouble is not None)
    assert troubled.trouble is not None and troubled.trouble.about == f"{event} record"
    assert not troubled.trouble.skippable  # a record cannot be done by other means

    fakes.heal("record_event")
    final = await request.result()
    assert final.status == "completed" and fakes.event_types(request.id).count(event) == 1
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert {r.system: (r.status, r.attempt) for r in final.results}["billing"] == (
        ("done", 2) if answer == "retry" else ("done", 1))
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


@pytest.mark.parametrize("close", ["withdraw", "deny"])
async def test_a_retry_still_waiting_for_its_record_when_the_request_closes_never_runs(stack: FastStack, close: str):
    """Staff retry an erasure's task while the database is slow to record it, and the request is
    then closed (the subject withdraws it, or compliance denies it). The retry is recorded, since
    it was taken, but the system is not asked again. Before, the new attempt ran once the record was
    done: a withdrawn or denied erasure went on erasing."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[FakeSystem("crm"), FakeSystem("billing", broken="API key revoked")]))
    await request.until(lambda s: {r.system: r.status for r in s.results}.get("billing") == "needs_attention")
    fakes.system(request.id, "billing").broken = None
    writing = hold(fakes, "record_event", lambda e: e.event_type == "task.retried")
    await answered_while_held(stack, request, writing, DSR.retry_task,
                              RetryTaskInput(system="billing", actor="compliance:gus"))
    update, body, letter = CLOSES[close]

    # Its own record and letter queue behind the retry's record: answered with them still owed.
    closed = await answered_while_held(stack, request, writing, update, body)
    assert closed.status.is_closed
    fakes.heal("record_event")
    final = await request.result()

    assert fakes.event_types(request.id).count("task.retried") == 1  # taken, so on record
    assert [c.attempt for c in fakes.system_calls if c.task.system == "billing"] == [1]  # never run again
    billing = {r.system: r for r in final.results}["billing"]
    assert (billing.status, billing.attempt) == ("needs_attention", 2)
    assert billing.message == "not run: the request was closed before the retry was on record"
    assert fakes.subject_letters(request.id) == ["acknowledgement", letter]
    # The closing letter names what had been done: the crm's erasure, not billing's, nor billing
    # as still asked (its retry never runs).
    assert fakes.letter(request.id, letter).params["acted_in"] == ["crm"]
    assert fakes.letter(request.id, letter).params["asked_in"] == []
    await replays(stack, request)


async def test_a_request_withdrawn_while_a_processor_works_names_what_was_done_and_who_may_still_act(
        stack: FastStack):
    """The subject withdraws an erasure once the sql systems are done and while a processor still
    works on it: the confirmation names the systems already changed and the processor, which may
    still act (activities/letter_context.py `named_systems`)."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("crm"), FakeSystem("billing", found=0), FakeSystem("processor", connector="opendsr", answers_on_poll=3)]))
    await request.until(lambda s: {r.system: r.status for r in s.results} == {
        "crm": "done", "billing": "done", "processor": "pending"})
    update, body, letter = CLOSES["withdraw"]

    await asyncio.wait_for(request.handle.execute_update(update, body), 30)
    await request.result()

    params = fakes.letter(request.id, letter).params
    assert (params["acted_in"], params["asked_in"]) == (["crm"], ["processor"])  # billing held nothing


@pytest.mark.parametrize("close", ["withdraw", "deny"])
async def test_a_processor_retried_before_the_request_closes_is_followed_to_its_end(stack: FastStack, close: str):
    """Staff retry a processor's task, and the request is closed while the processor works on the
    retry. The request ends once the retry's task has, with its result recorded, as a first
    attempt's is. Before, the request ended at once and cut the retry's task off (a server
    terminates a child whose parent completes): the task stayed `pending` for ever on the closed
    request, though the processor had been asked and might act (and the time-skipping test server
    stopped moving its clock once the orphaned child ended: journey 106)."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("crm"), FakeSystem("mailer", connector="opendsr", answers_on_poll=2, broken="API key revoked")]))
    await request.until(lambda s: {r.system: r.status for r in s.results}.get("mailer") == "needs_attention")
    fakes.system(request.id, "mailer").broken = None
    answer = await request.handle.execute_update(DSR.retry_task, RetryTaskInput(system="mailer", actor="compliance:gus"))
    assert (answer.status, answer.attempt) == ("pending", 2)
    update, body, letter = CLOSES[close]

    closed = await asyncio.wait_for(request.handle.execute_update(update, body), 30)
    assert closed.status.is_closed
    final = await request.result()

    assert {r.system: (r.status, r.attempt) for r in final.results} == {"crm": ("done", 1), "mailer": ("done", 2)}
    assert fakes.letter(request.id, letter).params["asked_in"] == ["mailer"]  # told it may still act: it did
    await replays(stack, request)


async def test_a_lift_tasks_resolution_the_database_is_slow_to_record_holds_the_lift_until_it_is(stack: FastStack):
    """The lift of a completed restriction runs after the request's own steps have ended: staff's
    answers to its tasks owe their records all the same, and the lift is recorded as carried out
    only once they are done."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(request_type=RequestType.restriction,
                                           systems=[FakeSystem("crm"), FakeSystem("billing")]))
    await request.until(lambda s: s.status == "completed" and fakes.restrictions)
    fakes.system(request.id, "billing").broken = "this system cannot lift a restriction"
    await request.handle.execute_update(DSR.lift_restriction, LiftRestrictionInput(
        reason="The claim was settled", actor="compliance:kim"))
    await request.until(lambda s: {r.system: r.status for r in s.results}.get("billing") == "needs_attention")
    writing = hold(fakes, "record_event", lambda e: e.event_type == "task.resolved")

    taken = await answered_while_held(stack, request, writing, DSR.resolve_task, ResolveTaskInput(
        system="billing", note="Lifted by hand in the billing console", actor="compliance:hal"))

    assert taken.status == "done"
    assert (await request.state()).owed == ["record_event", "record_task_result"]
    await still_running(request)
    assert not [r for r in fakes.restrictions if isinstance(r, LiftCarriedOut)]
    fakes.heal("record_event")
    await request.result()
    assert [type(r) for r in fakes.restrictions] == [RestrictionInForce, LiftAnnounced, LiftCarriedOut]
    assert fakes.event_types(request.id).count("task.resolved") == 1
    await replays(stack, request)
