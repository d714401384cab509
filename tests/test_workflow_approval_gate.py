"""Fast tests of the approval gate in a request's workflow (policy `approval_required_for`): the
response, or a change to the systems, waits for compliance's approval; compliance may deny at the
gate instead; two approvals at once release it once; an approval whose record is slow, or fails
for good, releases nothing before it is on record.

Same stack as tests/test_workflow_paths.py (the request's other paths): the real workflows on the
time-skipping server with every activity replaced by a fake under its real name
(tests/workflow_fakes.py); tests/test_approval.py covers the gate end to end.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import WorkflowUpdateFailedError

from schemas.requests import DenialReason, RequestType
from schemas.steps import RetryStepInput
from schemas.workflow import ApproveInput, DenyInput
from tests.staff_answers import DENY, answered_while_held, hold, replays
from tests.workflow_stack import FastStack, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR


async def test_the_response_waits_for_approval_and_goes_out_once_approved(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.access, approval_required=True)
    waiting = await request.until(lambda s: s.status == "awaiting_approval")
    assert waiting.package is not None and waiting.approval is None and waiting.approval_required

    await stack.sleep(timedelta(days=5))  # nobody looks for days: nothing goes out meanwhile

    assert (await request.state()).status == "awaiting_approval"
    assert fakes.subject_letters(request.id) == ["acknowledgement"]
    assert fakes.staff_alerts(request.id) == ["approval"]
    approved = await request.handle.execute_update(DSR.approve, ApproveInput(note="Package checked", actor="compliance:bo"))
    # The main line has moved on: the response is on its way (or, its steps being quick, out).
    assert approved.status in ("in_progress", "completed") and approved.approval.note == "Package checked"
    final = await request.result()
    assert final.status == "completed" and final.approval.actor == "compliance:bo"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert fakes.statuses(request.id) == ["status:awaiting_approval", "status:approved", "status:completed"]
    assert [t.actor for t in fakes.transitions if t.event_key == "status:approved"] == ["compliance:bo"]
    assert fakes.event_types(request.id).count("approval.granted") == 1


async def test_a_change_to_the_systems_is_approved_before_any_system_is_touched(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(approval_required=True)  # an attested erasure, under the shipped policy
    waiting = await request.until(lambda s: s.status == "awaiting_approval")
    assert waiting.plan is not None and len(waiting.plan.tasks) == 2
    assert fakes.asked(request.id) == []

    await request.handle.execute_update(DSR.approve, ApproveInput(actor="compliance:bo"))

    final = await request.result()
    assert final.status == "completed"
    assert fakes.asked(request.id) == [("billing", "erase", 1), ("crm", "erase", 1)]
    assert fakes.staff_alerts(request.id) == ["approval"]  # approved once: no second gate before the response
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]


async def test_compliance_may_deny_at_the_gate_instead(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.access, approval_required=True)
    await request.until(lambda s: s.status == "awaiting_approval")

    denied = await request.handle.execute_update(DSR.deny, DenyInput(
        reason_code=DenialReason.excessive, explanation="The fourth identical request this month", actor="compliance:cy"))

    assert denied.status == "denied" and denied.closed_reason == "excessive"
    assert (await request.result()).status == "denied"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "denial"]
    assert fakes.letter(request.id, "denial").params == {  # denied before any system was changed
        "reason_code": "excessive", "explanation": "The fourth identical request this month", "acted_in": [], "asked_in": []}
    assert fakes.statuses(request.id) == ["status:awaiting_approval", "status:denied"]


async def test_two_approvals_at_once_release_the_response_once(stack: FastStack):
    """Two officers press Approve together: one approval is taken, the other refused."""
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.access, approval_required=True)
    await request.until(lambda s: s.status == "awaiting_approval")

    answers = await asyncio.gather(*(request.handle.execute_update(
        DSR.approve, ApproveInput(note=f"officer {n}", actor=f"compliance:{n}")) for n in (1, 2)), return_exceptions=True)

    taken = [a for a in answers if not isinstance(a, BaseException)]
    [refusal] = [a for a in answers if isinstance(a, WorkflowUpdateFailedError)]
    # Refused by the handler's re-check, or, the response gone out meanwhile, as closed.
    reason = str(getattr(refusal.cause, "message", refusal.cause))
    assert len(taken) == 1 and ("not awaiting approval" in reason or "already closed" in reason), reason
    final = await request.result()
    assert final.status == "completed" and final.approval == taken[0].approval
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert fakes.event_types(request.id).count("approval.granted") == 1


async def test_an_approval_the_database_is_slow_to_record_is_answered_and_releases_nothing_before(
        stack: FastStack):
    """Before, the officer's call waited while the record was retried for the policy's threshold
    (15 minutes), then failed, although the database might take the record late: an approval in
    the audit trail that never counted."""
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.access, approval_required=True)
    await request.until(lambda s: s.status == "awaiting_approval")
    writing = hold(fakes, "record_event", lambda event: event.event_type == "approval.granted")

    taken = await answered_while_held(stack, request, writing, DSR.approve,
                                      ApproveInput(note="Package checked", actor="compliance:bo"))

    assert taken.status == "awaiting_approval" and taken.owed == ["record_event"] and taken.trouble is None
    assert taken.approval is not None and taken.approval.note == "Package checked"
    assert "just been approved" in await refused(request.handle.execute_update(DSR.deny, DENY))
    assert fakes.subject_letters(request.id) == ["acknowledgement"]  # nothing released before the record
    assert fakes.statuses(request.id) == ["status:awaiting_approval"]
    fakes.heal("record_event")
    await stack.sleep(timedelta(minutes=2))  # past the held step's retry backoff
    assert (await request.result()).status == "completed"
    assert fakes.event_types(request.id).count("approval.granted") == 1
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    await replays(stack, request)


async def test_an_approval_whose_record_fails_for_good_waits_for_staff_and_releases_nothing(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.access, approval_required=True)
    await request.until(lambda s: s.status == "awaiting_approval")
    fakes.fail("record_event", lambda: ValueError("audit data refused"),
               when=lambda event: event.event_type == "approval.granted")

    taken = await request.handle.execute_update(DSR.approve, ApproveInput(actor="compliance:bo"))

    assert taken.trouble is not None and taken.trouble.step == "record_event" and not taken.trouble.skippable
    assert "the approval is not on record" in await refused(request.handle.execute_update(DSR.deny, DENY))
    assert fakes.subject_letters(request.id) == ["acknowledgement"]
    fakes.heal("record_event")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:bo"))
    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]

