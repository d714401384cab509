"""Conflicting staff actions on one request at the same moment (two busy colleagues, a double
click, a low-privilege agent racing a compliance officer): one outcome takes effect and the other
is refused with its reason, or is harmless; each letter goes out at most once; the audit trail
records only what took effect; the request moves on. Actions fired together land in either order,
so those tests assert what holds whichever won. Where one spans steps (an approval recorded then
carried out, an extension notified, the response sent), its step is held by failing as a slow
database or relay would (retried until healed) while the other is sent: a window that lasts as
long as those steps in production. Same stack as tests/test_workflow_paths.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.service import RPCError, RPCStatusCode

from schemas.requests import DenialReason, RequestType
from schemas.restrictions import LiftAnnounced, LiftRestrictionInput
from schemas.staff_answers import ResolveTaskInput, RetryTaskInput
from schemas.steps import RetryStepInput, SkipStepInput
from schemas.workflow import ApproveInput, DenyInput, ObjectionDecision, ResendInput
from tests.staff_answers import CLOSES, DENY, EXTEND, WITHDRAW, answered_while_held, awaiting_approval, hold, replays
from tests.workflow_fakes import FakeActivities, FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, Request, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR


async def at_once(*updates: Awaitable[Any]) -> tuple[list[Any], list[str]]:
    """Send the updates together: (the answers of those taken, the reasons of those refused)."""
    answers = await asyncio.gather(*updates, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, WorkflowUpdateFailedError):
            raise answer
    return ([a for a in answers if not isinstance(a, BaseException)],
            [str(getattr(a.cause, "message", a.cause)) for a in answers if isinstance(a, WorkflowUpdateFailedError)])


async def twice(request: Request, update: Any, *bodies: Any) -> tuple[list[Any], list[str]]:
    """The same update, with each body, sent together."""
    return await at_once(*(request.handle.execute_update(update, body) for body in bodies))


def events(fakes: FakeActivities, request: Request, prefix: str) -> list[tuple[str, str]]:
    return [(e.event_type, e.actor) for e in fakes.events if e.request_id == request.id and e.event_type.startswith(prefix)]


async def test_a_denial_and_a_withdrawal_at_once_close_the_request_once(stack: FastStack):
    fakes = stack.fakes
    request = await awaiting_approval(stack)

    taken, reasons = await at_once(request.handle.execute_update(DSR.deny, DENY),
                                   request.handle.execute_update(DSR.cancel, WITHDRAW))

    [closed] = taken
    assert len(reasons) == 1 and f"already closed (status {closed.status.value})" in reasons[0]
    letter = {"denied": "denial", "cancelled": "cancellation"}[closed.status.value]
    assert fakes.subject_letters(request.id) == ["acknowledgement", letter]
    assert fakes.statuses(request.id) == ["status:awaiting_approval", f"status:{closed.status.value}"]
    assert (await request.result()).status == closed.status


async def test_two_denials_on_different_grounds_send_one_letter_with_the_ground_on_record(stack: FastStack):
    fakes = stack.fakes
    request = await awaiting_approval(stack)
    other = DenyInput(reason_code=DenialReason.manifestly_unfounded,
                      explanation="The account was closed three years ago", actor="compliance:di")

    taken, reasons = await twice(request, DSR.deny, DENY, other)

    [denied] = taken
    assert reasons == ["request is already closed (status denied)"]
    [letter] = [j for j in fakes.letters if j.request_id == request.id and j.purpose == "denial"]
    [change] = [t for t in fakes.transitions if t.event_key == "status:denied"]
    winner = DENY if denied.closed_reason == DENY.reason_code.value else other
    assert letter.params == {"reason_code": winner.reason_code.value, "explanation": winner.explanation,
                             "acted_in": [], "asked_in": []}
    assert (change.actor, change.data) == (winner.actor, {"reason_code": winner.reason_code.value,
                                                          "explanation": winner.explanation})


@pytest.mark.parametrize("close", CLOSES)
async def test_an_approval_and_a_close_at_once_have_one_outcome(stack: FastStack, close: str):
    fakes = stack.fakes
    update, body, letter = CLOSES[close]
    request = await awaiting_approval(stack)

    taken, reasons = await at_once(request.handle.execute_update(DSR.approve, ApproveInput(actor="compliance:bo")),
                                   request.handle.execute_update(update, body))

    assert len(taken) == 1 and len(reasons) == 1
    final = await request.result()
    if final.status == "completed":  # the approval won
        assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
        assert events(fakes, request, "approval.") == [("approval.granted", "compliance:bo")]
    else:
        assert fakes.subject_letters(request.id) == ["acknowledgement", letter]
        assert events(fakes, request, "approval.") == [] and "status:approved" not in fakes.statuses(request.id)


@pytest.mark.parametrize("close", CLOSES)
async def test_a_close_while_an_approval_is_recorded_is_refused(stack: FastStack, close: str):
    """The approval spans steps (`approval.granted` in the audit trail, then `status:approved`);
    before the fix, a denial in between closed the request with the approval on record, and the
    approving officer was answered as if it had gone through."""
    fakes = stack.fakes
    update, body, _ = CLOSES[close]
    request = await awaiting_approval(stack)
    recording = hold(fakes, "record_event", lambda e: e.event_type == "approval.granted")
    approval = await request.handle.start_update(DSR.approve, ApproveInput(actor="compliance:bo"),
                                                 wait_for_stage=WorkflowUpdateStage.ACCEPTED)
    await request.until(lambda _: recording)

    reason = await refused(request.handle.execute_update(update, body))
    extension = await refused(request.handle.execute_update(DSR.extend, EXTEND))

    assert reason == extension == "request has just been approved, and the approval is being carried out"
    fakes.heal("record_event")
    assert (await approval.result()).approval == ApproveInput(actor="compliance:bo")
    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert fakes.statuses(request.id) == ["status:awaiting_approval", "status:approved", "status:completed"]
    await replays(stack, request)


async def test_an_approval_while_or_after_the_denial_goes_out_is_refused(stack: FastStack):
    fakes = stack.fakes
    request = await awaiting_approval(stack)
    sending = hold(fakes, "send_letter", lambda job: job.purpose == "denial")
    denying = asyncio.ensure_future(request.handle.execute_update(DSR.deny, DENY))
    await request.until(lambda _: sending)

    assert await refused(request.handle.execute_update(DSR.approve, ApproveInput())) == (
        "request is already closed (status denied)")
    fakes.heal("send_letter")
    await denying
    assert (await request.result()).status == "denied"
    # Its workflow has ended: the API answers 409 "the request's workflow has finished".
    with pytest.raises(RPCError) as late:
        await request.handle.execute_update(DSR.approve, ApproveInput())
    assert late.value.status == RPCStatusCode.NOT_FOUND
    assert fakes.subject_letters(request.id) == ["acknowledgement", "denial"]
    assert events(fakes, request, "approval.") == []


@pytest.mark.parametrize("action", ["deny", "withdraw", "extend"])
async def test_closing_or_extending_while_the_response_is_being_sent_is_refused(stack: FastStack, action: str):
    """Before the fix, a withdrawal while the relay was slow to take the response was accepted:
    the subject got the cancellation, then the response, and the request ended `completed`."""
    fakes = stack.fakes
    update, body, _ = CLOSES.get(action, (DSR.extend, EXTEND, None))
    answering = hold(fakes, "send_letter", lambda job: job.purpose == "response")
    request = await stack.open()
    await request.until(lambda _: answering)

    assert await refused(request.handle.execute_update(update, body)) == (
        "request is being answered: its response is on its way to the subject")

    fakes.heal("send_letter")
    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert fakes.statuses(request.id) == ["status:completed"] and fakes.extensions == []


async def failed_response(stack: FastStack) -> Request:
    """A request whose response letter cannot render: the step waits for staff."""
    stack.fakes.fail("send_letter", lambda: ValueError("template response.txt.j2 not found"),
                     when=lambda job: job.purpose == "response")
    request = await stack.open()
    await request.until(lambda s: s.trouble is not None)
    return request


@pytest.mark.parametrize("step", ["approval", "response"])
async def test_a_release_whose_step_failed_for_good_can_still_be_withdrawn_and_releases_nothing(
        stack: FastStack, step: str):
    """Not frozen: while the step carrying out an approval, or sending the response, waits for
    staff, the request can still be closed; the step then never runs."""
    fakes = stack.fakes
    if step == "approval":
        fakes.fail("transition", lambda: ValueError("the stored status is out of step"),
                   when=lambda t: t.event_key == "status:approved")
        request = await awaiting_approval(stack)
        await request.handle.execute_update(DSR.approve, ApproveInput(actor="compliance:bo"))
        await request.until(lambda s: s.trouble is not None)
    else:
        request = await failed_response(stack)

    await request.handle.execute_update(DSR.cancel, WITHDRAW)

    assert (await request.result()).status == "cancelled"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "cancellation"]
    assert [t.resolution for t in fakes.troubles] == [None, "the request was closed meanwhile"]


async def test_skipping_the_failed_response_and_withdrawing_at_once_have_one_outcome(stack: FastStack):
    fakes = stack.fakes
    request = await failed_response(stack)

    taken, reasons = await at_once(
        request.handle.execute_update(DSR.skip_step, SkipStepInput(note="Answered by hand", actor="compliance:al")),
        request.handle.execute_update(DSR.cancel, WITHDRAW))

    assert len(taken) == 1 and len(reasons) == 1
    final = await request.result()
    resolution = fakes.troubles[-1].resolution
    if final.status == "completed":  # the skip won: the response was written by hand
        assert reasons == ["request is being answered: its response is on its way to the subject"]
        assert fakes.subject_letters(request.id) == ["acknowledgement"]
        assert resolution == "skipped by staff: Answered by hand"
    else:
        assert reasons == ["request is already closed (status cancelled)"]
        assert fakes.subject_letters(request.id) == ["acknowledgement", "cancellation"]
        assert resolution == "the request was closed meanwhile"


async def test_two_extensions_at_once_extend_once(stack: FastStack):
    fakes = stack.fakes
    request = await awaiting_approval(stack)

    taken, reasons = await twice(request, DSR.extend, *(EXTEND.model_copy(update={"actor": f"compliance:{n}"})
                                                        for n in (1, 2)))

    assert len(taken) == 1 and reasons == ["the deadline has already been extended once; it cannot be extended again"]
    assert len(fakes.extensions) == 1 and fakes.subject_letters(request.id) == ["acknowledgement", "extension"]
    await request.handle.execute_update(DSR.approve, ApproveInput())
    assert (await request.result()).current_due_date == taken[0].extended_due_date


async def test_a_close_while_an_extension_is_notified_is_refused_and_the_response_waits_for_it(stack: FastStack):
    """Before the fix, a denial while the extension's letter was on its way was followed by that
    letter; and an approval then sent the response before it: the subject read of a new due date
    after being answered."""
    fakes = stack.fakes
    request = await awaiting_approval(stack)
    notifying = hold(fakes, "send_letter", lambda job: job.purpose == "extension")
    extending = asyncio.ensure_future(request.handle.execute_update(DSR.extend, EXTEND))
    await request.until(lambda _: notifying)

    for update, body, _ in CLOSES.values():
        assert await refused(request.handle.execute_update(update, body)) == (
            "request's deadline is being extended and the subject told; try again in a moment")
    # Its record queues behind the letter: answered with it still owed.
    await answered_while_held(stack, request, notifying, DSR.approve, ApproveInput(actor="compliance:bo"))
    fakes.heal("send_letter")

    assert (await extending).extended
    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "extension", "response"]
    await replays(stack, request)


async def _stuck(stack: FastStack) -> Request:
    request = await stack.open(RequestSpec(systems=[FakeSystem("crm"), FakeSystem("billing", broken="API key revoked")]))
    await request.until(lambda s: any(r.status == "needs_attention" for r in s.results))
    stack.fakes.system(request.id, "billing").broken = None
    return request


async def test_a_retry_and_a_resolution_of_one_task_at_once_do_one_of_them(stack: FastStack):
    fakes = stack.fakes
    request = await _stuck(stack)

    taken, reasons = await at_once(
        request.handle.execute_update(DSR.retry_task, RetryTaskInput(system="billing", actor="compliance:gus")),
        request.handle.execute_update(DSR.resolve_task, ResolveTaskInput(
            system="billing", note="Erased by hand in the billing console", actor="compliance:hal")))

    [result] = taken  # the other is refused as no longer needing attention, or (answered by now) as closed
    assert len(reasons) == 1 and ("only a task needing attention" in reasons[0] or "already closed" in reasons[0])
    assert len(events(fakes, request, "task.")) == 1
    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert fakes.asked(request.id).count(("billing", "erase", 2)) == (1 if result.attempt == 2 else 0)


async def test_two_resolutions_of_one_task_record_one(stack: FastStack):
    fakes = stack.fakes
    request = await _stuck(stack)

    taken, reasons = await twice(request, DSR.resolve_task, *(ResolveTaskInput(
        system="billing", note=f"Erased by hand, ticket {n}", actor=f"compliance:{n}") for n in (1, 2)))

    [resolved] = taken
    assert len(reasons) == 1 and ("the billing task is done" in reasons[0] or "already closed" in reasons[0])
    ticket = resolved.message.rsplit(" ", 1)[-1]
    assert events(fakes, request, "task.") == [("task.resolved", f"compliance:{ticket}")]
    assert [r.result.message for r in fakes.task_records if r.result.system == "billing"][-1] == resolved.message
    assert (await request.result()).status == "completed"


async def test_a_retry_and_a_skip_of_one_failed_step_at_once_answer_it_once(stack: FastStack):
    fakes = stack.fakes
    fakes.fail("send_letter", lambda: ValueError("template acknowledgement.txt.j2 not found"),
               when=lambda job: job.purpose == "acknowledgement")
    request = await stack.open()
    await request.until(lambda s: s.trouble is not None)
    fakes.heal("send_letter")

    taken, reasons = await at_once(
        request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:jo")),
        request.handle.execute_update(DSR.skip_step, SkipStepInput(note="Acknowledged by phone", actor="compliance:al")))

    # Refused while the first answer is carried out, or (on a loaded machine, the second arriving
    # later) once the step has succeeded and its trouble closed.
    assert len(taken) == 1 and len(reasons) == 1 and reasons[0] in (
        "the failed step send_letter has already been answered",
        "no step of this request has failed; there is nothing to retry or skip")
    assert (await request.result()).status == "completed"
    [(resolution, actor)] = [(t.resolution, t.actor) for t in fakes.troubles if t.resolution]
    if actor == "compliance:jo":
        assert resolution == "the step succeeded when tried again"
        assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    else:
        assert resolution == "skipped by staff: Acknowledged by phone"
        assert fakes.subject_letters(request.id) == ["response"]


async def test_two_lifts_of_a_restriction_at_once_lift_it_once(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.restriction)
    await request.until(lambda s: s.status == "completed" and fakes.restrictions)

    taken, reasons = await twice(request, DSR.lift_restriction, *(LiftRestrictionInput(
        reason=f"Accuracy verified, case {n}", actor=f"compliance:{n}") for n in (1, 2)))

    assert len(taken) == 1 and reasons == ["the restriction is already being lifted"]
    await request.result()
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response", "restriction_lift"]
    # One lift, by whoever won (a local step may run again: the real one is keyed, as the letter).
    assert len({(r.reason, r.actor) for r in fakes.restrictions if isinstance(r, LiftAnnounced)}) == 1


async def test_an_objection_decided_both_ways_at_once_keeps_one_decision(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.objection, objection_scope="legitimate_interest")
    await request.until(lambda s: s.awaiting_decision)

    taken, reasons = await twice(request, DSR.decide_objection, *(ObjectionDecision(
        compelling_grounds=grounds, explanation=f"Compelling grounds: {grounds}", actor=f"compliance:{grounds}")
        for grounds in (True, False)))

    [decided] = taken
    assert len(reasons) == 1 and reasons[0] in (
        "this request is not an objection awaiting a decision", "request is already closed (status completed)")
    assert (await request.result()).status == "completed"
    grounds = decided.decision.compelling_grounds
    assert fakes.letter(request.id, "response").params["decision"]["compelling_grounds"] is grounds
    assert events(fakes, request, "objection.") == [("objection.decided", f"compliance:{grounds}")]
    # Each system once, or none (a local step may run again when the refused update's workflow task
    # is dropped: the real one is keyed, as the letter).
    assert sorted(set(fakes.asked(request.id))) == ([] if grounds else [("billing", "object", 1), ("crm", "object", 1)])


async def test_a_resend_and_the_old_code_at_once_never_verify_with_a_dead_code(stack: FastStack):
    """Either the code is judged first and verifies (the resend is then refused: no new code goes
    out), or the resend's new code is out first and the old one is refused as an earlier e-mail's
    (workflows/verification.py EARLIER_CODE: no attempt spent)."""
    fakes = stack.fakes
    request = await stack.open(attested=False)
    await request.until(lambda s: s.verification is not None and s.verification.round == 1)
    old = fakes.code(request.id)

    taken, reasons = await at_once(request.handle.execute_update(DSR.verify, fakes.typed(request.id, old)),
                                   request.handle.execute_update(DSR.resend_verification, ResendInput(actor="agent:ann")))

    if reasons:  # verified with the code in force; nothing resent
        [verdict] = taken
        assert verdict.verified and len(reasons) == 1 and "request is not awaiting verification" in reasons[0]
        codes = ["verification"]
    else:
        verdict, resent = taken
        assert (verdict.verified, verdict.earlier_code, verdict.attempts_left, resent.round) == (False, True, 5, 2)
        new = await request.handle.execute_update(DSR.verify, fakes.typed(request.id, fakes.code(request.id)))
        assert new.verified
        codes = ["verification", "verification"]
    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", *codes, "response"]

