"""How staff close a request without answering it, as updates of its workflow: a denial
(Art. 12(4)/(5)) and a cancellation, each with its letter to the subject. The letters name the
subject's remedies (activities/letters.py); a request the subject withdrew themselves is recorded
as such and the withdrawal confirmed instead.

A mixin of DataSubjectRequestWorkflow (Temporal registers the updates of its base classes), kept
apart so that the workflow's main line stays readable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus, denial_reasons
    from schemas.workflow import (
        ApproveInput,
        CancelInput,
        DenyInput,
        ObjectionDecision,
        RequestFacts,
        RequestState,
        waits_unreached,
    )
    from workflows.dsr_steps import letter_job, transition_record
    from workflows.owed_steps import OWED_STEPS, OwedSteps, letter, record
    from workflows.step_trouble import StepTroubles
    from workflows.task_fanout import SystemTasks

# workflow.patched id: requests cancelled before the cancellation letter existed replay without it.
CANCELLATION_LETTER = "cancellation-letter"
# workflow.patched id: a system whose task waits on its unreachable SaaS when the request closes is
# no longer among those the closing letter says "may still" act: the task tries nothing more once
# its request is closed (TaskInput.after_outage), so the letter promised an effect that never came.
CLOSED_OUTAGE_NOT_ASKED = "closed-outage-not-asked"


class Refusals:
    # Provided by DataSubjectRequestWorkflow.
    request_id: str
    _withdrawn: bool
    _approving: bool  # an approval taken and not yet carried out
    _approval: ApproveInput | None
    approved: Callable[[], bool]  # workflows/approval.py
    _decision: ObjectionDecision | None  # an objection's decision, once taken
    _decided: Callable[[], bool]  # ... and on record
    _answering: bool  # the response is being sent
    _troubles: StepTroubles
    _tasks: SystemTasks  # the closing letter names the systems changed, and those still at work
    _owed: OwedSteps
    extension_under_way: bool
    _set_status: Callable[..., None]
    _transition: Callable[..., Awaitable[None]]
    _letter: Callable[..., Awaitable[None]]
    _require_open: Callable[..., None]
    _require_facts: Callable[[], RequestFacts]
    state: Callable[[], RequestState]

    @workflow.update
    async def deny(self, request: DenyInput) -> RequestState:
        self._set_status(RequestStatus.denied, request.reason_code.value)
        # The explanation goes into the trail too (as an objection's decision does): the evidence
        # pack then shows why without reading the letter.
        data = {"reason_code": request.reason_code.value, "explanation": request.explanation}
        params = {"reason_code": request.reason_code.value, "explanation": request.explanation, **self._done_so_far()}
        if workflow.patched(OWED_STEPS):
            await self._closed_by(RequestStatus.denied, data, request.actor, "denial", params)
            return self.state()
        await self._transition("denied", data, request.actor)
        await self._letter("denial", params=params)
        return self.state()

    @deny.validator
    def _validate_deny(self, request: DenyInput) -> None:
        self._require_open()
        self._require_nothing_under_way()
        regime = self._require_facts().regime
        if request.reason_code not in denial_reasons(regime):
            raise ValueError(f"a request under {regime.upper()} cannot be denied as {request.reason_code.value}: that "
                             "law gives no such ground; deny it as other, explaining the exception the refusal rests on")

    @workflow.update
    async def cancel(self, request: CancelInput) -> RequestState:
        withdrawn = request.withdrawn_by_subject
        self._withdrawn = withdrawn
        self._set_status(RequestStatus.cancelled, request.reason)
        data = {"reason": request.reason, "withdrawn_by_subject": withdrawn}
        # Closing a request unanswered refuses it (Art. 12(4) GDPR): the subject is told why, with
        # their remedies. A withdrawal is confirmed instead, so that one made in the subject's
        # name without them comes to light.
        params = {"reason": request.reason, "withdrawn": withdrawn, **self._done_so_far()}
        if workflow.patched(OWED_STEPS):
            await self._closed_by(RequestStatus.cancelled, data, request.actor, "cancellation", params)
            return self.state()
        await self._transition("cancelled", data, request.actor)
        if workflow.patched(CANCELLATION_LETTER):
            await self._letter("cancellation", params=params)
        return self.state()

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        self._require_open(facts=False)  # a request whose registration fails can still be cancelled
        self._require_nothing_under_way()

    def _done_so_far(self) -> dict[str, list[str]]:
        """What the closing letter tells of the systems: those already changed, and those asked
        and still at work (a processor may still act). A task waiting on its unreachable SaaS is
        not still at work: closed, the request gets no further try of it; the letter says of it
        what it says of a task that failed (nothing), as before the task waited."""
        asked = self._tasks.asked_systems()
        waiting = {r.system for r in self._tasks.results.values() if waits_unreached(r)}
        if waiting & set(asked) and workflow.patched(CLOSED_OUTAGE_NOT_ASKED):
            asked = [system for system in asked if system not in waiting]
        return {"acted_in": self._tasks.changed_systems(), "asked_in": asked}

    async def _closed_by(self, status: RequestStatus, data: dict[str, Any], actor: str, purpose: str,
                         params: dict[str, Any]) -> None:
        """The closing's record and letter, owed until done (workflows/owed_steps.py): the request
        is closed from now on, whatever they meet."""
        await self._owed.carried_out(
            record("transition", transition_record(self.request_id, status, status.value, data, actor)),
            letter(letter_job(self.request_id, purpose, params=params)))

    def _require_nothing_under_way(self) -> None:
        """Refuse a denial, cancellation or extension that would contradict what another update,
        or the request itself, has begun and not finished (each spans activations, so a second
        member of staff can press a button meanwhile): the approval, or an objection's decision,
        would be recorded with nothing carried out, the subject would get a refusal and the
        response, or a new due date after the answer. Once the approval or the response is on the
        main line, a failed step of it that waits for staff does not hold the request: closing it
        then stops that step before it releases anything (workflows/step_trouble.py raises
        RequestClosed)."""
        if self.extension_under_way:
            if self._owed.troubles.current is not None:
                raise ValueError("the extension of the request's deadline is not done: its step "
                                 f"{self._owed.troubles.current.step} failed; retry or skip it first")
            raise ValueError("request's deadline is being extended and the subject told; try again in a moment")
        stuck = self._troubles.waiting
        failed = self._owed.troubles.current
        if self._decision is not None and not self._decided():
            # As an approval: the decision would be recorded after the request was closed on
            # another ground, and the trail would hold both.
            if failed is not None:
                raise ValueError(f"the objection's decision is not on record: its step {failed.step} failed; "
                                 "retry it first")
            raise ValueError("the objection has just been decided, and the decision is being recorded")
        if self._approving and failed is not None and not self.approved():
            raise ValueError(f"the approval is not on record: its step {failed.step} failed; retry it first")
        if self._approving and not (self._approval is not None and stuck):
            raise ValueError("request has just been approved, and the approval is being carried out")
        if self._answering and not stuck:
            raise ValueError("request is being answered: its response is on its way to the subject")
