"""Races at last session's new inputs (hCU; the inputs' other attacks: tests/test_attack_new_inputs.py):
the same progress note pressed twice at the same instant, under one key with the same or other
words; a progress note against the complaint's approval or withdrawal at the same instant; two
approvals of an appeal with other reasons, and a denial, at once (the workflow on the fast stack,
tests/workflow_stack.py: `asyncio.gather` of the updates as the API sends them); an appeal
withdrawn while another of the same refusal claims its decision (`claim_appeal_decision` and the
withdrawal's status change, the real activities on PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import WorkflowUpdateFailedError

from activities.appeal_claims import AppealClaimActivities
from activities.context import ActivityContext
from activities.lifecycle import LifecycleActivities
from activities.mail import Mailer
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.appeals import decided_appeal
from schemas.appeal_claims import AppealClaim
from schemas.progress_note import TellProgressInput
from schemas.requests import DenialReason, RequestStatus
from schemas.workflow import ApproveInput, CancelInput, DenyInput, Transition
from tests.refused_requests import stored_refusal
from tests.support import stored_request, unique_email
from tests.workflow_fakes import RequestSpec
from tests.workflow_stack import FastStack, Request, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

PURPOSE = "complaint_progress"
NOTE = "We asked the billing team to review the records again and expect an answer next week."


async def _complaint(stack: FastStack) -> Request:
    request = await stack.open(RequestSpec(regime="uk_gdpr", complaint=True, approval_required=True))
    await request.until(lambda s: s.status == "awaiting_approval")
    return request


async def _outcomes(*updates: Any) -> list[str]:
    """Each update's outcome: "ok", or the reason it was refused."""
    said = await asyncio.gather(*updates, return_exceptions=True)
    for outcome in said:
        if isinstance(outcome, BaseException) and not isinstance(outcome, WorkflowUpdateFailedError):
            raise outcome
    return ["ok" if not isinstance(o, BaseException) else str(getattr(o.cause, "message", o.cause)) for o in said]


def _letters(stack: FastStack, request_id: str, purpose: str = PURPOSE) -> list[dict]:
    return [job.params for job in stack.fakes.letters if job.request_id == request_id and job.purpose == purpose]


def _events(stack: FastStack, request_id: str, event_type: str) -> list[dict]:
    return [e.data for e in stack.fakes.events if e.request_id == request_id and e.event_type == event_type]


async def test_a_progress_note_pressed_twice_at_once_sends_one_letter(stack: FastStack):
    """The same key and words twice at the same instant: one letter, both answered. The same key
    with other words at the same instant: one letter, with the words of the call answered; the
    other refused, never answered as if its words were sent."""
    request = await _complaint(stack)
    press = TellProgressInput(note=NOTE, once="hcu:same", actor="compliance:ab12")
    assert await _outcomes(*(request.handle.execute_update(DSR.tell_progress, press) for _ in range(2))) == ["ok", "ok"]
    assert [p["note"] for p in _letters(stack, request.id)] == [NOTE]

    words = ("First words for this press of the button.", "Other words for this press of the button.")
    other = [press.model_copy(update={"once": "hcu:other", "note": said}) for said in words]
    outcomes = await _outcomes(*(request.handle.execute_update(DSR.tell_progress, p) for p in other))
    assert outcomes.count("ok") == 1, outcomes
    assert "already used for another progress letter" in outcomes[1 - outcomes.index("ok")], outcomes
    sent = words[outcomes.index("ok")]
    assert [p["note"] for p in _letters(stack, request.id)] == [NOTE, sent]
    assert [e["note"] for e in _events(stack, request.id, "complaint.progress_told")] == [NOTE, sent]


async def test_a_progress_note_at_the_instant_of_approval_or_withdrawal_never_follows_the_outcome(stack: FastStack):
    """A progress note and the complaint's approval (its reasons), or the subject's withdrawal, at
    the same instant: the note goes first or is refused; no progress letter is asked for after the
    outcome's letter, and the outcome is the decision's."""
    for decide, outcome in ((lambda r: r.handle.execute_update(DSR.approve, ApproveInput(
            explanation="Your account closed in March, so we no longer need the records.", actor="compliance:bo")),
            "response"),
            (lambda r: r.handle.execute_update(DSR.cancel, CancelInput(
                reason="Withdrawn by the subject on the phone", withdrawn_by_subject=True, actor="agent:x")),
             "cancellation")):
        request = await _complaint(stack)
        said = await _outcomes(request.handle.execute_update(
            DSR.tell_progress, TellProgressInput(note=NOTE, actor="compliance:ab12")), decide(request))
        assert said[1] == "ok", said
        final = await request.result()
        assert final.status == ("completed" if outcome == "response" else "cancelled")
        purposes = [job.purpose for job in stack.fakes.letters if job.request_id == request.id
                    and job.purpose in (PURPOSE, outcome)]
        assert purposes[-1] == outcome and purposes.count(outcome) == 1, purposes
        if said[0] != "ok":
            assert "decided" in said[0] or "closed" in said[0], said


async def test_two_approvals_of_an_appeal_with_other_reasons_and_a_denial_at_once_decide_once(stack: FastStack):
    """Two members of compliance approve one appeal at the same instant with other reasons, and a
    third denies it: one decision, recorded once; its letter quotes the reasons recorded with it."""
    request = await _complaint(stack)
    reasons = ("We no longer need the records: your account closed in March.",
               "Our legal team found the dispute settled, so the records go.")
    said = await _outcomes(*(request.handle.execute_update(DSR.approve, ApproveInput(explanation=r, actor=f"c:{i}"))
                             for i, r in enumerate(reasons)),
                           request.handle.execute_update(DSR.deny, DenyInput(
                               reason_code=DenialReason.manifestly_unfounded,
                               explanation="The refusal stands: nothing new was said.", actor="c:2")))
    assert said.count("ok") == 1, said
    final = await request.result()
    granted = _events(stack, request.id, "approval.granted")
    responses, denials = _letters(stack, request.id, "response"), _letters(stack, request.id, "denial")
    if final.status == "completed":
        assert len(granted) == 1 and denials == [] and len(responses) == 1
        assert responses[0]["approval_explanation"] == granted[0]["explanation"] == reasons[said.index("ok")]
    else:
        assert final.status == "denied" and granted == [] and responses == [] and len(denials) == 1, said


async def test_an_appeal_withdrawn_while_another_claims_the_decision_leaves_one_decided_or_none_blocking(
        pool, settings):
    """Appeal A of a refusal is being decided; the subject's appeal B of the same refusal is
    confirmed (its claim) at the instant A is withdrawn. Either the withdrawal goes first and B is
    the one decided, or B is closed for A and A then withdrawn: then nothing of that refusal is
    being decided, and a new appeal of it is not refused (the subject is never left with an appeal
    closed for one that will not be decided and no way to appeal again). Never both decided."""
    ctx = ActivityContext(pool=pool, settings=settings, mailer=Mailer(settings), secret=load_secret_key(settings))
    for attempt in range(6):
        email = unique_email(f"hcu-claim-{attempt}")
        refusal = await stored_refusal(pool, settings, email, "vcdpa", type="erasure")
        first, second = [await stored_request(pool, settings, f"hcu-claim-{attempt}-{n}", "erasure", regime="vcdpa",
                                              email=email, appeal_of=refusal) for n in "ab"]
        await pool.execute("UPDATE dsr_requests SET status = 'in_progress' WHERE id = $1::uuid", first)
        withdrawal = Transition(request_id=first, status=RequestStatus.cancelled, event_key="status:cancelled",
                                actor="agent:x", data={"reason": "Withdrawn by phone", "withdrawn_by_subject": True})
        claim = AppealClaim(request_id=second, in_progress=Transition(
            request_id=second, status=RequestStatus.in_progress, event_key="status:in_progress"))
        steps = [LifecycleActivities(ctx).transition(withdrawal), AppealClaimActivities(ctx).claim_appeal_decision(claim)]
        if attempt % 2:  # either asked first: PostgreSQL decides which commits first
            steps.reverse()
        said = await asyncio.gather(*steps)
        taken = said[1 - attempt % 2]
        statuses = {r["id"]: r["status"] for r in await pool.fetch(
            "SELECT id::text, status FROM dsr_requests WHERE id = ANY($1::uuid[])", [first, second])}
        assert statuses[first] == "cancelled", statuses
        if taken is None:  # the withdrawal went first: B is the one decided, and a new appeal is refused
            assert statuses[second] == "in_progress", statuses
            assert (await decided_appeal(pool, refusal, email))["id"] == uuid.UUID(second)
        else:  # B closed for A, then A withdrawn: nothing holds a new appeal back
            assert taken.decided_as == first and statuses[second] == "cancelled", (taken, statuses)
            assert await decided_appeal(pool, refusal, email) is None
