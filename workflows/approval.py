"""How compliance releases a request the policy holds for them, as an update of its workflow: the
approval is taken at once and is on record before anything it releases; the main line then
carries it out (workflows/dsr.py `_await_approval`).

A mixin of DataSubjectRequestWorkflow (Temporal registers the updates of its base classes), kept
apart so that the workflow's main line stays readable.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.workflow import ApproveInput, RequestFacts, RequestState
    from workflows.dsr_steps import event_record, run_step
    from workflows.owed_steps import OwedSteps, answered_within, record

# workflow.patched ids. Before APPROVAL_RECORDED_FIRST an approval was taken only once recorded
# (a concurrent denial could be taken meanwhile). Before APPROVAL_OWED its record ran inside the
# update: a database that did not answer held the officer's call for the policy's threshold (15
# min) and then failed it, although a record taken late by the database stayed in the audit trail
# for an approval that never counted. Now the record is an owed step (workflows/owed_steps.py),
# retried until done, and the main line releases nothing before it is done.
APPROVAL_RECORDED_FIRST = "approval-recorded-first"
APPROVAL_OWED = "approval-owed"

SELF_APPROVAL = ("you attested this subject's identity, so you cannot also approve the request: another "
                 "compliance officer or an admin approves it")


class Approval:
    # Provided by DataSubjectRequestWorkflow.
    request_id: str
    _status: RequestStatus
    _facts: RequestFacts | None
    _approval: ApproveInput | None
    _approving: bool  # an approval taken and not yet carried out
    _approval_owed: int | None  # the mark of its owed record
    _owed: OwedSteps
    _require_open: Callable[..., None]
    state: Callable[[], RequestState]

    @workflow.update
    async def approve(self, request: ApproveInput) -> RequestState:
        self._validate_approve(request)  # again: a concurrent approval may have passed validation too
        # An appeal's reasons go into the trail beside the note (the evidence pack, the timeline);
        # an approval without them records what it always did.
        reasons = {"explanation": request.explanation} if request.explanation else {}
        recorded = event_record(self.request_id, "approval.granted", "approval", {"note": request.note, **reasons},
                                request.actor)
        if workflow.patched(APPROVAL_OWED):
            # Taken at once, so a concurrent approval, denial or cancellation is refused; released
            # once on record. Answered once the main line has moved on, the record is in trouble,
            # or ANSWER_WITHIN has passed (the state's `owed` then shows the record under way).
            self._approving, self._approval = True, request
            self._approval_owed = self._owed.owe(record("record_event", recorded))
            await answered_within(
                lambda: self._status != RequestStatus.awaiting_approval or self._owed.troubles.current is not None)
            return self.state()
        if workflow.patched(APPROVAL_RECORDED_FIRST):
            self._approving = True
            try:
                await run_step("record_event", recorded)
            except BaseException:
                self._approving = False  # not taken: the request still waits for an approval
                raise
            self._approval = request
        else:
            self._approval = request
            await run_step("record_event", recorded)
        # Answer once the main line has moved on, so the caller sees the response on its way.
        await workflow.wait_condition(lambda: self._status != RequestStatus.awaiting_approval)
        return self.state()

    @approve.validator
    def _validate_approve(self, request: ApproveInput) -> None:
        self._require_open()
        if self._approval is not None or self._approving:
            # Two officers at once: the other approval was taken; its status follows in a moment.
            raise ValueError("request is not awaiting approval: it has been approved already")
        if self._status != RequestStatus.awaiting_approval:
            raise ValueError(f"request is not awaiting approval (status {self._status.value})")
        if self._facts is not None and self._facts.attested_by == request.actor:
            # The approval is the second look at what one member of staff vouched for.
            raise ValueError(SELF_APPROVAL)

    def approval_reasons(self) -> dict[str, str]:
        """The response letter's params for an appeal's (a UK complaint's) grant: compliance's
        reasons, which the letter quotes under "Why we decided this"; none without them. Only an
        activity's input changes, no command: histories recorded before replay as they ran."""
        explanation = self._approval.explanation if self._approval is not None else None
        return {"approval_explanation": explanation} if explanation else {}

    def approved(self) -> bool:
        """The approval is taken, and on record (older histories: once taken)."""
        mark = self._approval_owed
        return self._approval is not None and (mark is None or self._owed.done(mark))
