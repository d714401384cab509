"""A staff decision whose own steps fail: a denial, a cancellation or an extension takes effect at
once, and its record and its letter to the subject are owed until done (workflows/owed_steps.py).

Before, they ran inside the update: a letter the relay refused for good failed the update
("Activity task failed"), although the request was already denied; its workflow then ended
`denied` with no letter, no alert and nothing for staff to retry. The subject was never told of
the refusal and their remedies (Art. 12(4) GDPR), nor of an extension (Art. 12(3)). Same stack as
tests/test_workflow_paths.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from schemas.requests import RequestType
from schemas.steps import RetryStepInput, SkipStepInput
from schemas.workflow import ApproveInput, ObjectionDecision
from tests.staff_answers import CLOSES, DENY, EXTEND, answered_while_held, awaiting_approval, hold, replays
from tests.workflow_fakes import FakeActivities
from tests.workflow_stack import FastStack, Request, fast_env, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR
from workflows.dsr_steps import RequestClosed
from workflows.step_trouble import StepTroubles

REFUSED = "550 5.1.1 mailbox unavailable"


def refuse(fakes: FakeActivities, purpose: str) -> None:
    """The relay refuses this letter for good (a deterministic error: no retry cures it)."""
    fakes.fail("send_letter", lambda: ValueError(REFUSED), when=lambda job: job.purpose == purpose)


def troubles(fakes: FakeActivities, request: Request) -> list[tuple[str, str | None]]:
    """(key, resolution) of every trouble record the request stored, in order."""
    return [(t.trouble.key, t.resolution) for t in fakes.troubles if t.request_id == request.id]


async def alerted(fakes: FakeActivities, request: Request, key: str) -> list[str]:
    """The staff alerts once `key` is among them (a trouble's alert goes out beside its step)."""
    for _ in range(500):
        if key in fakes.staff_alerts(request.id):
            break
        await asyncio.sleep(0.02)
    return fakes.staff_alerts(request.id)


async def scheduled_activities(request: Request) -> list[str]:
    history = await request.handle.fetch_history()
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")]


async def still_running(request: Request) -> None:
    """Its workflow has not ended (asked without waiting for its result, which would let the test
    server skip time ahead)."""
    await asyncio.sleep(0.3)
    assert (await request.handle.describe()).status == WorkflowExecutionStatus.RUNNING


@pytest.mark.parametrize("action", ["deny", "withdraw"])
async def test_a_closing_letter_the_relay_refuses_waits_for_staff_and_is_sent_on_retry(stack: FastStack, action: str):
    fakes = stack.fakes
    update, body, letter = CLOSES[action]
    request = await awaiting_approval(stack)
    refuse(fakes, letter)

    answer = await request.handle.execute_update(update, body)

    # The decision took effect and is recorded; staff are told what is left, not "refused".
    assert answer.status.is_closed
    assert answer.trouble is not None and answer.trouble.step == "send_letter" and REFUSED in answer.trouble.message
    assert answer.trouble.skippable and not answer.trouble.transient
    assert answer.trouble.about == f"{letter.replace('_', ' ')} letter"  # which letter, for staff
    assert f"step:{answer.trouble.key}" in await alerted(fakes, request, f"step:{answer.trouble.key}")
    [alert] = [j for j in fakes.letters if j.request_id == request.id and j.key == f"step:{answer.trouble.key}"]
    assert alert.params["facts"] == {"what": "step_failed", "step": "send_letter", "about": answer.trouble.about,
                                     "message": answer.trouble.message, "skippable": True}
    assert fakes.statuses(request.id)[-1] == f"status:{answer.status.value}"
    assert await alerted(fakes, request, "step:owed-send_letter:1") == ["approval", "step:owed-send_letter:1"]
    assert troubles(fakes, request) == [("owed-send_letter:1", None)]
    # Closed, so no other decision; but its workflow waits for the letter instead of ending.
    assert "already closed" in await refused(request.handle.execute_update(DSR.deny, DENY))
    await still_running(request)

    fakes.heal("send_letter")
    retried = await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:ann"))
    assert retried.trouble is not None and retried.trouble.answered_by == "compliance:ann"

    assert (await request.result()).status == answer.status
    assert fakes.subject_letters(request.id) == ["acknowledgement", letter]
    assert troubles(fakes, request) == [("owed-send_letter:1", None),
                                        ("owed-send_letter:1", "the step succeeded when tried again")]
    # Activity tasks, acting only once the decision's workflow task is recorded (the request's own
    # status changes are local steps, whose marker events these are not).
    assert "transition" in await scheduled_activities(request)
    await replays(stack, request)


async def test_a_closing_letter_sent_by_hand_is_skipped_and_the_request_ends(stack: FastStack):
    fakes = stack.fakes
    request = await awaiting_approval(stack)
    refuse(fakes, "denial")
    await request.handle.execute_update(DSR.deny, DENY)

    await request.handle.execute_update(DSR.skip_step, SkipStepInput(
        note="Posted the denial to the subject's postal address", actor="compliance:ann"))

    assert (await request.result()).status == "denied"
    assert fakes.subject_letters(request.id) == ["acknowledgement"]  # never sent by us
    assert troubles(fakes, request)[-1] == (
        "owed-send_letter:1", "skipped by staff: Posted the denial to the subject's postal address")
    await replays(stack, request)


async def test_a_denial_whose_record_keeps_failing_is_retried_on_its_own_and_cannot_be_skipped(stack: FastStack):
    """The database is down: the stored status is retried for the policy's threshold, then the
    trouble shows (a record cannot be skipped), and it is retried again on its own until the
    database answers; the letter follows the record, never before it."""
    fakes = stack.fakes
    request = await awaiting_approval(stack)
    writing = hold(fakes, "transition", lambda change: change.event_key == "status:denied")
    threshold = timedelta(minutes=fakes.specs[request.id].attention_after_minutes)

    answer = await answered_while_held(stack, request, writing, DSR.deny, DENY)
    assert answer.status == "denied" and answer.trouble is None
    assert answer.owed == ["transition", "send_letter"]  # the letter follows the record
    await stack.sleep(threshold)  # retried meanwhile, on the workflow's timers
    troubled = await request.until(lambda s: s.trouble is not None)

    assert len(writing) > 5 and troubled.owed == ["transition", "send_letter"]
    assert troubled.trouble is not None and troubled.trouble.step == "transition"
    assert troubled.trouble.about == f"status {troubled.status.value} record"
    assert troubled.trouble.transient and not troubled.trouble.skippable
    assert "cannot be skipped" in await refused(request.handle.execute_update(
        DSR.skip_step, SkipStepInput(note="Stored by hand", actor="compliance:ann")))
    assert fakes.subject_letters(request.id) == ["acknowledgement"]

    fakes.heal("transition")
    await stack.sleep(threshold)  # a transient trouble is tried again on its own

    assert (await request.result()).status == "denied"
    assert fakes.statuses(request.id)[-1] == "status:denied"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "denial"]
    assert troubles(fakes, request)[-1] == ("owed-transition:1", "the step succeeded when tried again")


async def test_an_extension_whose_letter_fails_holds_closing_and_answering_until_staff_act(stack: FastStack):
    fakes = stack.fakes
    request = await awaiting_approval(stack)
    refuse(fakes, "extension")

    answer = await request.handle.execute_update(DSR.extend, EXTEND)

    assert answer.extended and answer.current_due_date == answer.extended_due_date
    assert answer.trouble is not None and answer.trouble.step == "send_letter"
    assert [e.reason for e in fakes.extensions] == [EXTEND.reason]  # recorded
    # Nothing may reach the subject before the new date does: neither a refusal nor the answer.
    for update, body, _ in CLOSES.values():
        assert await refused(request.handle.execute_update(update, body)) == (
            "the extension of the request's deadline is not done: its step send_letter failed; "
            "retry or skip it first")
    await request.handle.execute_update(DSR.approve, ApproveInput(actor="compliance:bo"))
    await still_running(request)
    assert fakes.subject_letters(request.id) == ["acknowledgement"]

    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:ann"))

    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "extension", "response"]
    await replays(stack, request)


async def test_an_owed_letter_and_a_failed_step_of_the_request_are_answered_one_after_the_other(stack: FastStack):
    """Two troubles at once (the relay refuses both the extension's letter and the response): the
    owed one is shown and answered first, then the request's own; each is stored apart."""
    fakes = stack.fakes
    request = await awaiting_approval(stack)
    refuse(fakes, "extension")
    await request.handle.execute_update(DSR.extend, EXTEND)
    fakes.fail("send_letter", lambda: ValueError(REFUSED), when=lambda job: job.purpose in ("extension", "response"))
    await request.handle.execute_update(DSR.approve, ApproveInput(actor="compliance:bo"))

    shown = await request.until(lambda s: s.trouble is not None)
    assert shown.trouble is not None and shown.trouble.key == "owed-send_letter:1"
    await request.handle.execute_update(DSR.skip_step, SkipStepInput(note="Phoned the subject about the new date"))
    # The response goes out after the extension is done, and the relay refuses it too.
    shown = await request.until(lambda s: s.trouble is not None and not s.trouble.key.startswith("owed-"))
    assert shown.trouble is not None and shown.trouble.step == "send_letter"
    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput())

    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert [key for key, resolution in troubles(fakes, request) if resolution] == [
        "owed-send_letter:1", "send_letter:1"]


@workflow.defn(name="CloseAtTheRetryTimer", sandboxed=False)
class CloseAtTheRetryTimer:
    """A transient trouble whose own retry timer fires in the workflow task that closes the
    request (as a staff update arriving at that moment would): `closed` holds from then on."""

    @workflow.run
    async def run(self, request_id: str) -> str:
        threshold = timedelta(minutes=15)
        closes_at = workflow.now() + threshold
        try:
            return await StepTroubles().failed(request_id, "send_letter", "relay down", transient=True,
                                               skippable=True, attention_after=threshold,
                                               closed=lambda: workflow.now() >= closes_at, days_left=None)
        except RequestClosed:
            return "closed"


async def test_a_close_at_the_moment_of_a_transient_troubles_own_retry_wins():
    """Before, the retry timer won: a response letter whose trouble was retried on its own went
    out after the request was cancelled, and the request ended `completed`."""
    fakes = FakeActivities()
    async with (fast_env() as env,
                Worker(env.client, task_queue="race", workflows=[CloseAtTheRetryTimer], activities=fakes.all(),
                       workflow_runner=UnsandboxedWorkflowRunner())):
        handle = await env.client.start_workflow(CloseAtTheRetryTimer.run, "r1", id="race", task_queue="race")
        assert await handle.result() == "closed"
    assert [t.resolution for t in fakes.troubles] == [None, "the request was closed meanwhile"]


async def test_an_objection_decision_whose_record_keeps_failing_holds_the_request_until_it_is_on_record(
        stack: FastStack):
    """Before, the decision took effect while its `objection.decided` event failed: staff were
    answered "Activity task failed", and the systems were told to stop with no decision in the
    audit trail. Until it is on record the request is held as during an approval's record: a
    denial, a cancellation or an extension is refused (before, each was taken, and the decision
    then recorded after the request was closed on another ground)."""
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.objection, objection_scope="legitimate_interest")
    await request.until(lambda s: s.awaiting_decision)
    writing = hold(fakes, "record_event", lambda event: event.event_type == "objection.decided")
    threshold = timedelta(minutes=fakes.specs[request.id].attention_after_minutes)

    taken = await answered_while_held(stack, request, writing, DSR.decide_objection, ObjectionDecision(
        compelling_grounds=False, explanation="No grounds outweigh it", actor="compliance:dee"))
    assert taken.decision is not None and taken.owed == ["record_event"] and taken.trouble is None
    assert not taken.decision_on_record
    for update, body in (CLOSES["deny"][:2], CLOSES["withdraw"][:2], (DSR.extend, EXTEND)):
        assert "just been decided" in await refused(request.handle.execute_update(update, body))
    await stack.sleep(threshold)
    decided = await request.until(lambda s: s.trouble is not None)
    for update, body in (CLOSES["deny"][:2], CLOSES["withdraw"][:2], (DSR.extend, EXTEND)):
        assert "the objection's decision is not on record: its step record_event failed" in await refused(
            request.handle.execute_update(update, body))

    assert decided.decision is not None and not decided.awaiting_decision
    assert decided.trouble is not None and decided.trouble.step == "record_event" and not decided.trouble.skippable
    assert decided.trouble.about == "objection.decided record"
    assert fakes.asked(request.id) == []  # no system is told before the decision is on record
    fakes.heal("record_event")
    await stack.sleep(threshold)  # retried on its own

    final = await request.result()
    assert final.status == "completed" and final.decision_on_record and not final.extended
    assert fakes.asked(request.id) == [("billing", "object", 1), ("crm", "object", 1)]
    assert fakes.event_types(request.id).count("objection.decided") == 1
    await replays(stack, request)


@pytest.mark.parametrize("action", ["deny", "withdraw", "extend"])
async def test_a_decision_is_answered_at_once_while_the_relay_is_slow_and_its_letter_goes_out_after(
        stack: FastStack, action: str):
    """Before, the officer's call waited for the letter until the policy's threshold (15 min),
    far longer than a browser or a proxy waits; they saw an error for a decision taken."""
    fakes = stack.fakes
    update, body, letter = {**CLOSES, "extend": (DSR.extend, EXTEND, "extension")}[action]
    request = await awaiting_approval(stack)
    sending = hold(fakes, "send_letter", lambda job: job.purpose == letter)

    answer = await answered_while_held(stack, request, sending, update, body)

    assert answer.trouble is None and answer.owed == ["send_letter"]
    assert answer.status.is_closed if action != "extend" else answer.extended
    assert letter not in fakes.subject_letters(request.id)
    fakes.heal("send_letter")
    await stack.sleep(timedelta(minutes=2))  # past the held step's retry backoff
    done = await request.until(lambda s: not s.owed)
    assert done.trouble is None and fakes.subject_letters(request.id)[-1] == letter
    await replays(stack, request)
