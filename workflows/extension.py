"""How staff extend a request's deadline, as an update of its workflow: once, before the due date,
where the request's law allows it (Art. 12(3) GDPR: by two months, the subject told why within
the first month). A UK GDPR request awaiting its subject's verification is refused an extension:
its month has not started (schemas/clock_start.py), and a letter giving a date counted from
receipt would be contradicted once verification moves the dates later (workflows/verification_clock.py).
A validator's refusal is not in the history (validators do not run on replay), so it needs no
workflow.patched id.

A mixin of DataSubjectRequestWorkflow (Temporal registers the updates of its base classes), kept
apart so that the workflow's main line stays readable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from dsrflow.domain.deadlines import takes_complaints
    from schemas.clock_start import EXTEND_ONCE_VERIFIED, clock_waits_for_verification
    from schemas.requests import RequestStatus
    from schemas.workflow import ExtendInput, ExtensionRecord, RequestFacts, RequestState
    from workflows.dsr_steps import letter_job, run_step
    from workflows.owed_steps import OWED_STEPS, OwedSteps, letter, record


def _no_extension(facts: RequestFacts) -> str:
    """Why a request with no extension has none. A UK request without one is a complaint to us
    (DPA 2018 s. 164A, dsrflow/domain/deadlines.py): its due date is our target, not the law's, and
    the Act sets no period that could be extended; the LGPD's 15 days are the law's own."""
    if takes_complaints(facts.regime):
        return (f"this complaint to us (Data Protection Act 2018, s. 164A) has no extension: its due date, "
                f"{facts.due_date.isoformat()}, is our own target for telling the outcome without undue delay, "
                f"which the Act puts in no number of days and which we do not extend")
    return (f"the law of this request ({facts.regime}) allows no extension of its deadline: it must be "
            f"answered by {facts.due_date.isoformat()}")


class Extension:
    # Provided by DataSubjectRequestWorkflow.
    request_id: str
    _status: RequestStatus
    _extended: bool
    _extension_reason: str | None
    _extending: bool  # an extension being recorded and notified inside its update (older histories)
    _owed: OwedSteps
    _require_facts: Callable[[], RequestFacts]
    _require_open: Callable[..., None]
    _require_nothing_under_way: Callable[[], None]
    _publish_search_attributes: Callable[[], None]
    _letter: Callable[..., Awaitable[None]]
    state: Callable[[], RequestState]

    _extension_owed: int | None  # the mark of the owed steps that record and notify it

    @property
    def extension_under_way(self) -> bool:
        """The extension is taken and its record or its letter is not done yet: the response,
        a denial or a cancellation would reach the subject before (or instead of) the new date."""
        owed = self._extension_owed
        return self._extending or (owed is not None and not self._owed.done(owed))

    @workflow.update
    async def extend(self, request: ExtendInput) -> RequestState:
        if self._extended:  # a second update may have passed validation while the first ran
            raise ApplicationError("the deadline has already been extended once", non_retryable=True)
        facts = self._require_facts()
        self._extended = True
        self._extension_reason = request.reason
        recorded = ExtensionRecord(request_id=self.request_id, reason=request.reason, actor=request.actor)
        params = {"reason": request.reason, "new_due_date": facts.extended_due_date.isoformat()}
        if workflow.patched(OWED_STEPS):
            self._publish_search_attributes()
            self._extension_owed = self._owed.owe(
                record("apply_extension", recorded),
                letter(letter_job(self.request_id, "extension", params=params)))
            await self._owed.until_done_or_troubled(self._extension_owed)
            return self.state()
        self._extending = True
        try:
            await run_step("apply_extension", recorded)
            self._publish_search_attributes()
            await self._letter("extension", params=params)
        finally:
            self._extending = False
        return self.state()

    @extend.validator
    def _validate_extend(self, request: ExtendInput) -> None:
        self._require_open()
        if self._extended:
            raise ValueError("the deadline has already been extended once; it cannot be extended again")
        self._require_nothing_under_way()  # a new due date after the answer would mislead
        facts = self._require_facts()
        if facts.extended_due_date <= facts.due_date:
            raise ValueError(_no_extension(facts))
        # A complaint to us has no extension (refused just above), so this is a request's own month.
        if clock_waits_for_verification(facts.regime, self._status):
            raise ValueError(EXTEND_ONCE_VERIFIED)
        due = facts.due
        if workflow.now() >= due.overdue_at:
            raise ValueError(
                f"the due date {due.due_date.isoformat()} has passed; an extension must be "
                f"notified before it"
            )
