"""The fan-out inside a request's workflow: a task per system in the plan, and the staff's retries
and resolutions of the tasks that need attention (their alerts: workflows/task_alerts.py).

A `sql` system answers within its activity (milliseconds), so its task is a local activity of the
request's workflow; a system that waits on an outside party for hours or days (OpenDSR, a
processor asked by e-mail, a SaaS job) gets a child workflow (SystemTaskWorkflow) that waits for
its callback or polls it. Both record each result in the activity that produced it.

Deterministic like the workflow that owns it: the child workflows, activities and letters are the
workflow's own commands, in the order the workflow has always issued them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError, FailureError

with workflow.unsafe.imports_passed_through():
    from schemas.vocabulary import ConnectorKind
    from schemas.workflow import Plan, SystemTask, TaskInput, TaskRecord, TaskResult, task_workflow_id, waits_unreached
    from workflows.dsr_steps import (
        CALLER_WAITS,
        STEP_FAILURES,
        describe_failure,
        event_record,
        run_step,
    )
    from workflows.owed_steps import OwedSteps, answered_within
    from workflows.owed_steps import record as owed_record
    from workflows.system_task import JOBS_CALLED_OFF, SystemTaskWorkflow, act, record
    from workflows.task_alerts import TaskAlerts

    # Named here too, where the tests of staff alerts' words have always imported it from.
    from workflows.task_alerts import stuck_facts as stuck_facts
    from workflows.task_answers import require_answerable

# workflow.patched ids: requests started before the first ran every system as a child workflow;
# before the second, a `sql` system's task was an activity task rather than a local activity.
SQL_TASKS_INLINE = "sql-tasks-inline"
SQL_TASKS_LOCAL = "sql-tasks-local"
# Before this one, staff's retry of a task with a child workflow answered only once the child
# settled: for a processor that takes days, the console's button (and the REST call) hung.
RETRY_ANSWERS_ONCE_STARTED = "retry-answers-once-started"
# Before this one, a staff retry or resolution whose record failed (a database down past the
# policy's threshold, held that long) failed the update with its answer already taken: a retry's
# task stayed `pending` with nothing running, so the request answered the subject without it; a
# resolution stood as `done` with no evidence of who resolved it. Now the answer is taken back,
# and the caller told why, after CALLER_WAITS.
TASK_ANSWERS_BOUNDED = "task-answers-bounded"
# Before this one, staff's retry of a `sql` system's task ran the system's action inside the
# update: a system that did not answer held the caller through its retries (about 8 minutes). It
# now runs on its own like a processor's, and the caller is answered with its result, or after
# ANSWER_WITHIN with the attempt pending.
SQL_RETRY_BOUNDED = "sql-retry-bounded"
# Before this one, a fan-out that ended while staff's retry or resolution of a task was still under
# way (none stuck, one retrying) waited for the stuck tasks to change, which they never did: the
# request stayed in progress with every task done.
SETTLE_AFTER_RETRIES = "settle-after-retries"
# Before this one, a staff retry or resolution whose record the database had not taken within
# CALLER_WAITS was taken back, although a record the database took late stayed in the audit trail
# for an answer that never counted. Now the answer stands at once and its records are owed steps
# (workflows/owed_steps.py), retried until done: a retry runs, and the response goes out, only
# once they are on record.
TASK_ANSWERS_OWED = "task-answers-owed"
# Before this one, a staff retry whose record was still owed when the request was closed (withdrawn,
# denied) ran its new attempt once the record was done: a closed erasure went on erasing.
NO_RETRY_AFTER_CLOSE = "no-retry-after-close"
# Before this one, a request closed while a staff retry of a processor's task ran on its own ended
# without it: the first attempts' tasks were followed to their end, the retry's was cut off (a
# server terminates a child whose parent completes), and its task stayed `pending` for ever on a
# closed request, though the processor had been asked and might act. Now the request ends once its
# retries have (workflows/dsr.py `run`).
RETRIES_BEFORE_END = "retries-before-end"
# Before this one, staff were e-mailed about a system that needs attention only once every task of
# the fan-out had ended: a `sql` system failing in milliseconds waited for a processor's task,
# which may take 14 days or more, though the queue showed it at once (freeze audit).
ALERT_WHILE_OTHERS_RUN = "alert-while-others-run"
# Before this one, a task whose child workflow failed (its own record failing past its retries, or
# the child terminated) needed attention in the workflow's state only: its row stayed `pending`,
# so the queue's "needs attention", the metrics and their alert never showed it (freeze audit).
CHILD_FAILURE_RECORDED = "child-failure-recorded"
# Before this one, staff's retry or resolution of a restriction lift's task was recorded under the
# key of the restriction's own task (`resolved:<system>:<attempt>`): when staff had answered that
# one too, the lift's event was dropped as a repeat, and no event named who resolved the lift, or
# when. A fan-out given an `event_prefix` (the lift's) now keys its staff events with it.
STAFF_EVENT_PREFIX = "staff-event-prefix"
# (TASK_REMINDERS, the lift's morning reminders: workflows/task_alerts.py.)
# Staff's resolution of a task waiting on an unreachable SaaS (workflows/system_task.py
# `_unreached`, which tells the request's workflow) is sent to that task too, which then stops.
RESOLUTION_TOLD_TO_TASK = "resolution-told-to-task"
# Before this one, a restriction closed part-way while a processor's task was still asked (e-mailed,
# not answered) followed that task to its end (its completion timeout, 14 days) before the
# restriction went on record in force: until then no lift was possible. Now the fan-out returns at
# the close, its tasks still running (`left_running`, which the request waits for before it ends).
LEFT_RUNNING_ON_CLOSE = "left-running-on-close"
# Before this one, a processor asked by e-mail that had not answered when its request closed
# unanswered was polled to its completion timeout (14 days), though its link takes no answer any
# more, and the request's workflow followed it that long. Now its task is told of the close, and ends.
TASKS_TOLD_OF_CLOSE = "tasks-told-of-close"


class SystemTasks:
    def __init__(self, alert_key: str = "attention", owed: OwedSteps | None = None,
                 closed: Callable[[], bool] = lambda: False, event_prefix: str = "", remind_daily: bool = False) -> None:
        self.results: dict[str, TaskResult] = {}
        self._alerts = TaskAlerts(self.results, alert_key, remind_daily)
        # The keys of staff's task events: a second fan-out of the same request needs its own.
        self._event_prefix = event_prefix
        # The request no longer to be answered (a restriction's lift runs after its close: never).
        self._closed = closed
        self._retrying = 0
        self._retries: set[asyncio.Task[None]] = set()  # retried child tasks running on their own
        self._unrecorded_retries: set[str] = set()  # systems whose retry waits for its record
        self._owed = owed  # where staff answers' records go (TASK_ANSWERS_OWED)
        # The mark of the last staff answer whose records were owed: marks grow, so once it is
        # done, every answer before it is on record too.
        self._last_answer = 0
        # Tasks staff resolved while they waited on an unreachable SaaS (system, attempt): their
        # resolution stands over whatever the task ended with meanwhile.
        self._resolved_waiting: set[tuple[str, int]] = set()
        # The plan's first attempts, still running when the request closed (LEFT_RUNNING_ON_CLOSE).
        self.left_running: asyncio.Task[None] | None = None
        self._told_closed: set[tuple[str, int]] = set()  # tasks told of the close (TASKS_TOLD_OF_CLOSE)

    @property
    def _busy(self) -> bool:
        """A retry runs, or a staff answer is not yet on record: the response waits."""
        owed = self._owed
        return bool(self._retrying) or (owed is not None and not owed.done(self._last_answer))

    @property
    def retries_running(self) -> bool:
        """A retried task runs on its own (a processor's, which may take days)."""
        return bool(self._retries)

    def _owes(self) -> OwedSteps | None:
        """The owed steps staff answers' records go to, for requests started since TASK_ANSWERS_OWED."""
        return self._owed if self._owed is not None and workflow.patched(TASK_ANSWERS_OWED) else None

    async def _answered(self, mark: int, settled: Callable[[], bool]) -> None:
        """Hold the response until the answer's records are done; answer the caller once `settled`,
        the records are in trouble, or ANSWER_WITHIN has passed (the state's `owed` shows them)."""
        assert self._owed is not None
        owed = self._owed
        self._last_answer = mark
        await answered_within(lambda: settled() or owed.troubles.current is not None)

    async def run_all(self, plan: Plan) -> None:
        await asyncio.gather(*(self._run(plan, task, 1) for task in plan.tasks))

    async def run_and_settle(self, plan: Plan, closed: Callable[[], bool], days_left: Callable[[], int | None],
                             *, leave_on_close: bool = False) -> None:
        """Every task of the plan, then `settle`; staff are told of a task that needs attention
        as soon as it does, while the others still run. With `leave_on_close` (a restriction,
        whose close records what was reached), a close returns at once, the tasks left running."""
        if not workflow.patched(ALERT_WHILE_OTHERS_RUN):
            await self.run_all(plan)
            await self.settle(plan.request_id, closed, days_left)
            return
        running = asyncio.create_task(self.run_all(plan))
        while not running.done() and not closed():
            await self._alerts.alert(plan.request_id, self._stuck(), days_left)
            await workflow.wait_condition(lambda: running.done() or closed() or self._alerts.unalerted(self._stuck()))
        await self._tell_closed(plan, closed)
        if leave_on_close and not running.done() and workflow.patched(LEFT_RUNNING_ON_CLOSE):
            self.left_running = running
            return
        await running
        await self.settle(plan.request_id, closed, days_left)
        await self._tell_closed(plan, closed)  # a retry may have been asked while `settle` waited

    async def _tell_closed(self, plan: Plan, closed: Callable[[], bool]) -> None:
        """Closed unanswered: a processor asked (by e-mail, or an OpenDSR job) and not done is told, and
        its task asks once more, which ends it (the link takes no answer now; the job is called off)."""
        kinds = {t.system: t.connector for t in plan.tasks}
        asked = [r for r in self.results.values() if r.status == "pending" and closed() and (r.system, r.attempt)
                 not in self._told_closed and (kinds.get(r.system) == ConnectorKind.manual_email or (
                     kinds.get(r.system) == ConnectorKind.opendsr and workflow.patched(JOBS_CALLED_OFF)))]
        if not asked or not workflow.patched(TASKS_TOLD_OF_CLOSE):
            return
        for r in asked:
            self._told_closed.add((r.system, r.attempt))
            try:
                await workflow.get_external_workflow_handle(task_workflow_id(
                    plan.request_id, r.system, r.action, r.attempt)).signal(SystemTaskWorkflow.request_closed)
            except FailureError:
                pass  # it ended meanwhile: its result stands

    async def _run(self, plan: Plan, task: SystemTask, attempt: int) -> None:
        self.results[task.system] = TaskResult(
            system=task.system, action=task.action, status="pending", attempt=attempt,
            recipient=task.recipient)
        job = TaskInput(request_id=plan.request_id, policy_version=plan.policy_version, task=task, attempt=attempt)
        if task.connector == ConnectorKind.sql and workflow.patched(SQL_TASKS_INLINE):
            # A local activity on the main line; a staff retry (inside an update's handler) runs an
            # activity task, for the reason run_step gives (workflows/dsr_steps.py).
            local = workflow.current_update_info() is None and workflow.patched(SQL_TASKS_LOCAL)
            result, recorded = await act("run_system_action", job.model_copy(update={"record": True}), local=local)
            if not recorded:
                await record(job, result)
            self.results[task.system] = result
            return
        try:
            # The result is a TaskResult: Temporal reads its type from SystemTaskWorkflow.run's signature.
            ended = await workflow.execute_child_workflow(
                SystemTaskWorkflow.run, job, id=task_workflow_id(plan.request_id, task.system, task.action, attempt),
                # The request's own (settings.workflow_task_timeout): a killed worker holds a task no longer.
                task_timeout=workflow.info().task_timeout,
            )
            if (task.system, attempt) not in self._resolved_waiting:  # else staff's resolution stands
                self.results[task.system] = ended
        except ChildWorkflowError as error:
            # The task's own bookkeeping failed for good: staff see why and retry or resolve it.
            message, _ = describe_failure(error)
            self.results[task.system] = self.results[task.system].model_copy(
                update={"status": "needs_attention", "message": message})
            if workflow.patched(CHILD_FAILURE_RECORDED):
                await record(job, self.results[task.system])

    def unreached(self, note: TaskResult) -> None:
        """A task of this fan-out waits on its unreachable SaaS (the `task_unreached` signal): its
        note stands for its attempt, as long as nothing else has (a lift's task, a later attempt);
        and, the service answering again, the pending result that ends the wait stands over it."""
        current = self.results.get(note.system)
        if (current is not None and current.status == "pending"
                and (current.action, current.attempt) == (note.action, note.attempt)):
            self.results[note.system] = note

    def changed_systems(self) -> list[str]:
        """The systems whose task is done and changed something (none for an access: it reads)."""
        return sorted(r.system for r in self.results.values() if r.status == "done" and r.changed > 0)

    def asked_systems(self) -> list[str]:
        """The systems asked to act and not yet done (a processor at work): they may still act. A
        retry still waiting for its record is not asked yet, and never will be once closed."""
        return sorted(r.system for r in self.results.values()
                      if r.status == "pending" and r.system not in self._unrecorded_retries)

    def outstanding(self) -> dict[str, list[str]]:
        """What holds the response back, as the facts of staff's deadline warnings (empty for
        nothing; the letter names the systems by their labels): the systems asked and not yet
        done, and those that need staff."""
        waiting, stuck = self.asked_systems(), sorted(r.system for r in self._stuck())
        return {**({"waiting_for": waiting} if waiting else {}), **({"needing_staff": stuck} if stuck else {})}

    def _stuck(self) -> list[TaskResult]:
        return [r for r in self.results.values() if r.status == "needs_attention"]

    async def settle(self, request_id: str, closed: Callable[[], bool], days_left: Callable[[], int | None]) -> None:
        """A system that needs attention holds the response back until staff retry it (or
        close the request); the other systems have carried on meanwhile."""
        while not closed():
            stuck = self._stuck()
            if not stuck and not self._busy:
                return
            await self._alerts.alert(request_id, stuck, days_left)
            stuck_now = {(r.system, r.attempt) for r in stuck}

            def changed(stuck_now: set[tuple[str, int]] = stuck_now) -> bool:
                return closed() or {(r.system, r.attempt) for r in self._stuck()} != stuck_now and not self._busy

            if not stuck and workflow.patched(SETTLE_AFTER_RETRIES):
                # Only retries are under way (the fan-out ended meanwhile): their end is what to
                # wait for, since the set of stuck tasks may not change at all.
                await workflow.wait_condition(lambda: closed() or not self._busy)
                continue
            await workflow.wait_condition(changed)

    async def retry(self, plan: Plan, system: str, actor: str) -> TaskResult:
        """Run a task that needs attention again, as its next attempt (the `retry_task` update)."""
        task = next(t for t in plan.tasks if t.system == system)
        before = self.results[system]
        attempt = before.attempt + 1
        # Taken before the first await, so a concurrent retry of the same task is refused.
        self.results[system] = before.model_copy(update={"status": "pending", "attempt": attempt})
        self._retrying += 1
        retried = event_record(plan.request_id, "task.retried", self._staff_event_key("retry", system, attempt),
                               {"system": system, "action": task.action}, actor)
        owed = self._owes()
        if owed is not None:
            # The new attempt runs once the retry is on record; staff are answered with a sql
            # system's result (milliseconds) or, for a processor, once it is under way.
            mark = owed.owe(owed_record("record_event", retried))
            self._unrecorded_retries.add(system)  # until `_retried` has seen the record done
            running = self._on_its_own(self._retried(plan, task, attempt, after=mark))
            sql = task.connector == ConnectorKind.sql
            await self._answered(mark, running.done if sql else lambda: owed.done(mark))
            return self.results[system]
        handed_on = False
        try:
            await self._recorded(system, before, "the retry", ("record_event", retried))
            sql = task.connector == ConnectorKind.sql
            if (not sql and workflow.patched(RETRY_ANSWERS_ONCE_STARTED)) or (
                    sql and workflow.patched(SQL_RETRY_BOUNDED)):
                # The new attempt runs on its own: a processor's waits for it (hours, days), and
                # staff are answered now with the attempt pending; a sql system's answers in
                # milliseconds, so staff wait for its result, unless the system does not answer.
                # `settle` waits for it as for any retry.
                running = self._on_its_own(self._retried(plan, task, attempt))
                handed_on = True
                if sql:
                    await answered_within(running.done)
            else:
                await self._run(plan, task, attempt)
        finally:
            if not handed_on:
                self._retrying -= 1
        return self.results[system]

    def _on_its_own(self, retried: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        running = asyncio.create_task(retried)
        self._retries.add(running)  # held, so the task is not collected while it runs
        running.add_done_callback(self._retries.discard)
        return running

    async def _retried(self, plan: Plan, task: SystemTask, attempt: int, after: int | None = None) -> None:
        try:
            if after is not None:
                owed = self._owed
                assert owed is not None
                await workflow.wait_condition(lambda: owed.done(after))
                self._unrecorded_retries.discard(task.system)
                if self._closed() and workflow.patched(NO_RETRY_AFTER_CLOSE):
                    # Closed while the retry waited for its record: the retry stays on record, as
                    # it was taken, and the system is not asked again for a closed request.
                    self.results[task.system] = self.results[task.system].model_copy(update={
                        "status": "needs_attention",
                        "message": "not run: the request was closed before the retry was on record"})
                    return
            await self._run(plan, task, attempt)
        finally:
            self._retrying -= 1

    def _staff_event_key(self, kind: str, system: str, attempt: int) -> str:
        # Asked only of a fan-out with a prefix: the request's own histories gain no marker.
        prefixed = bool(self._event_prefix) and workflow.patched(STAFF_EVENT_PREFIX)
        return f"{self._event_prefix if prefixed else ''}{kind}:{system}:{attempt}"

    async def resolve(self, request_id: str, system: str, note: str, actor: str) -> TaskResult:
        """Staff carried the task out by other means (the `resolve_task` update)."""
        before = self.results[system]
        result = before.model_copy(update={"status": "done", "message": f"resolved by staff: {note}",
                                           "external_id": None if waits_unreached(before) else before.external_id})
        steps = (("record_event", event_record(request_id, "task.resolved",
                                               self._staff_event_key("resolved", system, result.attempt),
                                               {"system": system, "action": result.action, "note": note}, actor)),
                 ("record_task_result", TaskRecord(request_id=request_id, result=result)))
        self.results[system] = result  # taken at once: a concurrent answer is refused
        if waits_unreached(before) and workflow.patched(RESOLUTION_TOLD_TO_TASK):
            self._resolved_waiting.add((system, before.attempt))
            # Its task stops waiting, and sends nothing more (a try under way stops at its journal).
            try:
                await workflow.get_external_workflow_handle(
                    task_workflow_id(request_id, system, result.action, result.attempt)).signal("staff_resolved", result)
            except FailureError:
                pass  # it ended meanwhile: the resolution, recorded after, stands
        owed = self._owes()
        if owed is not None:
            # Stands at once; `settle` holds the response until it is on record.
            mark = owed.owe(*(owed_record(activity, arg) for activity, arg in steps))
            await self._answered(mark, lambda: owed.done(mark))
            return result
        if not workflow.patched(TASK_ANSWERS_BOUNDED):
            for activity, arg in steps:
                await run_step(activity, arg)
            return result
        # Held from `settle` until it is on record: the response never reports a resolution with
        # no evidence of who made it.
        self._retrying += 1
        try:
            await self._recorded(system, before, "the resolution", *steps)
        finally:
            self._retrying -= 1
        return result

    async def _recorded(self, system: str, before: TaskResult, what: str, *steps: tuple[str, object]) -> None:
        """Record a staff answer inside its update. If a record fails, the answer is taken back
        (the task needs attention again) and the caller is told why (older histories: the update
        failed with the answer standing)."""
        bounded = workflow.patched(TASK_ANSWERS_BOUNDED)
        try:
            for activity, arg in steps:
                await run_step(activity, arg, give_up=CALLER_WAITS if bounded else None)
        except STEP_FAILURES as error:
            if not bounded:
                raise
            self.results[system] = before
            # Not "nothing changed": a record the database took after the call gave up stays in
            # the audit trail (its key answers the next try, which then counts).
            raise ApplicationError(f"{what} could not be recorded ({describe_failure(error)[0]}); the task still "
                                   "needs attention: try again in a moment") from None

    def require_attention(self, system: str, attempt: int | None = None, action: str | None = None,
                          *, resolving: bool = False) -> None:
        """Refuse a retry or a resolution the task as it stands does not take (workflows/task_answers.py)."""
        require_answerable(self.results.get(system), system, attempt, action, resolving=resolving)
