"""Identity verification when its own steps fail: a record of an attempt, a resent code or a
reminder the relay refuses (workflows/verification.py VERIFICATION_OWED).

Before:
- the audit records of an attempt ran inside the `verify` update, so a record that failed failed
  the update: the subject was told of an error although their code had been accepted, and the
  request went on with no `verification.succeeded` in its audit trail;
- a resend whose e-mail failed left the code "being sent" for ever: every later attempt waited,
  and the request closed unverified while the subject typed the right code;
- a reminder the relay refused waited for staff, and so did every attempt meanwhile, although no
  new code had gone out; the request stayed stuck after the subject verified.
Same stack as tests/test_workflow_paths.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from schemas.requests import RequestType
from schemas.steps import SkipStepInput
from schemas.verification import VerifyResult
from schemas.workflow import RequestState, ResendInput
from tests.staff_answers import hold, replays
from tests.test_owed_steps import REFUSED, troubles
from tests.workflow_fakes import SHIPPED, FakeActivities
from tests.workflow_stack import FastStack, Request, refused, stack_fixture, time_skipping_env  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR
from workflows.dsr_steps import CALLER_WAITS

VERIFIED = VerifyResult(verified=True, attempts_left=0, locked=False)
# An attempt is answered at once; the bound only turns a hang into a failure (execute_update does
# not move the test server's clock, so an attempt that waits for a step waits for ever).
ANSWER_WITHIN = 20
# A resend gives up after CALLER_WAITS, give or take a retry; the policy's threshold, which the
# caller waited for before, is 15 minutes.
GIVE_UP_SLACK = timedelta(minutes=1)
# Long enough for a held step's next attempt (its backoff is seconds yet), short of the 20 s an
# attempt waits for a round being settled.
RETRY_WAIT = timedelta(seconds=10)


async def awaiting_code(stack: FastStack) -> tuple[Request, str]:
    """An access request whose subject has their first code."""
    request = await stack.open(request_type=RequestType.access, attested=False)
    await request.until(lambda s: s.verification is not None and s.verification.round == 1)
    return request, stack.fakes.code(request.id, 1)


async def attempt(request: Request, fakes: FakeActivities, code: str) -> VerifyResult:
    return await asyncio.wait_for(request.handle.execute_update(DSR.verify, fakes.typed(request.id, code)),
                                  ANSWER_WITHIN)


def refuse_issue(fakes: FakeActivities, purpose: str) -> None:
    """The relay refuses this verification e-mail for good."""
    fakes.fail("issue_verification", lambda: ValueError(REFUSED), when=lambda issue: issue.purpose == purpose)


async def reminder_refused(stack: FastStack) -> tuple[Request, str, RequestState]:
    """A request whose reminder the relay refused: its first code, and its state with the trouble."""
    request, first = await awaiting_code(stack)
    refuse_issue(stack.fakes, "reminder")
    await stack.sleep(timedelta(days=SHIPPED.policy.verification.reminder_after_days))
    return request, first, await request.until(lambda s: s.trouble is not None)


async def test_a_success_whose_record_keeps_failing_is_answered_and_the_request_goes_on_once_on_record(
        stack: FastStack):
    fakes = stack.fakes
    request, code = await awaiting_code(stack)
    writing = hold(fakes, "record_event", lambda event: event.event_type == "verification.succeeded")
    threshold = timedelta(minutes=fakes.specs[request.id].attention_after_minutes)

    assert await attempt(request, fakes, code) == VERIFIED  # the subject is answered at once

    await request.until(lambda _: writing)
    held = await request.state()
    assert held.verification is not None and held.verification.verified_at is not None
    assert held.status == "awaiting_verification" and fakes.statuses(request.id) == []  # nothing before the record
    await stack.sleep(threshold)
    troubled = await request.until(lambda s: s.trouble is not None)
    assert troubled.trouble is not None and troubled.trouble.step == "record_event"
    assert troubled.trouble.transient and not troubled.trouble.skippable
    assert "step:owed-record_event:1" in fakes.staff_alerts(request.id)
    assert fakes.packages == []

    fakes.heal("record_event")
    await stack.sleep(threshold)  # a transient trouble is retried on its own

    final = await request.result()
    assert final.status == "completed" and final.trouble is None
    assert [e for e in fakes.event_types(request.id) if e.startswith("verification.")] == ["verification.succeeded"]
    assert fakes.statuses(request.id)[0] == "status:in_progress"
    assert troubles(fakes, request)[-1] == ("owed-record_event:1", "the step succeeded when tried again")
    await replays(stack, request)


async def test_a_resent_code_the_relay_refuses_leaves_the_current_code_working(stack: FastStack):
    fakes = stack.fakes
    request, first = await awaiting_code(stack)
    refuse_issue(fakes, "verification")

    assert REFUSED in await refused(request.handle.execute_update(DSR.resend_verification,
                                                                  ResendInput(actor="agent:ann")))
    state = await request.state()
    assert state.verification is not None and (state.verification.round, state.verification.attempts_left) == (1, 5)

    assert await attempt(request, fakes, first) == VERIFIED
    final = await request.result()
    assert final.status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "verification", "response"]
    assert "verification.resent" not in fakes.event_types(request.id)
    await replays(stack, request)


async def test_a_reminder_the_relay_refuses_waits_for_staff_but_not_the_subject(stack: FastStack):
    fakes = stack.fakes
    request, first, troubled = await reminder_refused(stack)
    assert troubled.trouble is not None and troubled.trouble.step == "issue_verification"
    assert troubled.trouble.skippable and not troubled.trouble.transient

    assert await attempt(request, fakes, first) == VERIFIED

    # The reminder is no longer needed: its trouble closes without staff, and the request goes on.
    final = await request.result()
    assert final.status == "completed" and final.trouble is None
    assert troubles(fakes, request)[-1] == (
        "issue_verification:1", "not needed: the subject verified with the code of round 1")
    assert fakes.subject_letters(request.id) == ["acknowledgement", "verification", "response"]
    await replays(stack, request)


async def test_staff_may_skip_a_reminder_the_relay_refuses_and_the_first_code_stays_valid(stack: FastStack):
    fakes = stack.fakes
    request, first, _ = await reminder_refused(stack)

    skipped = await request.handle.execute_update(
        DSR.skip_step, SkipStepInput(note="Phoned the subject instead", actor="compliance:ann"))

    assert skipped.trouble is not None and skipped.trouble.answered_by == "compliance:ann"
    state = await request.until(lambda s: s.trouble is None)
    assert state.status == "awaiting_verification"
    assert state.verification is not None and state.verification.round == 1
    assert await attempt(request, fakes, first) == VERIFIED
    assert (await request.result()).status == "completed"
    assert troubles(fakes, request)[-1] == ("issue_verification:1", "skipped by staff: Phoned the subject instead")
    await replays(stack, request)


async def test_a_code_resent_while_a_refused_reminder_waits_verifies_and_gives_the_reminder_up(stack: FastStack):
    fakes = stack.fakes
    request, _, _ = await reminder_refused(stack)

    resent = await request.handle.execute_update(DSR.resend_verification, ResendInput(actor="agent:ann"))
    assert resent.round == 2
    assert await attempt(request, fakes, fakes.code(request.id, 2)) == VERIFIED

    final = await request.result()
    assert final.status == "completed" and final.trouble is None
    assert troubles(fakes, request)[-1] == (
        "issue_verification:1", "not needed: the subject verified with the code of round 2")
    await replays(stack, request)


async def test_a_resend_while_the_relay_does_not_answer_gives_up_in_seconds_and_the_current_code_stays(
        stack: FastStack):
    """Before, the caller (the subject's "Send me a new code", an agent's button) waited for the
    policy's threshold, 15 minutes, while the e-mail was retried."""
    fakes = stack.fakes
    request, first = await awaiting_code(stack)
    sending = hold(fakes, "issue_verification", lambda issue: issue.round == 2)
    resending = asyncio.ensure_future(request.handle.execute_update(
        DSR.resend_verification, ResendInput(actor="subject")))
    await request.until(lambda _: sending)

    await stack.sleep(CALLER_WAITS + timedelta(seconds=5))
    await stack.answered_within(resending, GIVE_UP_SLACK)
    reason = await refused(resending)

    assert "the new code could not be sent" in reason and "the code sent earlier stays as it was" in reason
    fakes.heal("issue_verification")
    assert await attempt(request, fakes, first) == VERIFIED
    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "verification", "response"]
    await replays(stack, request)


@pytest.mark.parametrize("went", [pytest.param(True, id="the-e-mail-went-late"),
                                  pytest.param(False, id="it-had-not-gone")])
async def test_a_resend_that_gave_up_is_settled_so_a_late_code_works_and_an_unsent_one_never_goes(
        stack: FastStack, went: bool):
    """A resend's attempt can still e-mail its code after the caller stopped waiting for it (an
    activity runs on after its step gave up). Before, the request kept only the earlier code, so
    the subject's newest e-mail held a code counted as wrong. Now the round is settled once no
    attempt is sending it: its code works too if it went, and it never goes if it had not, in
    which case the next resend gets a round (and a code) of its own."""
    fakes = stack.fakes
    request, first = await awaiting_code(stack)
    sending = hold(fakes, "issue_verification", lambda issue: issue.round == 2)
    settling = hold(fakes, "settle_verification_round", lambda issue: issue.round == 2)  # still sending
    resending = asyncio.ensure_future(request.handle.execute_update(
        DSR.resend_verification, ResendInput(actor="subject")))
    await request.until(lambda _: sending)
    await stack.sleep(CALLER_WAITS + timedelta(seconds=5))
    await stack.answered_within(resending, GIVE_UP_SLACK)
    reason = await refused(resending)
    assert "the code sent earlier stays as it was, and should the new e-mail still arrive, its code works too" in reason
    await request.until(lambda s: "settle_verification_round" in s.owed and settling)
    fakes.heal("issue_verification")
    late_code = fakes.code(request.id, 2)
    if went:
        await fakes.deliver_late(sending[0])
        # Typed while the round is still being settled: the attempt waits for it.
        typed = asyncio.ensure_future(attempt(request, fakes, late_code))
        await asyncio.sleep(0.5)
        fakes.heal("settle_verification_round")
        await stack.sleep(RETRY_WAIT)
        assert await typed == VERIFIED
    else:
        fakes.heal("settle_verification_round")
        await stack.sleep(RETRY_WAIT)
        await request.until(lambda s: not s.owed)
        assert fakes.withdrawn == [sending[0]]
        wrong = await attempt(request, fakes, late_code)
        assert not wrong.verified and wrong.attempts_left == SHIPPED.policy.verification.max_attempts - 1
        await request.handle.execute_update(DSR.resend_verification, ResendInput(actor="subject"))
        assert [c.round for c in fakes.challenges if c.request_id == request.id] == [1, 3]
        assert await attempt(request, fakes, first) != VERIFIED  # a new code sent: the earlier one is dead
        assert await attempt(request, fakes, fakes.code(request.id, 3)) == VERIFIED
    assert (await request.result()).status == "completed"
    # Round 2's e-mail when it went late, round 3's when it had not.
    assert fakes.subject_letters(request.id) == ["acknowledgement", "verification", "verification", "response"]
    await replays(stack, request)


async def test_once_verified_a_new_code_or_attempt_is_refused_while_the_success_is_recorded(stack: FastStack):
    """The status follows once the success is on record: meanwhile a resend (which would mail a
    new code to a verified subject) and another attempt are refused, saying why."""
    fakes = stack.fakes
    request, code = await awaiting_code(stack)
    writing = hold(fakes, "record_event", lambda event: event.event_type == "verification.succeeded")
    assert await attempt(request, fakes, code) == VERIFIED
    await request.until(lambda _: writing)

    for update, body in ((DSR.resend_verification, ResendInput(actor="subject")),
                         (DSR.verify, fakes.typed(request.id, code))):
        assert "the identity is verified already" in await refused(request.handle.execute_update(update, body))
    fakes.heal("record_event")
    await stack.sleep(timedelta(minutes=2))
    assert (await request.result()).status == "completed"
    assert fakes.subject_letters(request.id) == ["acknowledgement", "verification", "response"]
