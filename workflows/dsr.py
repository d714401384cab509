"""DataSubjectRequestWorkflow: one durable workflow per data-subject request.

received -> acknowledged -> identity verified (unless attested; UK GDPR: the dates then counted
from that day, workflows/verification_clock.py) -> plan -> execute ->
[compliance approval, where the policy asks for it] -> respond, with a deadline watch running
beside it (workflows/deadline_watch.py) and staff updates (extend, deny, cancel, approve, resend
verification) answered at any time. Identity verification lives in workflows/verification.py; a
completed restriction stays in force until lifted (workflows/restriction_lifecycle.py).
Deterministic: every side effect is an activity; the only clock is `workflow.now()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.verification import VerificationState, VerifyAttempt, VerifyResult
    from schemas.workflow import (
        ApproveInput,
        Checkpoints,
        ExecutionReport,
        ObjectionDecision,
        PackageInfo,
        Plan,
        RequestFacts,
        RequestState,
        ResendInput,
        StartRequest,
    )
    from workflows import search_attributes as sa
    from workflows.appeal_claim import decided_once
    from workflows.approval import Approval
    from workflows.complaint_progress import ProgressByHand, ToldByHand
    from workflows.deadline_watch import DeadlineWatch
    from workflows.dsr_steps import (
        PACKAGING,
        PLANNING,
        RequestClosed,
        record_transition,
        run_step,
        send_letter,
    )
    from workflows.extension import Extension
    from workflows.objection_decision import ObjectionDecisions
    from workflows.owed_steps import OwedSteps
    from workflows.processor_exports import collect_exports
    from workflows.refusals import Refusals
    from workflows.restriction_lifecycle import RestrictionLifecycle
    from workflows.staff_carry_on import CarryOn
    from workflows.step_trouble import StepTroubles
    from workflows.task_fanout import RETRIES_BEFORE_END, SystemTasks
    from workflows.verification import IdentityVerification
    from workflows.verification_clock import clock_from_verification

# workflow.patched ids: requests started before a change replay the old way.
APPROVAL_GATE = "approval-gate"
APPROVAL_BEFORE_CHANGES = "approval-before-changes"
OBJECTION_GATE = "objection-gate"
ANSWER_AFTER_EXTENSION = "answer-after-extension"  # before it, a new due date could reach the subject after the answer
# LGPD Art. 19, I: the simplified confirmation, sent as soon as the identity is verified.
SIMPLIFIED_CONFIRMATION = "simplified-confirmation"


@workflow.defn(name="DataSubjectRequestWorkflow")
class DataSubjectRequestWorkflow(RestrictionLifecycle, CarryOn, Refusals, Extension, Approval, ObjectionDecisions,
                                 ProgressByHand):
    def __init__(self) -> None:
        self.request_id = ""
        self._policy_version = ""
        self._facts: RequestFacts | None = None
        self._status = RequestStatus.awaiting_verification
        self._closed_reason: str | None = None
        self._troubles = StepTroubles()
        self._owed = OwedSteps()  # what staff decisions and verification attempts owe: their records and letters
        self._verification = IdentityVerification(self._owed, self._troubles)
        self._extended = False
        self._extension_reason: str | None = None
        self._withdrawn = False  # cancelled: the subject withdrew it themselves
        self._watch = DeadlineWatch()
        self._told = ToldByHand()  # progress letters staff sent by hand (a UK complaint: ProgressByHand)
        self._plan: Plan | None = None
        self._tasks = SystemTasks(owed=self._owed, closed=lambda: self.closed)
        self._package: PackageInfo | None = None
        self._decision: ObjectionDecision | None = None
        self._decision_owed: int | None = None  # the mark of its owed record (workflows/owed_steps.py)
        self._approval: ApproveInput | None = None
        self._approving = False  # an approval taken and not yet carried out
        self._approval_owed: int | None = None  # the mark of its owed record (workflows/approval.py)
        self._extending = False  # an extension being recorded and notified inside its update (older histories)
        self._extension_owed: int | None = None
        self._answering = False  # the response is being sent
        self.attention_after = timedelta(minutes=15)

    # ---- main line ------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: StartRequest) -> RequestState:
        self.request_id = start.request_id
        self._policy_version = start.policy_version
        self.attention_after = timedelta(minutes=start.attention_after_minutes)
        watch: asyncio.Task[None] | None = None
        owed = asyncio.create_task(self._owed.run(self.request_id, self.attention_after))
        try:
            self._facts = await run_step("prepare_request", start, result_type=RequestFacts, skippable=False)
            facts = self._require_facts()
            self._status = (
                RequestStatus.in_progress if facts.attested else RequestStatus.awaiting_verification
            )
            self._publish_search_attributes()
            watch = asyncio.create_task(self._watch.run(self))

            await self._letter("acknowledgement", params={"verification_required": not facts.attested})
            if not facts.attested:
                await self._verify_identity()
            if not self.closed:
                await self._process()
        except RequestClosed:
            pass  # closed by staff while a failed step waited for them

        # Staff updates may still be finishing their letters, and their decisions' owed steps
        # waiting for staff; let them, and a failed step of the watch close its trouble (it gives
        # up once the request is closed), then stop the watch.
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._owed.idle
                                      and self._watch.troubles.settled)
        if watch is not None:
            watch.cancel()
        # A restriction stays in force until lifted; staff answers to the lift's tasks owe their
        # records meanwhile, so the owed steps run on until it ends.
        first = self._tasks  # a lift replaces it; a task asked before the close is followed to its end
        await self.keep_restriction_until_lifted()
        if first.left_running is not None:
            await first.left_running
        if self._tasks.retries_running and workflow.patched(RETRIES_BEFORE_END):
            # A system asked again before the close may still act: its result is recorded, as the
            # first attempts' are, before the request ends.
            await workflow.wait_condition(lambda: not self._tasks.retries_running)
        await workflow.wait_condition(lambda: self._owed.idle)
        owed.cancel()
        return self.state()

    # What the deadline watch reads (workflows.deadline_watch.WatchedRequest).
    @property
    def closed(self) -> bool:
        return self._status.is_closed

    @property
    def extended(self) -> bool:
        return self._extended

    @property
    def status(self) -> RequestStatus:
        return self._status

    async def _verify_identity(self) -> None:
        expired_at = await self._verification.run(self.request_id, self._require_facts(), lambda: self.closed)
        if expired_at is not None:
            await self._close_unverified(expired_at)
        elif self._verification.verified_at is not None and not self.closed:
            # UK GDPR: the month runs from the day of verification (workflows/verification_clock.py);
            # the watch and the search attribute (`_process`'s status) follow the new dates.
            self._facts = await clock_from_verification(self._require_facts(), self._policy_version,
                                                        self._verification.verified_at)

    async def _close_unverified(self, expired_at: datetime) -> None:
        self._set_status(RequestStatus.closed_unverified, "identity not verified in time")
        await self._transition("closed_unverified", {"expired_at": expired_at.isoformat()})
        await self._letter("closed_unverified", params={"expired_at": expired_at.isoformat()})

    async def _process(self) -> None:
        """plan -> execute -> respond."""
        if not await decided_once(self._require_facts(), self._status, self._verification.method, self._set_status,
                                  lambda: self.closed):
            return  # another appeal of the same refusal is decided instead (workflows/appeal_claim.py)
        if self._status != RequestStatus.in_progress:
            self._set_status(RequestStatus.in_progress)
            await self._transition("in_progress", {"verified_by": self._verification.method})
        facts = self._require_facts()
        if facts.simplified_confirmation and not self.closed and workflow.patched(SIMPLIFIED_CONFIRMATION):
            # Whether we process the subject's data, as far as our own systems tell at once
            # (activities/letter_confirmation.py); the complete answer follows by the due date.
            told = await run_step("confirm_at_once", StartRequest(request_id=facts.request_id,
                                                                  policy_version=self._policy_version),
                                  result_type=dict, skippable=False)
            await self._letter("simplified_confirmation", params=told)
            if self.closed:
                return
        self._plan = await run_step(
            "plan_request",
            StartRequest(request_id=facts.request_id, policy_version=self._policy_version),
            result_type=Plan, timeouts=PLANNING, skippable=False,
        )
        if self.closed:
            return
        if self._needs_decision() and workflow.patched(OBJECTION_GATE):
            if not await self._ask_staff("objection-decision", self._decided, {"what": "objection"}):
                return
        if self._decision is not None and self._decision.compelling_grounds:
            pass  # processing continues on compelling grounds; the response explains them
        elif self._plan.request_type in ("access", "portability"):
            if not await collect_exports(self._tasks, self._plan, lambda: self.closed, self._days_left):
                return
            package = await run_step("build_package", self._plan, result_type=PackageInfo,
                                     timeouts=PACKAGING, skippable=False)
            # One not built (its request closed unanswered meanwhile) is no package: none to show.
            self._package = None if package.stopped else package
        else:
            # A change to the systems (a rectification, an attested erasure) is approved before
            # any system is touched, not after: afterwards there would be nothing left to stop.
            changes_first = self._require_facts().approval_required and workflow.patched(APPROVAL_BEFORE_CHANGES)
            if changes_first and not await self._await_approval({"what": "approval", "stage": "changes"}):
                return
            await self._tasks.run_and_settle(self._plan, lambda: self.closed, self._days_left,
                                             leave_on_close=self._plan.request_type == "restriction")
        if self.closed:
            return
        if (self._require_facts().approval_required and self._approval is None and workflow.patched(APPROVAL_GATE)
                and not await self._await_approval({"what": "approval", "stage": "release"})):
            return
        params: dict[str, Any] = {"report": self._report_now().model_dump(mode="json"), **self.approval_reasons()}
        if self._decision is not None:
            params["decision"] = self._decision.model_dump(mode="json", exclude={"actor"})
        if self.extension_under_way and workflow.patched(ANSWER_AFTER_EXTENSION):
            await workflow.wait_condition(lambda: not self.extension_under_way)
        self._answering = True  # from here a denial, cancellation or extension is refused (Refusals)
        await self._letter("response", params=params)
        self._set_status(RequestStatus.completed)
        # The plan's tasks carried out: none where an objection was overridden on compelling grounds.
        overridden = self._decision is not None and self._decision.compelling_grounds
        await self._transition("completed", {"tasks": 0 if overridden else len(self._plan.tasks)})

    async def _await_approval(self, facts: dict[str, Any]) -> bool:
        """The policy asks compliance to check the request first: hold it until the `approve`
        update; False when it was denied or cancelled instead."""
        self._set_status(RequestStatus.awaiting_approval)
        await self._transition("awaiting_approval", {"package_id": self._package.package_id if self._package else None})
        if not await self._ask_staff("approval", self.approved, facts):
            return False
        self._approving = True  # until recorded as carried out (older histories' approvals did not set it)
        self._set_status(RequestStatus.in_progress)
        assert self._approval is not None  # answered, and not closed
        await self._transition("approved", {}, self._approval.actor)
        self._approving = False
        return not self.closed  # a cancellation may have come in meanwhile (older histories)

    async def _ask_staff(self, key: str, answered: Callable[[], bool], facts: dict[str, Any]) -> bool:
        """Alert staff that the request waits for them (`facts`: what for, which the letter says
        in the staff language), then wait for their answer; False if the request was closed instead."""
        await self._letter("staff_alert", key=key, to_staff=True,
                           params={"kind": "needs_attention", "days_left": self._days_left(), "facts": facts})
        await workflow.wait_condition(lambda: answered() or self.closed)
        return not self.closed

    def _days_left(self) -> int:
        due = self.current_checkpoints().overdue_at
        return max((due - workflow.now()).days, 0)

    def _report_now(self) -> ExecutionReport:
        return ExecutionReport(results=list(self._tasks.results.values()), package=self._package)

    def current_checkpoints(self) -> Checkpoints:
        facts = self._require_facts()
        return facts.extended if self._extended else facts.due

    def outstanding(self) -> dict[str, Any]:
        """What holds the response back, as the facts of staff's deadline warnings and overdue
        reminders (activities/staff_alert_words.py; empty for nothing): the systems
        (workflows/task_fanout.py), an objection waiting for compliance's decision, and a failed
        step waiting for staff. A letter's data, not a command: older histories replay unchanged."""
        held: dict[str, Any] = self._tasks.outstanding()
        if self._needs_decision() and self._decision is None and not self.closed:
            held["objection"] = True
        failed = [{"step": troubles.current.step, "about": troubles.current.about}
                  for troubles in (self._owed.troubles, self._troubles)  # the watch's own is the alert itself
                  if troubles.current is not None and troubles.current.answered_by is None]
        return {**held, "failed_steps": failed} if failed else held

    # ---- updates and query ------------------------------------------------------------------

    @workflow.update
    async def verify(self, attempt: VerifyAttempt) -> VerifyResult:
        facts = self._require_facts()
        return await self._verification.check(self.request_id, facts, attempt)

    @verify.validator
    def _validate_verify(self, attempt: VerifyAttempt) -> None:
        self._verification.validate(self._status, self._require_facts, attempt)

    @workflow.update
    async def resend_verification(self, request: ResendInput) -> VerificationState:
        await self._verification.resend(self.request_id, request.actor)
        return self._verification.state(self._require_facts())

    @resend_verification.validator
    def _validate_resend(self, request: ResendInput) -> None:
        if self._verification.verified_at:  # its status follows once the success is on record
            raise ValueError("request is not awaiting verification: the identity is verified already")
        if self._status != RequestStatus.awaiting_verification or self._verification.challenge is None:
            raise ValueError(f"request is not awaiting verification (status {self._status.value})")
        sent, most = self._verification.codes_sent(), self._require_facts().verification_max_codes
        if request.actor == "subject" and sent >= most:
            # Each code takes `max_attempts` guesses: capped per request, whatever the client.
            raise ValueError(f"no more codes can be sent for this request ({sent} have been, the most a "
                             "subject can ask for); staff can send one")

    @workflow.query
    def state(self) -> RequestState:
        facts = self._facts
        return RequestState(
            request_id=self.request_id,
            status=self._status,
            request_type=facts.request_type if facts else None,
            regime=facts.regime if facts else None,
            received_at=facts.received_at if facts else None,
            due_date=facts.due_date if facts else None,
            extended_due_date=facts.extended_due_date if facts else None,
            current_due_date=self.current_checkpoints().due_date if facts else None,
            acknowledge_by=facts.acknowledge_by if facts else None,
            extended=self._extended,
            extension_reason=self._extension_reason,
            overdue=self._watch.overdue,
            warnings_sent=self._watch.days_sent(),
            verification=self._verification.state(facts) if facts else None,
            plan=self._plan,
            results=list(self._tasks.results.values()),
            package=self._package,
            awaiting_decision=self._needs_decision() and self._decision is None and not self.closed,
            decision=self._decision,
            decision_on_record=self._decided(),
            approval_required=facts.approval_required if facts else False,
            approval=self._approval,
            closed_reason=self._closed_reason,
            withdrawn_by_subject=self._withdrawn,
            trouble=self._shown_troubles().current,
            owed=[*self._owed.pending, *self.lift_owes],
        )

    # ---- helpers ----------------------------------------------------------------------------

    def _require_facts(self) -> RequestFacts:
        if self._facts is None:
            trouble = self._troubles.current
            if trouble is not None:
                raise ValueError(f"the request could not be registered ({trouble.message}); "
                                 "retry the step once its cause is fixed, or cancel the request")
            raise ValueError("the request is still being registered; try again in a moment")
        return self._facts

    def _require_open(self, *, facts: bool = True) -> None:
        if facts:
            self._require_facts()
        if self.closed:
            raise ValueError(f"request is already closed (status {self._status.value})")

    def _set_status(self, status: RequestStatus, reason: str | None = None) -> None:
        self._status = status
        if status.is_closed:
            self._closed_reason = reason
        self._publish_search_attributes()

    def _publish_search_attributes(self) -> None:
        facts = self._facts
        updates: list[SearchAttributeUpdate[Any]] = [sa.STATUS.value_set(self._status.value)]
        if facts:
            due = self.current_checkpoints().due_date
            updates += [
                sa.REQUEST_TYPE.value_set(facts.request_type.value),
                sa.REGIME.value_set(facts.regime),
                sa.DUE_DATE.value_set(datetime(due.year, due.month, due.day, tzinfo=UTC)),
            ]
        workflow.upsert_search_attributes(updates)

    async def _transition(self, event: str, data: dict[str, Any], actor: str = "workflow") -> None:
        await record_transition(self.request_id, self._status, event, data, actor)

    async def _letter(
        self, purpose: str, *, key: str = "1", params: dict[str, Any] | None = None, to_staff: bool = False
    ) -> None:
        await send_letter(self.request_id, purpose, key=key, params=params, to_staff=to_staff)
