"""How compliance releases a request the policy holds for them, as an update of its workflow: the
approval is on record before anything it releases, then the main line carries it out
(workflows/dsr.py `_await_approval`).

A mixin of DataSubjectRequestWorkflow (Temporal registers the updates of its base classes), kept
apart so that the workflow's main line stays readable.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.workflow import ApproveInput, RequestState
    from workflows.dsr_steps import CALLER_WAITS, STEP_FAILURES, describe_failure, event_record, run_step

# workflow.patched ids: before the first, an approval was taken only after its record (a concurrent
# denial could be taken meanwhile); before the second, a database that did not answer held the
# officer's call for the policy's threshold (15 min) while the record was retried.
APPROVAL_RECORDED_FIRST = "approval-recorded-first"
APPROVAL_BOUNDED = "approval-bounded"


class Approval:
    # Provided by DataSubjectRequestWorkflow.
    request_id: str
    _status: RequestStatus
    _approval: ApproveInput | None
    _approving: bool  # an approval taken and not yet carried out
    _require_open: Callable[..., None]
    state: Callable[[], RequestState]

    @workflow.update
    async def approve(self, request: ApproveInput) -> RequestState:
        self._validate_approve(request)  # again: a concurrent approval may have passed validation too
        recorded = event_record(self.request_id, "approval.granted", "approval", {"note": request.note}, request.actor)
        if workflow.patched(APPROVAL_RECORDED_FIRST):
            # The approval is on record before anything it releases (the main line's steps are
            # quick now): taken at once, so a concurrent approval, denial or cancellation is
            # refused, then recorded; `_approving` holds until the main line has carried it out.
            self._approving = True
            bounded = workflow.patched(APPROVAL_BOUNDED)
            try:
                await run_step("record_event", recorded, give_up=CALLER_WAITS if bounded else None)
            except STEP_FAILURES as error:
                self._approving = False  # not taken: the request still waits for an approval
                if not bounded:
                    raise
                raise ApplicationError(f"the approval could not be recorded ({describe_failure(error)[0]}); "
                                       "nothing was released: approve again in a moment") from None
            except BaseException:
                self._approving = False
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
