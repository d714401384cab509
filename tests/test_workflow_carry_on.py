"""Fast tests of what staff carry on with when a step of the request's own fails: one that can only
fail waits for staff to skip it (or, when it cannot be skipped, to retry it once fixed), one that
keeps failing is flagged past the threshold and recovers on its own, the request can still be
cancelled meanwhile; and a deadline alert the relay refuses is a trouble of its own, kept apart
from the step's and skipped by staff. A system's task that fails: tests/test_workflow_system_tasks.py;
a restriction kept in force until lifted: tests/test_workflow_restriction_lift.py.

Same stack as tests/test_workflow_paths.py: the real workflows on the time-skipping server, every
activity a fake registered under its real name (tests/workflow_fakes.py).
"""

from __future__ import annotations

from datetime import timedelta

from schemas.requests import RequestType
from schemas.steps import RetryStepInput, SkipStepInput
from schemas.workflow import CancelInput, ExtendInput
from tests.workflow_stack import FastStack, Request, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR


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
