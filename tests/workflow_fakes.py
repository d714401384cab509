"""In-memory fakes of every activity the request worker registers, under the real activity names.

The pattern of temporalio/samples-python: a fake is an `@activity.defn(name="<real name>")` given to
a `Worker` on the time-skipping test server instead of the real one, so the workflows
(workflows/dsr.py and its helpers) run unchanged while nothing touches Postgres, SMTP or a
processor. Each fake records its calls in memory, for tests to assert what a user would see
(which letters went out, which systems were asked to erase), and answers with the typed result
the real activity returns, computed the way the real one computes it where that is pure (the
statutory deadlines, the deadline checkpoints, the action of each request type).

Failures are injected per activity (`fail`) or per system (`FakeSystem.broken`); raised errors pass
through the real `ClassifyingInterceptor`, so a ValueError fails at once and an OSError is
retried, as in production.

The world they record into, what tests set up and what they read back (`FakeWorld`, with
`RequestSpec`, `FakeSystem` and `SHIPPED`) is tests/workflow_fake_world.py; those names are
importable from here as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.fanout import ACTIONS
from activities.lifecycle import deadline_checkpoints
from dsrflow.domain.deadlines import compute_deadline, receipt_date_for
from schemas.appeal_claims import AppealClaim, AppealTaken
from schemas.audit import AnchorInput, AnchorReport
from schemas.copies import PurgeInput, PurgeReport
from schemas.holds import SweepInput, SweepReport
from schemas.request_start import StartSweepInput, StartSweepReport
from schemas.restrictions import LiftAnnounced, LiftCarriedOut, LiftSchedule, RestrictionInForce
from schemas.retention import RetentionReport, RetentionSweepInput
from schemas.steps import TroubleRecord
from schemas.verification import Challenge, IssueChallenge
from schemas.verification_clock import ClockStarted, VerifiedAt
from schemas.workflow import (
    EventRecord,
    ExtensionRecord,
    LetterJob,
    LetterReceipt,
    PackageInfo,
    Plan,
    RequestFacts,
    StartRequest,
    SystemTask,
    TaskInput,
    TaskRecord,
    TaskResult,
    Transition,
)
from tests.workflow_fake_world import SHIPPED, FakeSystem, FakeWorld, RequestSpec, _hash

__all__ = ["SHIPPED", "FakeActivities", "FakeSystem", "RequestSpec"]


class FakeActivities(FakeWorld):
    """The fakes, bound to one in-memory world: the requests they know and what they were asked."""

    # ---- the fakes ----------------------------------------------------------------------------

    @activity.defn(name="prepare_request")
    async def prepare_request(self, start: StartRequest) -> RequestFacts:
        self._maybe_fail("prepare_request", start)
        spec = self.specs[start.request_id]  # a KeyError, like a request not found: deterministic
        assert spec.received_at is not None
        policy = SHIPPED.policy
        tz = spec.timezone
        deadline = compute_deadline(spec.regime, receipt_date_for(spec.received_at, tz, spec.regime),
                                    establishment=policy.defaults.country if spec.regime == "gdpr" else None,
                                    appeal=spec.complaint, target_days=policy.complaint_days(spec.regime))
        warnings = policy.deadline_warnings_days
        return RequestFacts(
            request_id=start.request_id, request_type=spec.request_type, regime=spec.regime, country="BE",
            received_at=spec.received_at, attested=spec.attested, due_date=deadline.due_date,
            extended_due_date=deadline.extended_due_date, acknowledge_by=deadline.acknowledge_by,
            due=deadline_checkpoints(deadline.due_date, tz, warnings),
            extended=deadline_checkpoints(deadline.extended_due_date, tz, warnings),
            verification_max_attempts=policy.verification.max_attempts,
            reminder_after_days=policy.verification.reminder_after_days,
            expires_after_days=policy.verification.expires_after_days,
            approval_required=spec.approval_required,
            progress_days=policy.complaint_progress_days(spec.regime) if spec.complaint else None,
        )

    @activity.defn(name="start_clock_at_verification")
    async def start_clock_at_verification(self, verified: VerifiedAt) -> ClockStarted | None:
        """A UK request's dates counted from the day of its verification (`receipt_date_for`), audited
        once; None under any other law."""
        self._maybe_fail("start_clock_at_verification", verified)
        spec = self.specs[verified.request_id]
        if spec.regime != "uk_gdpr":
            return None
        assert spec.received_at is not None
        policy = SHIPPED.policy
        tz, warnings = spec.timezone, policy.deadline_warnings_days
        deadline = compute_deadline(spec.regime, receipt_date_for(spec.received_at, tz, spec.regime),
                                    verified=receipt_date_for(verified.verified_at, tz, spec.regime))
        if self._first("event", verified.request_id, "clock-started"):
            self.events.append(EventRecord(request_id=verified.request_id, event_type="deadline.clock_started",
                                           event_key="clock-started", data={"to": deadline.due_date.isoformat()}))
        return ClockStarted(clock_start=deadline.clock_start, due_date=deadline.due_date,
                            extended_due_date=deadline.extended_due_date,
                            due=deadline_checkpoints(deadline.due_date, tz, warnings),
                            extended=deadline_checkpoints(deadline.extended_due_date, tz, warnings))

    @activity.defn(name="transition")
    async def transition(self, change: Transition) -> None:
        self._maybe_fail("transition", change)
        if self._first("transition", change.request_id, change.event_key):
            self.transitions.append(change)

    @activity.defn(name="record_event")
    async def record_event(self, event: EventRecord) -> None:
        self._maybe_fail("record_event", event)
        if self._first("event", event.request_id, event.event_key):
            self.events.append(event)

    @activity.defn(name="apply_extension")
    async def apply_extension(self, record: ExtensionRecord) -> None:
        self._maybe_fail("apply_extension", record)
        self.extensions.append(record)

    @activity.defn(name="record_step_trouble")
    async def record_step_trouble(self, record: TroubleRecord) -> None:
        self.troubles.append(record)

    @activity.defn(name="send_letter")
    async def send_letter(self, job: LetterJob) -> LetterReceipt:
        self._maybe_fail("send_letter", job)
        letter_key = f"{job.request_id}:{job.purpose}:{job.key}"
        already = letter_key in self.sent_at
        await self._sent(job)
        return LetterReceipt(letter_key=letter_key, message_id=f"<{_hash(letter_key)[:20]}@fake>",
                             already_sent=already)

    @activity.defn(name="settle_skipped_letter")
    async def settle_skipped_letter(self, job: LetterJob) -> bool:
        """Whether the skipped letter went after all; if not, it never goes."""
        self._maybe_fail("settle_skipped_letter", job)
        went = not self._first("letter", job.request_id, job.purpose, job.key)  # either way, never sent now
        self.skips_settled.append((job.purpose, went))
        return went

    async def letter_went(self, job: LetterJob) -> None:
        """What an attempt that its step gave up on does when the relay took the letter after all
        (a test calls it then)."""
        await self._sent(job)

    async def _sent(self, job: LetterJob) -> None:
        if self._first("letter", job.request_id, job.purpose, job.key):
            self.letters.append(job)
            self.sent_at[f"{job.request_id}:{job.purpose}:{job.key}"] = await self._now()

    @activity.defn(name="issue_verification")
    async def issue_verification(self, issue: IssueChallenge) -> Challenge:
        """A new code and link by e-mail (recorded as the subject's letter); only hashes back."""
        self._maybe_fail("issue_verification", issue)
        if issue in self.withdrawn:
            raise ApplicationError("this letter was withdrawn before it went", non_retryable=True)
        return await self.deliver_late(issue)

    async def deliver_late(self, issue: IssueChallenge) -> Challenge:
        """E-mail the round's code: also what an attempt the workflow stopped waiting for does when
        its relay answers at last (a test calls it then)."""
        assert issue not in self.withdrawn, "a withdrawn round's e-mail never goes"
        self.challenges.append(issue)
        await self._sent(LetterJob(request_id=issue.request_id, purpose=issue.purpose, key=str(issue.round),
                             params={"expires_at": issue.expires_at.isoformat()}))
        return self._challenge(issue)

    def _challenge(self, issue: IssueChallenge) -> Challenge:
        code = self.code(issue.request_id, issue.round)
        return Challenge(round=issue.round, code_hash=self.typed(issue.request_id, code).code_hash or "",
                         token_hash=_hash("token-hash", issue.request_id, str(issue.round)),
                         expires_at=issue.expires_at)

    @activity.defn(name="settle_verification_round")
    async def settle_verification_round(self, issue: IssueChallenge) -> Challenge | None:
        """The round's challenge if its e-mail went; otherwise it is withdrawn and never goes."""
        self._maybe_fail("settle_verification_round", issue)
        if ("letter", issue.request_id, issue.purpose, str(issue.round)) in self._effects:
            return self._challenge(issue)
        self.withdrawn.append(issue)
        return None

    @activity.defn(name="confirm_at_once")
    async def confirm_at_once(self, start: StartRequest) -> dict[str, bool]:
        # An LGPD Art. 19, I confirmation (activities/letter_confirmation.py): found in our own systems.
        self._maybe_fail("confirm_at_once", start)
        return {"found": True, "unread": False, "asked": False}

    @activity.defn(name="plan_request")
    async def plan_request(self, start: StartRequest) -> Plan:
        self._maybe_fail("plan_request", start)
        spec = self.specs[start.request_id]
        action = ACTIONS[spec.request_type.value]
        return Plan(request_id=start.request_id, policy_version=start.policy_version,
                    request_type=spec.request_type.value, tasks=[
                        SystemTask(system=s.name, action=action, connector=s.connector, label=s.name.title(),
                                   recipient=s.recipient, completion_timeout_days=s.completion_timeout_days,
                                   scope=spec.objection_scope)
                        for s in spec.systems])

    @activity.defn(name="run_system_action")
    async def run_system_action(self, task: TaskInput) -> TaskResult:
        self.system_calls.append(task)
        self._maybe_fail("run_system_action", task)  # a system slow to answer (`hold`), not one broken
        self.asked_at.setdefault((task.request_id, task.task.system, task.task.action, task.attempt), await self._now())
        system = self.system(task.request_id, task.task.system)
        if system.broken:
            # What activities/fanout.py makes of a connector's PermanentConnectorError.
            raise ApplicationError(system.broken, type="PermanentConnectorError", non_retryable=True)
        if system.answers_on_poll is not None:
            key = (task.request_id, system.name, task.task.action, task.attempt)  # a lift's job is its own
            self._polls_left[key] = system.answers_on_poll
            return self._recorded(task, self._result(task, "pending", external_id=f"job-{system.name}-{task.attempt}"))
        return self._recorded(task, self._result(task, "done"))

    @activity.defn(name="poll_system_action")
    async def poll_system_action(self, task: TaskInput) -> TaskResult:
        self.polls.append(task)
        self._maybe_fail("poll_system_action", task)  # the processor's status endpoint down
        key = (task.request_id, task.task.system, task.task.action, task.attempt)
        self._polls_left[key] -= 1
        status = "done" if self._polls_left[key] <= 0 else "pending"
        result = self._result(task, status, external_id=task.external_id)
        return self._recorded(task, result) if status != "pending" else result

    def _recorded(self, task: TaskInput, result: TaskResult) -> TaskResult:
        """What activities/fanout.py does when the workflow asks the activity to record its result."""
        if task.record:
            self.task_records.append(TaskRecord(request_id=task.request_id, result=result))
        return result

    def _result(self, task: TaskInput, status: str, external_id: str | None = None) -> TaskResult:
        found = self.system(task.request_id, task.task.system).found if status == "done" else 0
        changed = found if task.task.action not in ("access",) else 0
        return TaskResult(system=task.task.system, action=task.task.action, status=status, found=found,
                          changed=changed, external_id=external_id, attempt=task.attempt,
                          recipient=task.task.recipient, datasets={"main": {"found": found}} if found else {})

    @activity.defn(name="record_task_result")
    async def record_task_result(self, record: TaskRecord) -> None:
        self._maybe_fail("record_task_result", record)
        self.task_records.append(record)

    @activity.defn(name="build_package")
    async def build_package(self, plan: Plan) -> PackageInfo:
        self._maybe_fail("build_package", plan)
        self.packages.append(plan)
        systems = {s.name: s.found for s in self.specs[plan.request_id].systems}
        return PackageInfo(package_id=f"pkg-{plan.request_id[:8]}", kind=plan.request_type,
                           records=sum(systems.values()), size_bytes=512 * sum(systems.values()), systems=systems)

    @activity.defn(name="record_restriction")
    async def record_restriction(self, restriction: RestrictionInForce) -> None:
        self.restrictions.append(restriction)

    @activity.defn(name="announce_restriction_lift")
    async def announce_lift(self, lift: LiftAnnounced) -> LiftSchedule:
        self.restrictions.append(lift)
        return LiftSchedule(notice_days=self.specs[lift.request_id].lift_notice_days)

    @activity.defn(name="record_restriction_lifted")
    async def record_lifted(self, lift: LiftCarriedOut) -> None:
        self.restrictions.append(lift)

    @activity.defn(name="sweep_deferred_erasures")
    async def sweep(self, sweep: SweepInput) -> SweepReport:
        self.sweeps.append(sweep)
        return SweepReport()

    @activity.defn(name="retention_sweep")
    async def retention_sweep(self, sweep: RetentionSweepInput) -> RetentionReport:
        self.sweeps.append(sweep)
        assert sweep.as_of is not None
        return RetentionReport(as_of=sweep.as_of, policy_version=SHIPPED.version)

    @activity.defn(name="purge_expired_packages")
    async def purge_expired_packages(self, purge: PurgeInput) -> PurgeReport:
        self.sweeps.append(purge)
        return PurgeReport()

    @activity.defn(name="anchor_audit_chains")
    async def anchor_audit_chains(self, anchor: AnchorInput) -> AnchorReport:
        self.anchors.append(anchor)
        return AnchorReport()

    @activity.defn(name="claim_appeal_decision")
    async def claim_appeal_decision(self, claim: AppealClaim) -> AppealTaken | None:
        """The appeal is the one its refusal's decision goes to (no other is in the fake world):
        its status change recorded with the claim, as the real activity records it."""
        if claim.in_progress is not None:
            await self.transition(claim.in_progress)
        return None

    @activity.defn(name="start_unstarted_requests")
    async def start_unstarted_requests(self, sweep: StartSweepInput) -> StartSweepReport:
        return StartSweepReport()

    def all(self) -> list[Callable[..., Any]]:
        return [self.prepare_request, self.start_clock_at_verification, self.transition, self.record_event, self.apply_extension,
                self.record_step_trouble, self.send_letter, self.settle_skipped_letter, self.issue_verification,
                self.settle_verification_round, self.confirm_at_once, self.plan_request,
                self.run_system_action, self.poll_system_action, self.record_task_result, self.build_package,
                self.record_restriction, self.announce_lift, self.record_lifted, self.sweep,
                self.retention_sweep, self.purge_expired_packages, self.anchor_audit_chains,
                self.start_unstarted_requests, self.claim_appeal_decision]
