"""SystemTaskWorkflow: one action in one system, as a child of the request's workflow.

Synchronous systems finish in one activity. Asynchronous processors (OpenDSR) answer later: a
verified callback arrives as the `processor_update` signal, polling is the fallback, and no answer
before the system's completion timeout leaves the task needing attention. Retryable failures are
retried with backoff; a permanent one, or retries running out, flags the task instead of failing
the request. An http system's action with more requests than one attempt's time allows ends each
slice with RUN_CONTINUES, and the next activity carries on from its journal at once
(activities/connectors/http_journal.py). An http system that stays unreachable past the quick
retries (SAAS_OUTAGE_ERRORS), or whose daily quota is used up, leaves its task pending, with a note,
and tried again by itself (`_unreached`, workflows/saas_waits.py) before it needs attention.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.exceptions import TimeoutError as StepTimedOut

with workflow.unsafe.imports_passed_through():
    from schemas.workflow import (
        PROCESSOR_CANCELLED,
        RUN_CONTINUES,
        SAAS_OUTAGE_ERRORS,
        ProcessorUpdate,
        TaskInput,
        TaskRecord,
        TaskResult,
    )
    from workflows.dsr_steps import STEP_FAILURES, describe_failure, run_step
    from workflows.saas_waits import QUOTA_USED_UP, ServiceWait, quota_used_up, when

_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=8,
    non_retryable_error_types=["PermanentConnectorError"],
)
# A daily quota used up is not cured in the quick retries: the task waits for its renewal on a
# workflow timer, pending with a note (patch QUOTA_WAITS), not in the activity's retries. A run's
# retry policy is not part of what replay compares (the activity's id and type are), so a history
# from before, whose run retried its quota, replays against it; the patch is asked only once a run
# fails, which keeps its marker out of every task that never meets a quota or an outage.
_RUN_RETRY = dataclasses.replace(_RETRY, non_retryable_error_types=[*(_RETRY.non_retryable_error_types or ()),
                                                                         QUOTA_USED_UP])
_TASK_TIME = timedelta(minutes=10)
_POLL_FIRST = timedelta(minutes=5)
_POLL_MAX = timedelta(hours=6)
# A processor that says when it expects to finish is asked shortly after: its callback is best
# effort (a lost one must not cost minutes), and later polls back off from there.
_POLL_GRACE = timedelta(seconds=5)
# workflow.patched id: tasks started before it record each result in a step of their own.
TASKS_RECORD_THEMSELVES = "tasks-record-themselves"
# workflow.patched id: a callback handled by code before it was confirmed with a poll, and replays so.
TRUST_SIGNED_CALLBACK = "trust-signed-callback"
# workflow.patched id: an attempt that stopped at the end of its time slice with part of a long run
# done (RUN_CONTINUES) is followed at once by the next, which carries on; before, it needed staff.
RUNS_CONTINUE = "http-runs-continue"
# workflow.patched id: a task the start sweep told late records that itself (ProcessorUpdate.told_late).
RECORDS_TOLD_LATE = "task-records-told-late"
# workflow.patched id: an http system unreachable past the quick retries (`_RETRY`, about 4 minutes)
# leaves its task pending and tried again by itself; before, each such task needed staff's Retry,
# one by one, after a SaaS outage of minutes.
OUTAGE_CARRIES_ON = "http-outage-carries-on"
# workflow.patched id: the task waiting on an unreachable SaaS tells its request's workflow (the
# `task_unreached` signal), whose staff may then resolve it; their resolution reaches the task as
# `staff_resolved`, which ends the wait with nothing more sent.
TELLS_UNREACHED = "http-outage-told"
# workflow.patched id: a processor's status failing past a poll's quick retries in a way time may
# cure (`curable`: its endpoint down or slow) is no answer yet. The job stands at the processor, so
# the task stays pending, with a note, and the next poll asks again, up to the system's completion
# timeout. Before, the task needed staff after about four minutes of outage, and their Retry
# submitted a new job.
POLL_OUTAGE_WAITS = "poll-outage-waits"
# workflow.patched id: a task whose SaaS answered again, and which waits on something else now (the
# service's job, its quota day), tells its request's workflow so; before, that workflow kept the
# note 'could not be reached' and offered staff Resolve, which the task, polling, did not heed.
TELLS_REACHED = "http-outage-told-reached"
# workflow.patched id: staff's resolution reaching a task that has just left its wait on an
# unreachable SaaS for its job's (the request's workflow, not yet told, took it as still waiting)
# ends the task too, instead of being ignored while the task polled, and on a quota day sent more.
HEEDS_LATE_RESOLUTION = "outage-late-resolution-heeded"
# workflow.patched id: a task's run that uses up its SaaS's daily quota (QUOTA_USED_UP) waits for the
# renewal by itself as an outage is waited for (`_unreached`: pending with a note, Resolve taken,
# no try once the request is closed, a bound); before, the activity's retries waited up to 8 quota
# days with nothing to show, then the task needed staff, who could only press Retry.
QUOTA_WAITS = "http-quota-waits"
# workflow.patched id: a processor asked by e-mail whose request closed unanswered (its link takes no
# answer any more) is told so by the request's workflow (`request_closed`) and asks its status once
# more, which ends it (the confirmation it may have recorded before the close, or not answered);
# before, the task polled on to its completion timeout (14 days), holding the request's workflow.
ENDS_ON_CLOSE = "manual-task-ends-on-close"
# workflow.patched id, asked by the fan-out (workflows/task_fanout.py `_tell_closed`): an OpenDSR job
# still at its processor when its request closed unanswered is told too, and its poll calls the job
# off (activities/connectors/opendsr_calloff.py); before, it was left to run (an erasure the subject
# withdrew carried out minutes later).
JOBS_CALLED_OFF = "opendsr-jobs-called-off-on-close"
# workflow.patched id: the poll a task makes on being told its request closed says so
# (`TaskInput.told_closed`), and waits for the close to be on record (activities/told_closed.py);
# before, it could read the request open, and the job was called off only at the next poll.
TOLD_POLL_AWAITS_CLOSE = "told-poll-awaits-close"


def continues(error: BaseException) -> bool:
    """An activity's attempt that ended its slice having moved its run on: not a failure. Each
    such attempt does part of the run, so the run ends after as many as its requests need."""
    return (isinstance(error, ActivityError) and isinstance(error.cause, ApplicationError)
            and error.cause.type == RUN_CONTINUES)


def unreachable(error: BaseException) -> bool:
    """A failure of an http system's action that is the service's outage (its quick retries ran
    out on connection errors, timeouts, 5xx or 429): not a refusal a person must look at."""
    return (curable(error) and isinstance(error, ActivityError) and isinstance(error.cause, ApplicationError)
            and error.cause.type in SAAS_OUTAGE_ERRORS)


def curable(error: BaseException) -> bool:
    """A step's failure, once its retries ran out, that more time may cure (a retryable error: the
    service down, slow or refusing for now; or no answer in time), not a refusal or a mistake in
    data or code, which the worker makes non-retryable (activities/errors.py)."""
    if not isinstance(error, ActivityError):
        return False
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return not cause.non_retryable and cause.type not in (_RETRY.non_retryable_error_types or ())
    return isinstance(cause, StepTimedOut)


async def _attempt(name: str, task: TaskInput, local: bool, retry: RetryPolicy = _RETRY) -> TaskResult:
    """The activity's result, or its failure once its retries ran out (STEP_FAILURES)."""
    if local:
        # Retries after the first wait on workflow timers, as the request's own steps do.
        result: TaskResult = await workflow.execute_local_activity(
            name, task, result_type=TaskResult, start_to_close_timeout=_TASK_TIME,
            local_retry_threshold=_RETRY.initial_interval, retry_policy=_RETRY)
        return result
    while True:
        try:
            result = await workflow.execute_activity(
                name, task, result_type=TaskResult, start_to_close_timeout=_TASK_TIME,
                heartbeat_timeout=timedelta(seconds=8), retry_policy=retry)
            return result
        except ActivityError as exc:
            if not (continues(exc) and workflow.patched(RUNS_CONTINUE)):
                raise


def _needing_staff(task: TaskInput, message: str) -> TaskResult:
    return TaskResult(system=task.task.system, action=task.task.action, status="needs_attention",
                      message=message, attempt=task.attempt, recipient=task.task.recipient,
                      external_id=task.external_id)


async def act(name: str, task: TaskInput, *, local: bool = False) -> tuple[TaskResult, bool]:
    """Run one of a system's activities: (its result, whether the activity recorded it - it does
    when `task.record` and it succeeded). Retries that did not cure a failure leave the task
    needing attention, which the caller records. `local`: as a local activity (a `sql` system's
    task on the request's main line: workflows/task_fanout.py)."""
    try:
        return await _attempt(name, task, local), task.record
    except STEP_FAILURES as exc:
        return _needing_staff(task, describe_failure(exc)[0]), False


async def _tell_request(note: TaskResult) -> None:
    """The request's workflow learns why its task waits (its state and console show the note; staff
    may resolve it), and that it waits no longer on its SaaS but on what the service answered (a
    job, a quota day). A request's workflow that has ended (a task run on its own) hears nothing."""
    parent = workflow.info().parent
    if parent is None:
        return
    try:
        await workflow.get_external_workflow_handle(parent.workflow_id, run_id=parent.run_id).signal(
            "task_unreached", note)
    except FailureError:
        workflow.logger.info("the request's workflow could not be told that its task waits for its system")


def done_by_callback(pending: TaskResult, results_count: int) -> TaskResult:
    """The task's result from a signed callback of a completed erasure: what a poll of the status
    endpoint would give for the same document (activities/connectors/opendsr_documents.py)."""
    return pending.model_copy(update={"status": "done", "found": results_count, "changed": results_count,
                                      "message": None, "poll_after_seconds": None})


async def record(task: TaskInput, result: TaskResult, *, newer_than_local_steps: bool = False) -> None:
    await run_step("record_task_result", TaskRecord(request_id=task.request_id, result=result),
                   newer_than_local_steps=newer_than_local_steps)


@workflow.defn(name="SystemTaskWorkflow")
class SystemTaskWorkflow:
    def __init__(self) -> None:
        self._update: ProcessorUpdate | None = None
        self._recorded = False  # whether the latest result is on record already
        self._resolution: TaskResult | None = None  # staff's, while an unreachable SaaS is waited for
        # Since when, and why, the processor's status cannot be read (`_poll`), while it cannot.
        self._unread: tuple[datetime, str] | None = None
        self._waited = False  # whether it waited on its unreachable SaaS (`_unreached`)
        self._request_closed = False  # told its request closed unanswered (ENDS_ON_CLOSE)

    @workflow.run
    async def run(self, task: TaskInput) -> TaskResult:
        task = task.model_copy(update={"record": workflow.patched(TASKS_RECORD_THEMSELVES)})
        try:
            result = await _attempt("run_system_action", task, False, _RUN_RETRY)
            self._recorded = task.record
        except STEP_FAILURES as exc:
            if isinstance(exc, ActivityError) and self._waits_for(exc) and (
                    quota_used_up(exc) or workflow.patched(OUTAGE_CARRIES_ON)):
                result = await self._unreached(task, exc)
            else:
                result, self._recorded = _needing_staff(task, describe_failure(exc)[0]), False
        if result.status == "pending":
            if not self._recorded:
                await record(task, result)
            result = await self._await_processor(task.model_copy(update={"external_id": result.external_id}), result)
        if not self._recorded:
            await record(task, result)
        return result

    @workflow.signal
    def processor_update(self, update: ProcessorUpdate) -> None:
        self._update = update

    @workflow.signal
    def request_closed(self) -> None:
        """Its request closed unanswered while the processor was asked (workflows/task_fanout.py)."""
        self._request_closed = True

    @workflow.signal
    def staff_resolved(self, result: TaskResult) -> None:
        """Staff resolved the task while its SaaS was unreachable (workflows/task_fanout.py), their
        resolution on record by the request's workflow."""
        self._resolution = result

    async def _await_processor(self, task: TaskInput, pending: TaskResult) -> TaskResult:
        give_up = workflow.now() + timedelta(days=task.task.completion_timeout_days)
        # Staff's resolution (`staff_resolved`) comes only to a task that waited on its SaaS.
        heeds = self._waited and workflow.patched(HEEDS_LATE_RESOLUTION)
        interval = _POLL_FIRST
        if pending.poll_after_seconds is not None:
            interval = min(timedelta(seconds=pending.poll_after_seconds) + _POLL_GRACE, _POLL_FIRST)
        while True:
            remaining = give_up - workflow.now()
            if remaining <= timedelta(0):
                self._recorded = False
                unread = "" if self._unread is None else \
                    f"; its status could not be read since {when(self._unread[0])}, last: {self._unread[1]}"
                return pending.model_copy(update={
                    "status": "needs_attention",
                    "message": f"no answer from the processor within {task.task.completion_timeout_days} days{unread}",
                })
            try:
                await workflow.wait_condition(
                    lambda: self._update is not None or (heeds and self._resolution is not None)
                    or self._request_closed, timeout=min(interval, remaining))
            except TimeoutError:
                polled = await self._poll(task, pending, give_up)
                if polled.status != "pending":
                    return polled
                interval = min(interval * 2, _POLL_MAX)
                continue
            if heeds and self._resolution is not None:
                self._recorded = True  # by the request's workflow, as in `_unreached`
                return self._resolution
            if self._request_closed and self._update is None:
                self._request_closed = False  # asked once: a poll answering pending waits on as before
                if workflow.patched(ENDS_ON_CLOSE):
                    told = task.model_copy(update={"told_closed": True}) \
                        if workflow.patched(TOLD_POLL_AWAITS_CLOSE) else task
                    polled = await self._poll(told, pending, give_up)
                    if polled.status != "pending":
                        return polled
                continue
            update, self._update = self._update, None
            assert update is not None
            if update.told_late is not None and workflow.patched(RECORDS_TOLD_LATE):
                await run_step("record_event", update.told_late, newer_than_local_steps=True)
            if update.status in ("completed", "done"):
                if update.results_count is not None and workflow.patched(TRUST_SIGNED_CALLBACK):
                    # The callback is the processor's status document, signed with the key that
                    # signs its status endpoint's answers (checked by api/callbacks before the
                    # signal): asking that endpoint again would tell nothing more.
                    result = done_by_callback(pending, update.results_count)
                    await record(task, result, newer_than_local_steps=True)
                    self._recorded = True
                    return result
                # A callback without counts (or a manual confirmation): the processor's own
                # status endpoint gives them.
                polled = await self._poll(task, pending, give_up)
                if polled.status != "pending":
                    return polled
            elif update.status == "cancelled":
                self._recorded = False
                return pending.model_copy(update={"status": "needs_attention",
                                                  "message": PROCESSOR_CANCELLED})

    async def _poll(self, task: TaskInput, pending: TaskResult, give_up: datetime) -> TaskResult:
        """How the processor's job stands. Its status failing past the quick retries in a way time
        may cure (`curable`) is no answer yet: the job stands at the processor, and the caller's
        next poll asks again. The task stays pending, with a note on record saying its status
        cannot be read and why (written as it starts failing, and taken back once a poll reads it
        again); the completion timeout's message says since when."""
        try:
            result = await _attempt("poll_system_action", task, False)
        except STEP_FAILURES as exc:
            if not (curable(exc) and workflow.patched(POLL_OUTAGE_WAITS)):
                self._recorded = False
                return _needing_staff(task, describe_failure(exc)[0])
            cause = describe_failure(exc)[0]
            if self._unread is None:
                await record(task, pending.model_copy(update={"message": (
                    f"asked; its status could not be read: {cause}; asked again by itself, less and less "
                    f"often, until {when(give_up)}, then it needs attention")}), newer_than_local_steps=True)
            self._unread = (self._unread[0] if self._unread else workflow.now(), cause)
            return pending
        self._recorded = task.record
        if self._unread is not None:
            self._unread = None
            if result.status == "pending":  # read again: the note of its failure is over
                await record(task, pending, newer_than_local_steps=True)
        return result

    def _waits_for(self, error: ActivityError) -> bool:
        """A failure the task waits out by itself: its SaaS down, or (QUOTA_WAITS) its quota used up."""
        return unreachable(error) or (quota_used_up(error) and workflow.patched(QUOTA_WAITS))

    async def _unreached(self, task: TaskInput, error: ActivityError) -> TaskResult:
        """The system's API failed past the quick retries, or its daily quota is used up: the task
        waits, pending with a note staff see (its console page, the evidence pack), and runs again by
        itself (after a backoff, or once the quota renews: ServiceWait) until it is done or the
        wait's bound has passed; then it needs staff, told since when and why. Each try is the same
        attempt: its run carries on from its journal (http_journal.py), each change sent once in
        effect. Staff may resolve the task meanwhile (`staff_resolved`): the wait ends with their
        result, and a try under way at that moment stops at its next change (its journal refuses
        it: the try answers with the result on record, activities/fanout.py)."""
        self._waited = True
        wait = ServiceWait.begin(task, error, describe_failure(error)[0], workflow.now(),
                                 heeds_asked=workflow.patched(QUOTA_WAITS))
        await self._tell_waiting(task, wait)
        task = task.model_copy(update={"after_outage": True})
        while (left := wait.give_up - workflow.now()) > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self._resolution is not None,
                                              timeout=min(wait.next_try - workflow.now(), left))
            except TimeoutError:
                pass
            if self._resolution is not None:
                break
            try:
                result = await _attempt("run_system_action", task, False, _RUN_RETRY)
            except STEP_FAILURES as exc:
                if self._resolution is not None:
                    break
                if not (isinstance(exc, ActivityError) and self._waits_for(exc)):
                    self._recorded = False
                    return _needing_staff(task, describe_failure(exc)[0])
                if wait.failed(exc, describe_failure(exc)[0], workflow.now()):
                    await self._tell_waiting(task, wait)
                continue
            if self._resolution is not None:
                break
            self._recorded = task.record
            if result.status == "pending" and workflow.patched(TELLS_REACHED):
                await _tell_request(result)  # its note is over: no longer resolvable as waiting
            return result
        if self._resolution is not None:
            # Staff's result stands, recorded by the request's workflow (after a try that ended
            # meanwhile too: its own result, stored first, is recorded over): nothing more is sent.
            self._recorded = True
            return self._resolution
        self._recorded = False
        return _needing_staff(task, wait.given_up(workflow.now()))

    async def _tell_waiting(self, task: TaskInput, wait: ServiceWait) -> None:
        """The wait's note on record, and told to the request's workflow (whose staff may resolve it)."""
        note = wait.note()
        await record(task, note, newer_than_local_steps=True)
        if workflow.patched(TELLS_UNREACHED):
            await _tell_request(note)
