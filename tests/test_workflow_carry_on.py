"""Fast tests of what staff carry on with when part of a request fails: a system's task that needs
attention (retried, resolved), an asynchronous processor (answered by callback, by polling, or
never), a failed step of the request's own (retried, skipped, recovered on its own), and a
restriction kept in force until it is lifted.

Same stack as tests/test_workflow_paths.py: the real workflows on the time-skipping server, every
activity a fake registered under its real name (tests/workflow_fakes.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import WorkflowHandle

from schemas.requests import DenialReason, RequestType
from schemas.restrictions import LiftAnnounced, LiftCarriedOut, LiftRestrictionInput, RestrictionInForce
from schemas.steps import RetryStepInput, SkipStepInput
from schemas.workflow import (
    CancelInput,
    DenyInput,
    ExtendInput,
    ProcessorUpdate,
    RequestState,
    ResolveTaskInput,
    RetryTaskInput,
    TaskResult,
    task_workflow_id,
)
from tests.staff_answers import answered_while_held, hold
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


async def test_a_step_that_can_only_fail_waits_for_staff_to_skip_it(stack: FastStack):
    """The acknowledgement's template is broken: the letter fails at once (not after retries),
    staff are alerted once, and skipping it (having written to the subject by hand) lets the
    request carry on."""
    fakes = stack.fakes
    fakes.fail("send_letter", lambda: ValueError("template acknowledgement.txt.j2 not found"),
               when=lambda job: job.purpose == "acknowledgement")
    request = await stack.open()
    flagged = await request.until(lambda s: s.trouble is not None and fakes.staff_alerts(request.id))
    trouble = flagged.trouble
    assert (trouble.step, trouble.transient, trouble.skippable) == ("send_letter", False, True)
    assert trouble.message == "ValueError: template acknowledgement.txt.j2 not found"
    assert fakes.staff_alerts(request.id) == ["step:send_letter:1"]
    assert fakes.asked(request.id) == []  # nothing carries on behind the failed step

    await request.handle.execute_update(DSR.skip_step, SkipStepInput(note="Acknowledged by phone", actor="staff:ivy"))

    final = await request.result()
    assert final.status == "completed" and final.trouble is None
    assert fakes.subject_letters(request.id) == ["response"]
    assert [(t.trouble.key, t.resolution, t.actor) for t in fakes.troubles] == [
        ("send_letter:1", None, "workflow"), ("send_letter:1", "skipped by staff: Acknowledged by phone", "staff:ivy")]


async def test_registration_that_failed_cannot_be_skipped_but_is_retried_once_fixed(stack: FastStack):
    fakes = stack.fakes
    fakes.fail("prepare_request", lambda: LookupError("policy version 0387c0ea is not stored"))
    request = await stack.open()
    flagged = await request.until(lambda s: s.trouble is not None)
    assert (flagged.trouble.step, flagged.trouble.skippable) == ("prepare_request", False)
    assert fakes.attempts["prepare_request"] == 1  # failed at once, not retried with backoff

    await stack.sleep(timedelta(hours=2))  # nobody answers: it waits for staff, however long
    assert (await request.state()).trouble == flagged.trouble and fakes.attempts["prepare_request"] == 1

    assert "cannot be skipped" in await refused(
        request.handle.execute_update(DSR.skip_step, SkipStepInput(note="no way round it")))
    assert "could not be registered" in await refused(
        request.handle.execute_update(DSR.extend, ExtendInput(reason="We need more time for this one")))
    fakes.heal("prepare_request")
    answered = await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="staff:jo"))

    assert answered.trouble is not None and answered.trouble.answered_by == "staff:jo"
    final = await request.result()
    assert final.status == "completed" and final.trouble is None
    assert [(t.resolution, t.actor) for t in fakes.troubles] == [
        (None, "workflow"), ("the step succeeded when tried again", "staff:jo")]
    assert fakes.staff_alerts(request.id) == ["step:prepare_request:1"]


async def test_a_request_whose_registration_fails_can_still_be_cancelled(stack: FastStack):
    fakes = stack.fakes
    fakes.fail("prepare_request", lambda: LookupError("policy version 0387c0ea is not stored"))
    request = await stack.open()
    await request.until(lambda s: s.trouble is not None)

    await request.handle.execute_update(DSR.cancel, CancelInput(reason="Opened by mistake", actor="agent:lu"))

    final = await request.result()
    assert final.status == "cancelled" and final.trouble is None and final.closed_reason == "Opened by mistake"
    assert [(t.resolution, t.actor) for t in fakes.troubles] == [(None, "workflow"), ("the request was closed meanwhile", "workflow")]
    assert fakes.subject_letters(request.id) == ["cancellation"]
    assert fakes.attempts["prepare_request"] == 1


async def test_a_step_failing_past_the_threshold_is_flagged_and_recovers_on_its_own(stack: FastStack):
    """The mail relay refuses the acknowledgement (transient): retried quietly until the policy's
    threshold, then flagged; once the relay is back the step succeeds by itself."""
    fakes = stack.fakes
    fakes.fail("send_letter", lambda: ConnectionRefusedError("relay 127.0.0.1:2525 refused the connection"),
               when=lambda job: job.purpose == "acknowledgement")
    request = await stack.open(attention_after_minutes=5)

    await stack.sleep(timedelta(minutes=3))
    assert (await request.state()).trouble is None  # not yet: still within the threshold
    assert fakes.attempts["send_letter"] > 3  # meanwhile retried quietly, with backoff
    await stack.sleep(timedelta(minutes=4))
    flagged = await request.until(lambda s: s.trouble is not None)

    assert flagged.trouble.transient and "refused" in flagged.trouble.message
    fakes.heal("send_letter")
    final = await request.result()
    assert final.status == "completed" and final.trouble is None
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert fakes.staff_alerts(request.id) == ["step:send_letter:1"]
    assert [t.resolution for t in fakes.troubles] == [None, "the step succeeded when tried again"]


async def test_a_restriction_stays_in_force_until_lifted_after_the_notice_period(stack: FastStack):
    fakes = stack.fakes
    request = await stack.open(RequestSpec(request_type=RequestType.restriction, lift_notice_days=14, systems=[
        FakeSystem("crm"), FakeSystem("ads", recipient="AdNet Ltd")]))
    in_force = await request.until(lambda s: s.status == "completed" and fakes.restrictions)
    assert fakes.restrictions == [RestrictionInForce(request_id=request.id, systems=["ads", "crm"])]
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert in_force.status == "completed"  # answered, yet the workflow keeps the restriction
    assert "already closed (status completed)" in await refused(request.handle.execute_update(
        DSR.deny, DenyInput(reason_code=DenialReason.other, explanation="Too late to deny this one")))

    lifting = await request.handle.execute_update(DSR.lift_restriction, LiftRestrictionInput(
        reason="The accuracy of the data has been verified", actor="compliance:kim"))

    assert lifting.status == "completed"
    announced = fakes.letter(request.id, "restriction_lift").params
    assert announced["notice_days"] == 14 and announced["reason"] == "The accuracy of the data has been verified"
    assert [a for _, a, _ in fakes.asked(request.id)] == ["restrict", "restrict"]  # not lifted before the notice
    assert "already being lifted" in await refused(request.handle.execute_update(
        DSR.lift_restriction, LiftRestrictionInput(reason="Lifting it a second time")))
    await request.result()
    lifted_after = fakes.asked_at[(request.id, "crm", "lift_restriction", 1)] - fakes.sent_at[
        f"{request.id}:restriction_lift:1"]
    assert timedelta(days=14) <= lifted_after < timedelta(days=14, minutes=1)
    assert fakes.asked(request.id) == [("ads", "lift_restriction", 1), ("ads", "restrict", 1),
                                       ("crm", "lift_restriction", 1), ("crm", "restrict", 1)]
    assert fakes.restrictions[1:] == [
        LiftAnnounced(request_id=request.id, reason="The accuracy of the data has been verified", actor="compliance:kim"),
        LiftCarriedOut(request_id=request.id, systems=["ads", "crm"], recipients=["AdNet Ltd"], actor="compliance:kim")]
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response", "restriction_lift"]


async def test_a_lift_letter_that_goes_late_still_gives_the_full_notice(stack: FastStack):
    """The lift's letter fails and waits five days for staff: the 14 days' notice run from the
    letter, as it says. Before, they ran from the announcement, so the systems were lifted nine
    days after the subject was told (a letter two weeks late: at once)."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(request_type=RequestType.restriction, lift_notice_days=14,
                                           systems=[FakeSystem("crm")]))
    await request.until(lambda s: s.status == "completed" and fakes.restrictions)
    fakes.fail("send_letter", lambda: ValueError("550 5.1.1 mailbox unavailable"),
               when=lambda job: job.purpose == "restriction_lift")
    lifting = await request.handle.execute_update(DSR.lift_restriction, LiftRestrictionInput(
        reason="The accuracy of the data has been verified", actor="compliance:kim"))
    assert lifting.trouble is not None and lifting.trouble.step == "send_letter"
    await stack.sleep(timedelta(days=5))
    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:kim"))
    await request.result()
    lifted_after = fakes.asked_at[(request.id, "crm", "lift_restriction", 1)] - fakes.sent_at[
        f"{request.id}:restriction_lift:1"]
    assert timedelta(days=14) <= lifted_after < timedelta(days=14, minutes=1)


async def test_a_lift_whose_letter_fails_answers_with_the_failed_step_and_goes_on_when_retried(stack: FastStack):
    """Before, the lift's update answered only once staff had answered its failed letter: the
    console's button, and the API call, hung until then."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(request_type=RequestType.restriction, systems=[FakeSystem("crm")]))
    await request.until(lambda s: s.status == "completed" and fakes.restrictions)
    fakes.fail("send_letter", lambda: ValueError("550 5.1.1 mailbox unavailable"),
               when=lambda job: job.purpose == "restriction_lift")

    lifting = await asyncio.wait_for(request.handle.execute_update(DSR.lift_restriction, LiftRestrictionInput(
        reason="The accuracy of the data has been verified", actor="compliance:kim")), 30)

    assert lifting.trouble is not None and lifting.trouble.step == "send_letter"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response"]
    assert [a for _, a, _ in fakes.asked(request.id)] == ["restrict"]  # nothing lifted before the subject is told
    fakes.heal("send_letter")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:kim"))

    await request.result()
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response", "restriction_lift"]
    assert fakes.asked(request.id) == [("crm", "lift_restriction", 1), ("crm", "restrict", 1)]


def alert_fails(stack: FastStack) -> None:
    """The relay refuses the deadline watch's warnings to staff (not the alerts of failed steps)."""
    stack.fakes.fail("send_letter", lambda: ValueError("550 5.7.1 the relay refuses this sender"),
                     when=lambda job: job.to_staff and str(job.params.get("kind", "")).startswith("due_in_"))


def trouble_records(stack: FastStack, request: Request) -> dict[str, list[str | None]]:
    """Each trouble's stored records, by key: its opening (None), then its resolution."""
    records: dict[str, list[str | None]] = {}
    for t in stack.fakes.troubles:
        if t.request_id == request.id:
            records.setdefault(t.trouble.key, []).append(t.resolution)
    return records


async def test_a_deadline_alert_failing_while_a_step_waits_for_staff_keeps_both_troubles_apart(stack: FastStack):
    """Before, the watch's failed alert took the waiting step's place in the request's one trouble:
    the step's record stayed open for ever (the queue showed the finished request as needing
    attention), and staff's one retry ran both steps again."""
    fakes = stack.fakes
    fakes.fail("plan_request", lambda: ValueError("no system of the policy holds this kind of data"))
    alert_fails(stack)
    request = await stack.open()
    await request.until(lambda s: s.trouble is not None)

    await stack.sleep(timedelta(days=27))  # the first warning falls due (7 days before), and fails
    await request.until(lambda _: "watch-send_letter:1" in trouble_records(stack, request))
    shown = await request.state()
    assert shown.trouble is not None and shown.trouble.key == "plan_request:1"  # the request's own first

    fakes.heal("plan_request")
    await request.handle.execute_update(DSR.retry_step, RetryStepInput(actor="compliance:ann"))

    final = await request.result()
    assert final.status == "completed" and final.trouble is None
    assert trouble_records(stack, request) == {
        "plan_request:1": [None, "the step succeeded when tried again"],
        "watch-send_letter:1": [None, "the request was closed meanwhile"]}
    assert fakes.attempts["plan_request"] == 2  # once failed, once retried: not again for the alert


async def test_staff_skip_a_deadline_alert_the_relay_refuses(stack: FastStack):
    fakes = stack.fakes
    alert_fails(stack)
    request = await stack.open(request_type=RequestType.access, approval_required=True)
    await request.until(lambda s: s.status == "awaiting_approval")

    await stack.sleep(timedelta(days=27))
    flagged = await request.until(lambda s: s.trouble is not None)
    assert flagged.trouble is not None and flagged.trouble.key == "watch-send_letter:1" and flagged.trouble.skippable
    await request.handle.execute_update(DSR.skip_step, SkipStepInput(note="Told the DPO by phone", actor="compliance:ann"))
    await request.until(lambda s: s.trouble is None)
    # The state lets the trouble go as the skip is taken; its record follows in an activity.
    await request.until(lambda _: len(trouble_records(stack, request)["watch-send_letter:1"]) == 2)
    assert trouble_records(stack, request)["watch-send_letter:1"] == [None, "skipped by staff: Told the DPO by phone"]
    assert "step:watch-send_letter:1" in fakes.staff_alerts(request.id)


async def test_a_lift_while_the_relay_does_not_answer_is_answered_with_its_letter_under_way(stack: FastStack):
    """Before, the caller waited for the letter until the policy's threshold (15 minutes)."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(request_type=RequestType.restriction, systems=[FakeSystem("crm")]))
    await request.until(lambda s: s.status == "completed" and fakes.restrictions)
    sending = hold(fakes, "send_letter", lambda job: job.purpose == "restriction_lift")

    lifting = await answered_while_held(stack, request, sending, DSR.lift_restriction, LiftRestrictionInput(
        reason="The accuracy of the data has been verified", actor="compliance:kim"))

    assert lifting.trouble is None and lifting.owed == ["send_letter"]
    assert [a for _, a, _ in fakes.asked(request.id)] == ["restrict"]  # nothing lifted before the subject is told
    fakes.heal("send_letter")
    await stack.sleep(timedelta(minutes=2))  # past the held step's retry backoff
    assert (await request.result()).owed == []
    assert fakes.subject_letters(request.id) == ["acknowledgement", "response", "restriction_lift"]
    assert fakes.asked(request.id) == [("crm", "lift_restriction", 1), ("crm", "restrict", 1)]
