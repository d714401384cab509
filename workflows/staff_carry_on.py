"""What staff do when something of a request failed, as updates of its workflow: retry or resolve
a system's task that needs attention, retry or skip a failed step of the request's own
(workflows/dsr_steps.py, workflows/step_trouble.py).

A mixin of DataSubjectRequestWorkflow (Temporal registers the updates of its base classes), kept
apart so that the workflow's main line stays readable. Every handler re-checks, before its first
await, what its validator checked: two staff members pressing the same button at once get one
action and one refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.staff_answers import ResolveTaskInput, RetryTaskInput
    from schemas.steps import RetryStepInput, SkipStepInput
    from schemas.workflow import Plan, RequestFacts, RequestState, TaskResult
    from workflows.deadline_watch import DeadlineWatch
    from workflows.dsr_steps import Decision
    from workflows.owed_steps import OwedSteps
    from workflows.step_trouble import StepTroubles
    from workflows.task_fanout import SystemTasks


class CarryOn:
    # Provided by DataSubjectRequestWorkflow.
    request_id: str
    attention_after: timedelta
    _facts: RequestFacts | None
    _plan: Plan | None
    _tasks: SystemTasks
    _troubles: StepTroubles
    _owed: OwedSteps
    _watch: DeadlineWatch
    if TYPE_CHECKING:
        @property
        def closed(self) -> bool: ...
    _days_left: Callable[[], int]
    _require_open: Callable[..., None]
    state: Callable[[], RequestState]
    keeping_restriction: bool  # workflows/restriction_lifecycle.py

    @workflow.update
    async def retry_task(self, request: RetryTaskInput) -> TaskResult:
        assert self._plan is not None
        # Again, atomically: a concurrent retry may have passed too.
        self._require_attention(request.system, request.attempt, request.action)
        return await self._tasks.retry(self._plan, request.system, request.actor)

    @retry_task.validator
    def _validate_retry(self, request: RetryTaskInput) -> None:
        self._require_attention(request.system, request.attempt, request.action)

    @workflow.update
    async def resolve_task(self, request: ResolveTaskInput) -> TaskResult:
        # Again, atomically; also a task waiting on an unreachable SaaS (workflows/system_task.py).
        self._require_attention(request.system, request.attempt, request.action, resolving=True)
        return await self._tasks.resolve(self.request_id, request.system, request.note, request.actor)

    @resolve_task.validator
    def _validate_resolve(self, request: ResolveTaskInput) -> None:
        self._require_attention(request.system, request.attempt, request.action, resolving=True)

    @workflow.signal
    def task_unreached(self, note: TaskResult) -> None:
        """A task waits on its unreachable SaaS, tried again by itself: its note, for the state and
        the console, and staff may resolve it meanwhile; or, the service answering again, what it
        waits on now (a job, a quota day), which ends that."""
        self._tasks.unreached(note)

    # ---- a failing step (workflows/dsr_steps.py, workflows/step_trouble.py) ----------------

    async def step_failed(self, step: str, message: str, *, transient: bool, skippable: bool,
                          about: str | None = None) -> Decision:
        return await self._troubles.failed(
            self.request_id, step, message, transient=transient, skippable=skippable, about=about,
            attention_after=self.attention_after, closed=lambda: self.closed and not self.keeping_restriction,
            # A restriction's lift runs after the answer: no days left (or late) to count.
            days_left=self._days_left() if self._facts and not self.keeping_restriction else None)

    async def step_recovered(self) -> None:
        await self._troubles.recovered(self.request_id)

    @workflow.update
    async def retry_step(self, request: RetryStepInput) -> RequestState:
        self._answered_troubles().decide("retry", request.actor)
        return self.state()

    @retry_step.validator
    def _validate_retry_step(self, request: RetryStepInput) -> None:
        self._answered_troubles().require("retry", request.trouble)

    @workflow.update
    async def skip_step(self, request: SkipStepInput) -> RequestState:
        self._answered_troubles().decide("skip", request.actor, request.note)
        return self.state()

    @skip_step.validator
    def _validate_skip_step(self, request: SkipStepInput) -> None:
        self._answered_troubles().require("skip", request.trouble)

    def _shown_troubles(self) -> StepTroubles:
        """Whose failed step the request's state shows, and staff answer: a decision's owed step
        first, then one of the request's own, then one of the deadline watch's (each shows once
        those before it are answered)."""
        for troubles in (self._owed.troubles, self._troubles, self._watch.troubles):
            if troubles.current is not None:
                return troubles
        return self._troubles

    def _answered_troubles(self) -> StepTroubles:
        """The shown failed step's: a decision's owed step waits even on a closed request; the
        others while the request carries on."""
        troubles = self._shown_troubles()
        if troubles is not self._owed.troubles:
            self._require_carrying_on(facts=False)
        return troubles

    def _require_attention(self, system: str, attempt: int | None, action: str | None, *,
                           resolving: bool = False) -> None:
        """The task needs attention, at the attempt and of the action the caller read when it
        says. No `workflow.patched`: a validator writes no history, and an input a history recorded
        before `attempt` or `action` existed has none, so its handler's check passes on replay as it did."""
        self._require_carrying_on()
        self._tasks.require_attention(system, attempt, action, resolving=resolving)

    def _require_carrying_on(self, *, facts: bool = True) -> None:
        """Open, or a completed restriction whose workflow still runs steps (its lift's)."""
        if not self.keeping_restriction:
            self._require_open(facts=facts)
