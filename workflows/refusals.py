"""How staff close a request without answering it, as updates of its workflow: a denial
(Art. 12(4)/(5)) and a cancellation, each with its letter to the subject. The letters name the
subject's remedies (activities/letters.py); a request the subject withdrew themselves is recorded
as such and the withdrawal confirmed instead.

A mixin of DataSubjectRequestWorkflow (Temporal registers the updates of its base classes), kept
apart so that the workflow's main line stays readable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.workflow import CancelInput, DenyInput, RequestState

# workflow.patched id: requests cancelled before the cancellation letter existed replay without it.
CANCELLATION_LETTER = "cancellation-letter"


class Refusals:
    # Provided by DataSubjectRequestWorkflow.
    _withdrawn: bool
    _set_status: Callable[..., None]
    _transition: Callable[..., Awaitable[None]]
    _letter: Callable[..., Awaitable[None]]
    _require_open: Callable[..., None]
    state: Callable[[], RequestState]

    @workflow.update
    async def deny(self, request: DenyInput) -> RequestState:
        self._set_status(RequestStatus.denied, request.reason_code.value)
        await self._transition("denied", {"reason_code": request.reason_code.value}, request.actor)
        await self._letter(
            "denial",
            params={"reason_code": request.reason_code.value, "explanation": request.explanation},
        )
        return self.state()

    @deny.validator
    def _validate_deny(self, request: DenyInput) -> None:
        self._require_open()

    @workflow.update
    async def cancel(self, request: CancelInput) -> RequestState:
        withdrawn = request.withdrawn_by_subject
        self._withdrawn = withdrawn
        self._set_status(RequestStatus.cancelled, request.reason)
        await self._transition("cancelled", {"reason": request.reason, "withdrawn_by_subject": withdrawn},
                               request.actor)
        # Closing a request unanswered refuses it (Art. 12(4) GDPR): the subject is told why, with
        # their remedies. A withdrawal is confirmed instead, so that one made in the subject's
        # name without them comes to light.
        if workflow.patched(CANCELLATION_LETTER):
            await self._letter("cancellation", params={"reason": request.reason, "withdrawn": withdrawn})
        return self.state()

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        self._require_open(facts=False)  # a request whose registration fails can still be cancelled
