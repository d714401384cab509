"""Fast tests of a restriction kept in force until staff lift it: the subject is told first and
the systems are lifted after the notice period, counted from the lift's letter however late it
goes; a lift whose letter fails is answered at once with the failed step and goes on when it is
retried, and one whose relay does not answer is answered with its letter under way.

Same stack as tests/test_workflow_paths.py: the real workflows on the time-skipping server, every
activity a fake registered under its real name (tests/workflow_fakes.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.worker import Replayer

from schemas.requests import DenialReason, RequestType
from schemas.restrictions import LiftAnnounced, LiftCarriedOut, LiftRestrictionInput, RestrictionInForce
from schemas.steps import RetryStepInput
from schemas.workflow import CancelInput, DenyInput, workflow_id_for
from tests.staff_answers import answered_while_held, hold
from tests.workflow_fakes import FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR
from workflows.system_task import SystemTaskWorkflow


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


async def test_a_restriction_reached_after_its_lift_began_is_recorded_and_lifted_again(stack: FastStack):
    """Withdrawn while the SaaS's task still ran (left running at the close), the restriction is on
    record for the CRM only and compliance lifts it at once; the SaaS's task then restricts the data
    there, after the lift's own task at the SaaS had begun. The SaaS goes on record as reached, and
    the lift's task there runs again (its attempt 2), so it ends lifted. Before, nothing followed:
    the SaaS stayed restricted while the record said the restriction was lifted."""
    fakes = stack.fakes
    request = await stack.open(RequestSpec(request_type=RequestType.restriction, systems=[
        FakeSystem("crm"), FakeSystem("saas", connector="http", answers_on_poll=3)]))
    await request.until(lambda s: ("saas", "restrict", 1) in fakes.asked(request.id)
                        and ("crm", "restrict", 1) in fakes.asked(request.id))
    await request.handle.execute_update(DSR.cancel, CancelInput(
        reason="The subject withdrew it by phone", withdrawn_by_subject=True, actor="agent:lu"))
    await request.until(lambda s: bool(fakes.restrictions))
    assert fakes.restrictions == [RestrictionInForce(request_id=request.id, systems=["crm"])]
    await request.handle.execute_update(DSR.lift_restriction, LiftRestrictionInput(
        reason="The subject no longer needs it restricted", actor="compliance:kim"))
    await request.result()

    done = [r.result for r in fakes.task_records if r.request_id == request.id and r.result.system == "saas"]
    # Its restriction (three polls from before the close) was done while the lift's first task
    # there, asked after the close, still waited for its own three: the lift had begun.
    assert [(r.action, r.attempt) for r in done if r.status == "done"] == [
        ("restrict", 1), ("lift_restriction", 1), ("lift_restriction", 2)], done
    assert fakes.asked(request.id) == [("crm", "lift_restriction", 1), ("crm", "restrict", 1),
                                       ("saas", "lift_restriction", 1), ("saas", "lift_restriction", 2),
                                       ("saas", "restrict", 1)]
    assert [r for r in fakes.restrictions if isinstance(r, RestrictionInForce)] == [
        RestrictionInForce(request_id=request.id, systems=["crm"]),
        RestrictionInForce(request_id=request.id, systems=["crm", "saas"])]
    # On record as soon as its task ended, beside the lift's tasks: before the lift's own record.
    assert isinstance(fakes.restrictions[-1], LiftCarriedOut), fakes.restrictions
    assert done[-1].action == "lift_restriction" and done[-1].attempt == 2 and done[-1].status == "done"

    # The new path replays (tests/test_replay.py keeps the stored ones).
    history = await stack.env.client.get_workflow_handle(workflow_id_for(request.id)).fetch_history()
    replayer = Replayer(workflows=[DSR, SystemTaskWorkflow], data_converter=stack.env.client.data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, repr(result.replay_failure)
