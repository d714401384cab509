"""Fast tests of a request's paths through its workflow: verification and its expiry, the objection
decision, the extension and the deadline watch, cancellation, a system needing staff. The approval
gate (and a denial at it): tests/test_workflow_approval_gate.py.

The real workflows run on the time-skipping server with every activity replaced by a fake under
its real name (tests/workflow_fakes.py, after temporalio/samples-python), driven through the
workflow's public interface (start, updates, the `state` query) the way the API drives it. They
check a workflow change in seconds; the real-stack tests (test_lifecycle.py, test_approval.py,
test_step_trouble.py, ...) still cover the same paths end to end, letters and database included.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.service import RPCError

from activities.lifecycle import deadline_checkpoints
from schemas.requests import RequestType
from schemas.staff_answers import ResolveTaskInput
from schemas.verification import VerifyResult
from schemas.workflow import (
    ApproveInput,
    CancelInput,
    ExtendInput,
    ObjectionDecision,
    ResendInput,
    task_workflow_id,
)
from tests.support import eventually
from tests.test_workflow_system_tasks import statuses
from tests.workflow_fakes import SHIPPED, FakeActivities, FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

REASON = "Your request covers nine years of support history across several systems."


async def test_attested_erasure_erases_everywhere_and_answers_once(stack: FastStack):
    request = await stack.open()

    final = await request.result()

    fakes = stack.fakes
    assert final.status == "completed" and final.trouble is None
    assert fakes.asked(request.id) == [("billing", "erase", 1), ("crm", "erase", 1)]
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert fakes.letter(request.id, "acknowledgement").params == {"verification_required": False}
    reported = fakes.letter(request.id, "response").params["report"]["results"]
    assert sorted((r["system"], r["status"], r["changed"]) for r in reported) == [("billing", "done", 3), ("crm", "done", 3)]
    assert fakes.statuses(request.id) == ["status:completed"]  # attested: in progress from the start
    assert fakes.staff_alerts(request.id) == []


async def test_subject_verifies_by_code_and_receives_their_package(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.access, attested=False)
    state = await request.until(lambda s: s.verification is not None and s.verification.round == 1)
    assert state.status == "awaiting_verification" and state.verification.attempts_left == 5
    code = fakes.code(request.id)
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    missed = await request.handle.execute_update(DSR.verify, fakes.typed(request.id, wrong))
    verified = await request.handle.execute_update(DSR.verify, fakes.typed(request.id, code))

    assert missed == VerifyResult(verified=False, attempts_left=4, locked=False)
    assert verified == VerifyResult(verified=True, attempts_left=0, locked=False)
    final = await request.result()
    assert final.status == "completed" and final.verification.method == "email_code"
    assert final.package is not None and final.package.records == 6 and final.package.kind == "access"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "verification", "response"]
    assert fakes.letter(request.id, "acknowledgement").params == {"verification_required": True}
    assert fakes.statuses(request.id) == ["status:in_progress", "status:completed"]
    assert fakes.transitions[0].data == {"verified_by": "email_code"}
    assert [e for e in fakes.event_types(request.id) if e.startswith("verification.")] == [
        "verification.failed", "verification.succeeded"]
    assert len(fakes.packages) == 1 and fakes.asked(request.id) == []  # sql systems are read by the package


async def test_wrong_codes_lock_and_a_resent_code_unlocks(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(attested=False)
    await request.until(lambda s: s.verification is not None and s.verification.round == 1)
    first = fakes.code(request.id)
    wrong = fakes.typed(request.id, f"{(int(first) + 1) % 10**6:06d}")

    answers = [await request.handle.execute_update(DSR.verify, wrong) for _ in range(5)]

    assert [(a.attempts_left, a.locked) for a in answers] == [(4, False), (3, False), (2, False), (1, False), (0, True)]
    assert "locked" in await refused(request.handle.execute_update(DSR.verify, fakes.typed(request.id, first)))
    resent = await request.handle.execute_update(DSR.resend_verification, ResendInput(actor="agent:ann"))
    assert (resent.round, resent.attempts_left, resent.locked) == (2, 5, False)
    second = fakes.code(request.id)
    assert second != first
    stale = await request.handle.execute_update(DSR.verify, fakes.typed(request.id, first))
    # The first code no longer works, and is refused as an earlier e-mail's: no attempt spent.
    assert (stale.verified, stale.earlier_code, stale.attempts_left) == (False, True, 5)
    assert (await request.handle.execute_update(DSR.verify, fakes.typed(request.id, second))).verified
    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "verification", "verification", "response"]
    resend_events = [e for e in fakes.events if e.event_type == "verification.resent"]
    assert [(e.event_key, e.actor) for e in resend_events] == [("resent:2", "agent:ann")]


async def test_a_request_never_verified_is_reminded_then_closed_when_the_window_ends(stack: FastStack):
    """Nobody answers: the test server skips the seven days of the verification window."""
    fakes = stack.fakes
    request = await stack.open(attested=False)
    received = fakes.specs[request.id].received_at
    assert received is not None

    final = await request.result()

    expires_at = received + timedelta(days=SHIPPED.policy.verification.expires_after_days)
    assert final.status == "closed_unverified" and final.closed_reason == "identity not verified in time"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "verification", "reminder", "closed_unverified"]
    assert fakes.letter(request.id, "closed_unverified").params == {"expired_at": expires_at.isoformat()}
    reminded = fakes.sent_at[f"{request.id}:reminder:2"] - received
    assert timedelta(days=2) <= reminded < timedelta(days=2, minutes=1)
    assert [(c.round, c.expires_at) for c in fakes.challenges] == [(1, expires_at), (2, expires_at)]
    assert fakes.sent_at[f"{request.id}:closed_unverified:1"] - expires_at < timedelta(minutes=1)
    assert fakes.statuses(request.id) == ["status:closed_unverified"]
    assert fakes.asked(request.id) == [] and fakes.packages == []
    assert fakes.staff_alerts(request.id) == []  # the deadline was weeks away


@pytest.mark.parametrize("compelling", [True, False], ids=["compelling-grounds", "no-grounds"])
async def test_an_objection_waits_for_compliance_decision(stack: FastStack, compelling: bool):
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.objection, objection_scope="legitimate_interest")
    waiting = await request.until(lambda s: s.awaiting_decision)
    assert waiting.status == "in_progress" and fakes.staff_alerts(request.id) == ["objection-decision"]
    assert "not awaiting approval" in await refused(
        request.handle.execute_update(DSR.approve, ApproveInput()))
    explanation = "Fraud screening of card payments outweighs the objection"

    decided = await request.handle.execute_update(DSR.decide_objection, ObjectionDecision(
        compelling_grounds=compelling, explanation=explanation, actor="compliance:dee"))

    assert decided.decision is not None and decided.decision.compelling_grounds is compelling
    assert not decided.awaiting_decision
    assert (await request.result()).status == "completed"
    # Compelling grounds: processing carries on, no system is asked to stop; otherwise every one is.
    assert fakes.asked(request.id) == ([] if compelling else [("billing", "object", 1), ("crm", "object", 1)])
    assert fakes.letter(request.id, "response").params["decision"] == {
        "compelling_grounds": compelling, "explanation": explanation}
    assert fakes.event_types(request.id).count("objection.decided") == 1


async def test_an_extension_moves_the_deadline_watch_to_the_new_due_date(stack: FastStack):
    """Two requests wait at the approval gate past their first due date; only one was extended
    in time. The watch warns before each request's current due date and flags the other overdue."""
    fakes = stack.fakes
    tz, warning_days = SHIPPED.policy.defaults.timezone, SHIPPED.policy.deadline_warnings_days
    kept, late = [await stack.open(request_type=RequestType.access, approval_required=True) for _ in range(2)]
    state = await kept.until(lambda s: s.status == "awaiting_approval")
    await late.until(lambda s: s.status == "awaiting_approval")
    first = deadline_checkpoints(state.due_date, tz, warning_days)
    second = deadline_checkpoints(state.extended_due_date, tz, warning_days)

    await stack.sleep(first.warnings[0][1] - await stack.env.get_current_time() + timedelta(minutes=1))
    await kept.until(lambda s: s.warnings_sent == [7])
    extended = await kept.handle.execute_update(DSR.extend, ExtendInput(reason=REASON, actor="compliance:ed"))

    assert extended.extended and extended.current_due_date == state.extended_due_date > state.due_date
    assert fakes.letter(kept.id, "extension").params == {
        "reason": REASON, "new_due_date": state.extended_due_date.isoformat()}
    assert [(e.reason, e.actor) for e in fakes.extensions] == [(REASON, "compliance:ed")]
    assert "already been extended" in await refused(kept.handle.execute_update(DSR.extend, ExtendInput(reason=REASON)))

    await stack.sleep(first.overdue_at - await stack.env.get_current_time() + timedelta(days=1))
    await late.until(lambda s: s.overdue)
    assert not (await kept.state()).overdue
    assert "has passed" in await refused(late.handle.execute_update(DSR.extend, ExtendInput(reason=REASON)))
    due, new_due = state.due_date.isoformat(), state.extended_due_date.isoformat()
    assert fakes.staff_alerts(late.id) == ["approval", f"due_in_7_days:{due}", f"due_in_2_days:{due}", f"overdue:{due}"]
    assert fakes.staff_alerts(kept.id) == ["approval", f"due_in_7_days:{due}"]

    await stack.sleep(second.overdue_at - await stack.env.get_current_time() + timedelta(minutes=1))
    watched = await kept.until(lambda s: s.overdue)
    assert watched.warnings_sent == [7, 2] and watched.status == "awaiting_approval"
    assert fakes.staff_alerts(kept.id)[2:] == [f"due_in_7_days:{new_due}", f"due_in_2_days:{new_due}", f"overdue:{new_due}"]
    assert fakes.subject_letters(kept.id) == ["acknowledgement", "extension"]
    for request in (kept, late):
        await request.handle.terminate("test over")


@pytest.mark.parametrize("withdrawn", [True, False], ids=["withdrawn-by-subject", "closed-by-staff"])
async def test_cancelling_ends_the_wait_for_verification_at_once(stack: FastStack, withdrawn: bool):
    fakes = stack.fakes
    request = await stack.open(attested=False)
    await request.until(lambda s: s.verification is not None and s.verification.round == 1)

    cancelled = await request.handle.execute_update(DSR.cancel, CancelInput(
        reason="The subject wrote to stop it", withdrawn_by_subject=withdrawn, actor="agent:fay"))

    assert cancelled.status == "cancelled" and cancelled.withdrawn_by_subject is withdrawn
    assert cancelled.closed_reason == "The subject wrote to stop it"
    final = await request.result()
    assert final.status == "cancelled"
    # Ended by the update, not by the verification window running out.
    assert fakes.sent_at[f"{request.id}:cancellation:1"] - fakes.specs[request.id].received_at < timedelta(hours=1)
    assert fakes.subject_letters(request.id) == ["acknowledgement", "verification", "cancellation"]
    assert fakes.letter(request.id, "cancellation").params == {
        "reason": "The subject wrote to stop it", "withdrawn": withdrawn, "acted_in": [], "asked_in": []}
    [change] = fakes.transitions
    assert (change.event_key, change.actor, change.data["withdrawn_by_subject"]) == (
        "status:cancelled", "agent:fay", withdrawn)
    assert fakes.asked(request.id) == []


async def test_a_system_that_needs_attention_is_alerted_while_a_processor_still_works(stack: FastStack):
    """Billing's task fails for good at once; a processor takes its time. Staff are e-mailed about
    billing then, not once the processor's task has ended (days later, or after its 14 days'
    timeout): the queue showed it at once, and so does the e-mail now."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("billing", broken="API key revoked"),
        FakeSystem("processor", connector="opendsr", answers_on_poll=10**6, completion_timeout_days=14)]))
    state = await request.until(lambda s: fakes.staff_alerts(request.id) == ["attention:billing:1"])
    assert statuses(state)["processor"] == ("pending", 1) and statuses(state)["billing"] == ("needs_attention", 1)
    await request.handle.execute_update(DSR.resolve_task, ResolveTaskInput(
        system="billing", note="The invoices were deleted by hand in the billing tool"))
    await stack.sleep(timedelta(days=15))  # the processor never answers: flagged after its timeout, alerted once
    await request.until(lambda s: fakes.staff_alerts(request.id) == ["attention:billing:1", "attention:processor:1"])


async def test_a_processors_task_whose_workflow_ended_is_on_record_as_needing_attention(dev_server):
    """The processor's task workflow is terminated (an operator's mistake; its own record failing
    for good ends it the same way): the request's state says the task needs attention, staff are
    told, and so says its stored row, which the queue's filter, the metrics and their alert read.
    Before, the row stayed `pending`. On the dev server: the time-skipping one does not tell a
    parent that its child was terminated."""
    fakes = FakeActivities()
    stack = FastStack(dev_server, fakes, f"ended-{uuid.uuid4().hex[:8]}")
    async with stack.worker():
        request = await stack.open(RequestSpec(systems=[
            FakeSystem("processor", connector="opendsr", answers_on_poll=10**6, completion_timeout_days=14)]))
        await request.until(lambda s: statuses(s).get("processor") == ("pending", 1))
        child = dev_server.client.get_workflow_handle(task_workflow_id(request.id, "processor", "erase", 1))

        async def child_started() -> bool:
            # The parent says "pending" once it has asked for its child; the server starts it a
            # moment later (on a loaded machine, after this test asked: "workflow not found").
            try:
                await child.describe()
            except RPCError:
                return False
            return True

        await eventually(child_started)
        await child.terminate("by mistake")
        await request.until(lambda s: statuses(s)["processor"] == ("needs_attention", 1)
                            and fakes.staff_alerts(request.id) == ["attention:processor:1"])
        await request.handle.terminate("test over")
    stored = [r.result for r in fakes.task_records if r.request_id == request.id and r.result.system == "processor"]
    assert stored[-1].status == "needs_attention" and "terminated" in (stored[-1].message or "").lower()


async def test_a_deadline_warning_names_the_systems_that_hold_the_response_back(stack: FastStack):
    """A processor slow to answer (its task waits 40 days) and one silent past its 14 days' timeout
    (its task needs staff): the warning 7 days before the due date names both, so staff chase them
    before the deadline rather than find them after it."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(systems=[
        FakeSystem("crm"),
        FakeSystem("processor", connector="opendsr", answers_on_poll=10**6, completion_timeout_days=40),
        FakeSystem("mailer", connector="opendsr", answers_on_poll=10**6, completion_timeout_days=14)]))
    state = await request.until(lambda s: s.due_date is not None)
    checkpoints = deadline_checkpoints(state.due_date, SHIPPED.policy.defaults.timezone,
                                       SHIPPED.policy.deadline_warnings_days)
    await stack.sleep(checkpoints.warnings[0][1] - await stack.env.get_current_time() + timedelta(minutes=1))
    await request.until(lambda s: s.warnings_sent == [7])
    [warning] = [j for j in fakes.letters if j.request_id == request.id and j.key.startswith("due_in_7_days")]
    assert warning.params["facts"] == {"what": "deadline", "status": "in_progress", "waiting_for": ["processor"],
                                       "needing_staff": ["mailer"]}
    await request.handle.terminate("test over")
