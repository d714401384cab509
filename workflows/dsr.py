"""DataSubjectRequestWorkflow: one durable workflow per data-subject request.

received -> acknowledged -> identity verified (unless attested) -> plan -> execute -> respond,
with a deadline watch running beside it and staff updates (extend, deny, cancel, resend
verification) answered at any time. Deterministic: every side effect is an activity; the only
clock is `workflow.now()`.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.workflow import (
        CancelInput,
        Challenge,
        Checkpoints,
        DenyInput,
        EventRecord,
        ExecutionReport,
        ExtendInput,
        ExtensionRecord,
        IssueChallenge,
        LetterJob,
        ObjectionDecision,
        PackageInfo,
        Plan,
        RequestFacts,
        RequestState,
        ResendInput,
        ResolveTaskInput,
        RetryTaskInput,
        StartRequest,
        SystemTask,
        TaskInput,
        TaskRecord,
        TaskResult,
        Transition,
        task_workflow_id,
        VerificationState,
        VerifyAttempt,
        VerifyResult,
    )
    from workflows import search_attributes as sa
    from workflows.system_task import SystemTaskWorkflow

_ACTIVITY = dict(
    start_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
)


@workflow.defn(name="DataSubjectRequestWorkflow")
class DataSubjectRequestWorkflow:
    def __init__(self) -> None:
        self._request_id = ""
        self._policy_version = ""
        self._facts: RequestFacts | None = None
        self._status = RequestStatus.awaiting_verification
        self._closed_reason: str | None = None
        self._challenge: Challenge | None = None
        self._issuing = False
        self._attempts = 0
        self._verified_at: datetime | None = None
        self._verified_method: str | None = None
        self._extended = False
        self._extension_reason: str | None = None
        self._warnings_sent: set[tuple[bool, int]] = set()
        self._overdue = False
        self._plan: Plan | None = None
        self._results: dict[str, TaskResult] = {}
        self._package: PackageInfo | None = None
        self._retrying = 0
        self._decision: ObjectionDecision | None = None

    # ---- main line ------------------------------------------------------------------------

    @workflow.run
    async def run(self, start: StartRequest) -> RequestState:
        self._request_id = start.request_id
        self._policy_version = start.policy_version
        self._facts = await workflow.execute_activity(
            "prepare_request", start, result_type=RequestFacts, **_ACTIVITY
        )
        facts = self._facts
        self._status = (
            RequestStatus.in_progress if facts.attested else RequestStatus.awaiting_verification
        )
        self._publish_search_attributes()
        watch = asyncio.create_task(self._watch_deadlines())

        await self._letter("acknowledgement", params={"verification_required": not facts.attested})
        if not facts.attested:
            await self._verify_identity()
        if not self._closed:
            await self._process()

        # Staff updates may still be finishing their letters; let them, then stop the watch.
        await workflow.wait_condition(workflow.all_handlers_finished)
        watch.cancel()
        return self.state()

    @property
    def _closed(self) -> bool:
        return self._status.is_closed

    async def _verify_identity(self) -> None:
        facts = self._require_facts()
        expires_at = facts.received_at + timedelta(days=facts.expires_after_days)
        if workflow.now() >= expires_at:
            # Received (back-dated) longer ago than the verification window: still give the
            # subject the full window from now.
            expires_at = workflow.now() + timedelta(days=facts.expires_after_days)
        await self._issue_challenge("verification", expires_at)
        reminder_at = workflow.now() + timedelta(days=facts.reminder_after_days)
        reminded = False
        while not self._verified_at and not self._closed:
            now = workflow.now()
            expires_at = self._challenge.expires_at if self._challenge else expires_at
            if now >= expires_at:
                await self._close_unverified(expires_at)
                return
            wake = reminder_at if not reminded and reminder_at < expires_at else expires_at
            round_now = self._challenge.round if self._challenge else 0
            try:
                await workflow.wait_condition(
                    lambda: bool(self._verified_at) or self._closed
                    or (self._challenge is not None and self._challenge.round != round_now),
                    timeout=max(wake - now, timedelta(seconds=1)),
                )
            except asyncio.TimeoutError:
                if not reminded and workflow.now() >= reminder_at and workflow.now() < expires_at:
                    reminded = True
                    await self._issue_challenge("reminder", expires_at)

    async def _issue_challenge(self, purpose: str, expires_at: datetime) -> None:
        next_round = (self._challenge.round if self._challenge else 0) + 1
        # The e-mail goes out inside the activity, so the subject may answer before it returns:
        # `verify` waits for this flag instead of judging the new code against the old hashes.
        self._issuing = True
        self._challenge = await workflow.execute_activity(
            "issue_verification",
            IssueChallenge(
                request_id=self._request_id, round=next_round, purpose=purpose, expires_at=expires_at
            ),
            result_type=Challenge,
            **_ACTIVITY,
        )
        self._attempts = 0
        self._issuing = False

    async def _close_unverified(self, expired_at: datetime) -> None:
        self._set_status(RequestStatus.closed_unverified, "identity not verified in time")
        await self._transition("closed_unverified", {"expired_at": expired_at.isoformat()})
        await self._letter("closed_unverified", params={"expired_at": expired_at.isoformat()})

    async def _process(self) -> None:
        """plan -> execute -> respond."""
        if self._status != RequestStatus.in_progress:
            self._set_status(RequestStatus.in_progress)
            await self._transition("in_progress", {"verified_by": self._verified_method})
        facts = self._require_facts()
        self._plan = await workflow.execute_activity(
            "plan_request",
            StartRequest(request_id=facts.request_id, policy_version=self._policy_version),
            result_type=Plan,
            **_ACTIVITY,
        )
        if self._closed:
            return
        if self._needs_decision():
            await self._letter(
                "staff_alert", key="objection-decision", to_staff=True,
                params={"kind": "needs_attention", "days_left": self._days_left(),
                        "detail": "objection to legitimate-interest processing: decide whether compelling grounds exist"},
            )
            await workflow.wait_condition(lambda: self._decision is not None or self._closed)
            if self._closed:
                return
        if self._decision is not None and self._decision.compelling_grounds:
            pass  # processing continues on compelling grounds; the response explains them
        elif self._plan.request_type in ("access", "portability"):
            package = await workflow.execute_activity(
                "build_package", self._plan, result_type=PackageInfo,
                start_to_close_timeout=timedelta(hours=2), heartbeat_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
            )
            self._package = package
        else:
            await asyncio.gather(*(self._run_task(task, 1) for task in self._plan.tasks))
            await self._settle_attention()
        if self._closed:
            return
        params: dict = {"report": self._report_now().model_dump(mode="json")}
        if self._decision is not None:
            params["decision"] = self._decision.model_dump(mode="json", exclude={"actor"})
        await self._letter("response", params=params)
        self._set_status(RequestStatus.completed)
        await self._transition("completed", {"tasks": len(self._plan.tasks)})

    async def _run_task(self, task: SystemTask, attempt: int) -> None:
        self._results[task.system] = TaskResult(
            system=task.system, action=task.action, status="pending", attempt=attempt,
            recipient=task.recipient)
        self._results[task.system] = await workflow.execute_child_workflow(
            SystemTaskWorkflow.run,
            TaskInput(request_id=self._request_id, policy_version=self._policy_version,
                      task=task, attempt=attempt),
            id=task_workflow_id(self._request_id, task.system, task.action, attempt),
            result_type=TaskResult,
        )

    async def _settle_attention(self) -> None:
        """A system that needs attention holds the response back until staff retry it (or
        close the request); the other systems have carried on meanwhile."""
        alerted: set[tuple[str, int]] = set()
        while not self._closed:
            stuck = [r for r in self._results.values() if r.status == "needs_attention"]
            if not stuck and not self._retrying:
                return
            for result in stuck:
                if (result.system, result.attempt) not in alerted:
                    alerted.add((result.system, result.attempt))
                    await self._letter(
                        "staff_alert", key=f"attention:{result.system}:{result.attempt}", to_staff=True,
                        params={"kind": "needs_attention", "days_left": self._days_left(),
                                "detail": f"{result.system} ({result.action}): {result.message or 'failed'}"},
                    )
            stuck_now = {(r.system, r.attempt) for r in stuck}
            await workflow.wait_condition(
                lambda: self._closed or {(r.system, r.attempt) for r in self._results.values()
                                         if r.status == "needs_attention"} != stuck_now
                and not self._retrying
            )

    def _days_left(self) -> int:
        due = self._current_checkpoints().overdue_at
        return max((due - workflow.now()).days, 0)

    def _report_now(self) -> ExecutionReport:
        return ExecutionReport(results=list(self._results.values()), package=self._package)

    # ---- deadline watch ---------------------------------------------------------------------

    async def _watch_deadlines(self) -> None:
        """Warn staff before the current due date and flag it when it passes."""
        while not self._closed:
            checkpoints = self._current_checkpoints()
            pending = [
                (days, at) for days, at in checkpoints.warnings
                if (self._extended, days) not in self._warnings_sent
            ]
            if pending:
                days, at = min(pending, key=lambda p: p[1])
            elif not self._overdue:
                days, at = 0, checkpoints.overdue_at
            else:
                await workflow.wait_condition(lambda: self._closed)
                return
            extended_now = self._extended
            delay = at - workflow.now()
            if delay > timedelta(0):
                try:
                    await workflow.wait_condition(
                        lambda: self._closed or self._extended != extended_now, timeout=delay
                    )
                    continue  # closed, or the due date moved: recompute
                except asyncio.TimeoutError:
                    pass
            await self._deadline_event(days, checkpoints)

    async def _deadline_event(self, days: int, checkpoints: Checkpoints) -> None:
        kind = f"due_in_{days}_days" if days else "overdue"
        if days:
            self._warnings_sent.add((self._extended, days))
        else:
            self._overdue = True
        key = f"{kind}:{checkpoints.due_date.isoformat()}"
        await workflow.execute_activity(
            "record_event",
            EventRecord(
                request_id=self._request_id, event_type=f"deadline.{kind}", event_key=key,
                data={"due_date": checkpoints.due_date.isoformat(), "status": self._status.value},
            ),
            **_ACTIVITY,
        )
        await self._letter(
            "staff_alert", key=key, to_staff=True,
            params={"kind": kind, "days_left": days,
                    "detail": f"status {self._status.value}, due {checkpoints.due_date.isoformat()}"},
        )

    def _current_checkpoints(self) -> Checkpoints:
        facts = self._require_facts()
        return facts.extended if self._extended else facts.due

    # ---- updates and query ------------------------------------------------------------------

    @workflow.update
    async def verify(self, attempt: VerifyAttempt) -> VerifyResult:
        facts = self._require_facts()
        await workflow.wait_condition(lambda: not self._issuing and self._challenge is not None)
        challenge = self._challenge
        assert challenge is not None
        expected, given, method = (
            (challenge.code_hash, attempt.code_hash, "email_code") if attempt.code_hash
            else (challenge.token_hash, attempt.token_hash, "email_link")
        )
        if hmac.compare_digest(expected, given or ""):
            self._verified_at = workflow.now()
            self._verified_method = method
            await self._record("verification.succeeded", f"verified:{challenge.round}", {"method": method})
            return VerifyResult(verified=True, attempts_left=0, locked=False)
        self._attempts += 1
        left = max(facts.verification_max_attempts - self._attempts, 0)
        await self._record(
            "verification.failed", f"failed:{challenge.round}:{self._attempts}",
            {"method": method, "attempts_left": left},
        )
        if left == 0:
            await self._record("verification.locked", f"locked:{challenge.round}", {})
        return VerifyResult(verified=False, attempts_left=left, locked=left == 0)

    @verify.validator
    def _validate_verify(self, attempt: VerifyAttempt) -> None:
        if self._status != RequestStatus.awaiting_verification or self._verified_at:
            raise ValueError(f"request is not awaiting verification (status {self._status.value})")
        if self._challenge is None and not self._issuing:
            raise ValueError("no verification code has been sent yet; try again in a moment")
        if self._attempts >= self._require_facts().verification_max_attempts and not self._issuing:
            raise ValueError("verification is locked after too many wrong codes; ask for a new code")
        if self._challenge is not None and workflow.now() >= self._challenge.expires_at:
            raise ValueError("the verification code has expired")

    @workflow.update
    async def resend_verification(self, request: ResendInput) -> VerificationState:
        expires_at = self._challenge.expires_at if self._challenge else workflow.now()
        await self._issue_challenge("verification", expires_at)
        await self._record("verification.resent", f"resent:{self._challenge.round}", {}, request.actor)
        return self._verification_state()

    @resend_verification.validator
    def _validate_resend(self, request: ResendInput) -> None:
        if self._status != RequestStatus.awaiting_verification or self._challenge is None:
            raise ValueError(f"request is not awaiting verification (status {self._status.value})")

    @workflow.update
    async def extend(self, request: ExtendInput) -> RequestState:
        if self._extended:  # a second update may have passed validation while the first ran
            raise ApplicationError("the deadline has already been extended once", non_retryable=True)
        facts = self._require_facts()
        self._extended = True
        self._extension_reason = request.reason
        await workflow.execute_activity(
            "apply_extension",
            ExtensionRecord(request_id=self._request_id, reason=request.reason, actor=request.actor),
            **_ACTIVITY,
        )
        self._publish_search_attributes()
        await self._letter(
            "extension",
            params={"reason": request.reason, "new_due_date": facts.extended_due_date.isoformat()},
        )
        return self.state()

    @extend.validator
    def _validate_extend(self, request: ExtendInput) -> None:
        self._require_open()
        if self._extended:
            raise ValueError("the deadline has already been extended once; it cannot be extended again")
        due = self._require_facts().due
        if workflow.now() >= due.overdue_at:
            raise ValueError(
                f"the due date {due.due_date.isoformat()} has passed; an extension must be "
                f"notified before it"
            )

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
        self._set_status(RequestStatus.cancelled, request.reason)
        await self._transition("cancelled", {"reason": request.reason}, request.actor)
        return self.state()

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        self._require_open()

    @workflow.update
    async def retry_task(self, request: RetryTaskInput) -> TaskResult:
        assert self._plan is not None
        task = next(t for t in self._plan.tasks if t.system == request.system)
        self._retrying += 1
        try:
            await self._record("task.retried", f"retry:{request.system}:{self._results[request.system].attempt + 1}",
                               {"system": request.system}, request.actor)
            await self._run_task(task, self._results[request.system].attempt + 1)
        finally:
            self._retrying -= 1
        return self._results[request.system]

    @retry_task.validator
    def _validate_retry(self, request: RetryTaskInput) -> None:
        self._require_attention(request.system)

    @workflow.update
    async def decide_objection(self, decision: ObjectionDecision) -> RequestState:
        self._decision = decision
        await self._record("objection.decided", "objection-decision",
                           {"compelling_grounds": decision.compelling_grounds,
                            "explanation": decision.explanation}, decision.actor)
        return self.state()

    @decide_objection.validator
    def _validate_decision(self, decision: ObjectionDecision) -> None:
        self._require_open()
        if not self._needs_decision() or self._decision is not None:
            raise ValueError("this request is not an objection awaiting a decision")

    def _needs_decision(self) -> bool:
        plan = self._plan
        return (plan is not None and plan.request_type == "objection"
                and any(t.scope == "legitimate_interest" for t in plan.tasks))

    @workflow.update
    async def resolve_task(self, request: ResolveTaskInput) -> TaskResult:
        result = self._results[request.system].model_copy(update={
            "status": "done", "message": f"resolved by staff: {request.note}"})
        self._results[request.system] = result
        await self._record("task.resolved", f"resolved:{request.system}:{result.attempt}",
                           {"system": request.system, "note": request.note}, request.actor)
        await workflow.execute_activity(
            "record_task_result", TaskRecord(request_id=self._request_id, result=result), **_ACTIVITY)
        return result

    @resolve_task.validator
    def _validate_resolve(self, request: ResolveTaskInput) -> None:
        self._require_attention(request.system)

    def _require_attention(self, system: str) -> None:
        self._require_open()
        result = self._results.get(system)
        if result is None:
            raise ValueError(f"no task for system {system!r} in this request's plan")
        if result.status != "needs_attention":
            raise ValueError(f"the {system} task is {result.status}; only a task needing attention can be retried or resolved")

    @workflow.query
    def state(self) -> RequestState:
        facts = self._facts
        return RequestState(
            request_id=self._request_id,
            status=self._status,
            request_type=facts.request_type if facts else None,
            regime=facts.regime if facts else None,
            received_at=facts.received_at if facts else None,
            due_date=facts.due_date if facts else None,
            extended_due_date=facts.extended_due_date if facts else None,
            current_due_date=self._current_checkpoints().due_date if facts else None,
            acknowledge_by=facts.acknowledge_by if facts else None,
            extended=self._extended,
            extension_reason=self._extension_reason,
            overdue=self._overdue,
            warnings_sent=sorted({days for _, days in self._warnings_sent}),
            verification=self._verification_state() if facts else None,
            plan=self._plan,
            results=list(self._results.values()),
            package=self._package,
            awaiting_decision=self._needs_decision() and self._decision is None and not self._closed,
            decision=self._decision,
            closed_reason=self._closed_reason,
        )

    # ---- helpers ----------------------------------------------------------------------------

    def _verification_state(self) -> VerificationState:
        facts = self._require_facts()
        return VerificationState(
            required=not facts.attested,
            verified_at=self._verified_at,
            method=self._verified_method or ("attested" if facts.attested else None),
            attempts_left=max(facts.verification_max_attempts - self._attempts, 0),
            locked=self._attempts >= facts.verification_max_attempts,
            expires_at=self._challenge.expires_at if self._challenge else None,
            round=self._challenge.round if self._challenge else 0,
        )

    def _require_facts(self) -> RequestFacts:
        if self._facts is None:
            raise ValueError("the request is still being registered; try again in a moment")
        return self._facts

    def _require_open(self) -> None:
        self._require_facts()
        if self._closed:
            raise ValueError(f"request is already closed (status {self._status.value})")

    def _set_status(self, status: RequestStatus, reason: str | None = None) -> None:
        self._status = status
        if status.is_closed:
            self._closed_reason = reason
        self._publish_search_attributes()

    def _publish_search_attributes(self) -> None:
        facts = self._facts
        updates = [sa.STATUS.value_set(self._status.value)]
        if facts:
            due = self._current_checkpoints().due_date
            updates += [
                sa.REQUEST_TYPE.value_set(facts.request_type.value),
                sa.REGIME.value_set(facts.regime),
                sa.DUE_DATE.value_set(datetime(due.year, due.month, due.day, tzinfo=UTC)),
            ]
        workflow.upsert_search_attributes(updates)

    async def _transition(self, event: str, data: dict, actor: str = "workflow") -> None:
        await workflow.execute_activity(
            "transition",
            Transition(request_id=self._request_id, status=self._status, event_key=f"status:{event}",
                       actor=actor, data=data),
            **_ACTIVITY,
        )

    async def _record(self, event_type: str, key: str, data: dict, actor: str = "workflow") -> None:
        await workflow.execute_activity(
            "record_event",
            EventRecord(request_id=self._request_id, event_type=event_type, event_key=key,
                        actor=actor, data=data),
            **_ACTIVITY,
        )

    async def _letter(
        self, purpose: str, *, key: str = "1", params: dict | None = None, to_staff: bool = False
    ) -> None:
        await workflow.execute_activity(
            "send_letter",
            LetterJob(request_id=self._request_id, purpose=purpose, key=key,
                      params=params or {}, to_staff=to_staff),
            **_ACTIVITY,
        )
