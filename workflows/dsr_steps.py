"""The activity calls a request's workflow and its helpers (identity verification, deadline watch,
fan-out) make: each one step of the request's life, recorded in Postgres and the audit trail.

Every step goes through `run_step`, which bounds how it can fail:
- timeouts that fit the step: a short one (a database write, a letter, the plan) runs as a local
  activity and is run again 10 s after a worker dies with it; building a package heartbeats, so
  its loss is noticed within seconds;
- transient errors (database, SMTP, a processor unreachable) are retried with backoff for the
  policy's `attention_after_minutes`; deterministic ones fail at once (activities/errors.py);
- a step that failed, or kept failing past that threshold, is handed to the workflow that owns it
  (a `StepSupervisor`: the request's workflow), which flags the request, alerts staff once and
  waits for them to retry or skip it; a transient failure is also retried on its own. Inside an
  update handler a failure is not waited on: it fails the update, so staff see the reason at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, Protocol, Required, TypedDict, runtime_checkable

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState, TimeoutError

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.workflow import EventRecord, LetterJob, Transition



class Timeouts(TypedDict, total=False):
    """The timeouts of one step, as keyword arguments of workflow.execute_activity."""

    start_to_close_timeout: Required[timedelta]
    heartbeat_timeout: timedelta


# Short database writes: an attempt lost with its worker (or stuck on a database that is
# restarting) is tried again after 10 s; each write is idempotent.
SHORT = Timeouts(start_to_close_timeout=timedelta(seconds=10))
# The heartbeat timeout of the steps below: they beat every 3 s (activities/heartbeat.py) and the
# SDK passes a beat on at most every 80 % of the timeout (6.4 s), so a worker that is alive but
# whose event loop stalls for up to 5 s is not taken for lost, and one that died is noticed 8 s
# after its last beat (15 s before: a request waited 7 s longer for another worker to take over).
# Steps that send e-mail: SMTP (30 s) plus the outbox's patience for a restarting database
# (activities/outbox.py), heartbeating so that a worker lost mid-send is noticed in 8 s.
MAILING = Timeouts(start_to_close_timeout=timedelta(minutes=4), heartbeat_timeout=timedelta(seconds=8))
# Planning may ask a processor first (GA4 identifiers before the analytics erasure): an HTTP call,
# heartbeating so that a worker lost while planning costs seconds, not the 2 minutes.
PLANNING = Timeouts(start_to_close_timeout=timedelta(minutes=2), heartbeat_timeout=timedelta(seconds=8))
# Building an access package: long, heartbeating every 3 s from the event loop while the
# archive is written on a thread, so a worker lost mid-build is noticed in 8 s like the others.
PACKAGING = Timeouts(start_to_close_timeout=timedelta(hours=2), heartbeat_timeout=timedelta(seconds=8))

# Steps bounded to a few minutes (database writes, letters, planning) run as local activities:
# inside the workflow task that asks for them, so the server schedules, dispatches and records no
# task of their own (one marker event instead of six events and a workflow-task round trip). A
# worker lost in one shows within the workflow task's timeout (10 s) and another worker runs it
# again; every step is idempotent. Longer steps (a package) keep their own task and heartbeat.
LOCAL_LIMIT = timedelta(minutes=5)
# workflow.patched id: requests started before it ran every step as an activity task.
LOCAL_STEPS = "local-steps"
# workflow.patched id: before it, a letter staff skipped was left as it was, although an attempt
# cut off inside the SMTP transaction may have handed it to the relay, or one still under way may
# send it later. Now the skip settles it (`settle_skipped_letter`): it never goes if it had not,
# and the audit trail says whether it went.
SKIPPED_LETTER_SETTLED = "skipped-letter-settled"

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=1))
# Requests started before the policy carried a threshold.
DEFAULT_ATTENTION_AFTER = timedelta(minutes=15)
# How long a step inside an update is retried while its caller (a person at a button) waits for
# the answer, where the update then fails with its answer taken back (a resend, a task's retry or
# resolution).
CALLER_WAITS = timedelta(seconds=30)

Decision = Literal["retry", "skip"]


class RequestClosed(Exception):
    """The request was closed (cancelled, denied) while one of its steps waited for staff."""


@runtime_checkable
class StepSupervisor(Protocol):
    """What a workflow implements to be told about its failing steps."""

    attention_after: timedelta

    async def step_failed(self, step: str, message: str, *, transient: bool, skippable: bool,
                          about: str | None = None) -> Decision: ...

    async def step_recovered(self) -> None: ...


# How a failed step arrives: an activity's failure wrapped in an ActivityError, a local activity's
# as the activity raised it (temporalio's TimeoutError is not the builtin one).
STEP_FAILURES = (ActivityError, ApplicationError, TimeoutError)


def describe_failure(error: FailureError) -> tuple[str, bool]:
    """(message for staff, transient?) of a failed activity: its (last attempt's) application
    error's message; a step that kept failing until its time ran out is transient, one that
    failed for good (non-retryable) is not."""
    if isinstance(error, ApplicationError):  # a local activity's failure, as the activity raised it
        transient = not error.non_retryable
    else:
        transient = getattr(error, "retry_state", None) != RetryState.NON_RETRYABLE_FAILURE
    message = str(error)
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, TimeoutError):
            message = "kept failing until its time ran out"
        elif isinstance(cause, ApplicationError):
            message = cause.message
            break
        cause = cause.__cause__
    return message[:500], transient


async def run_step(activity: str, arg: Any, *, result_type: type | None = None,
                   timeouts: Timeouts | None = None, skippable: bool = True, newer_than_local_steps: bool = False,
                   supervisor: StepSupervisor | None = None, after_recorded: bool = False,
                   give_up: timedelta | None = None) -> Any:
    """Run one step; returns its result, or None when staff skipped it (only a `skippable` step:
    one whose effect staff can bring about by other means, such as a letter).
    `newer_than_local_steps`: the caller is on a path that only code newer than LOCAL_STEPS
    takes (behind a later patch), so the step is local without asking for that patch's marker.
    `supervisor`: who handles its failures, if not the workflow itself (workflows/owed_steps.py).
    `after_recorded`: an activity task even outside an update, because an update of this very
    workflow task asked for it (the same reason as below).
    `give_up`: how long it is retried before it fails, if not the policy's threshold (a caller
    who waits for the answer)."""
    owner = workflow.instance()
    supervisor = supervisor or (owner if isinstance(owner, StepSupervisor) else None)
    timeouts = timeouts or SHORT
    attention = supervisor.attention_after if supervisor else DEFAULT_ATTENTION_AFTER
    troubled = False
    # Not inside an update's handler: a local activity acts before its workflow task is recorded,
    # and a task lost with its updates (staff's, a volley of verification guesses) would leave
    # effects - audit events of guesses the request then does not count - that never happened for
    # the request. An activity task acts only once the task that asked for it is recorded.
    local = (timeouts["start_to_close_timeout"] <= LOCAL_LIMIT and workflow.current_update_info() is None
             and not after_recorded and (newer_than_local_steps or workflow.patched(LOCAL_STEPS)))
    give_up = give_up or max(timeouts["start_to_close_timeout"], attention)
    while True:
        try:
            if local:
                result = await _run_local(activity, arg, result_type, timeouts["start_to_close_timeout"], give_up)
            else:
                result = await workflow.execute_activity(
                    activity, arg, result_type=result_type, retry_policy=RETRY, schedule_to_close_timeout=give_up,
                    **timeouts)
        except STEP_FAILURES as error:
            if supervisor is None or workflow.current_update_info() is not None:
                raise
            message, transient = describe_failure(error)
            troubled = True
            if await supervisor.step_failed(activity, message, transient=transient, skippable=skippable,
                                            about=step_about(arg)) == "skip":
                if activity == "send_letter" and workflow.patched(SKIPPED_LETTER_SETTLED):
                    await run_step("settle_skipped_letter", arg, result_type=bool, skippable=False,
                                   supervisor=supervisor)
                return None
            continue
        if troubled:
            await supervisor.step_recovered()  # type: ignore[union-attr] # troubled implies a supervisor
        return result


def step_about(arg: Any) -> str | None:
    """Which letter or record a step is, for staff who see it fail (StepTrouble.about)."""
    if isinstance(arg, LetterJob):
        return f"{arg.purpose.replace('_', ' ')} letter"
    if isinstance(arg, EventRecord):
        return f"{arg.event_type} record"
    if isinstance(arg, Transition):
        return f"status {arg.status.value.replace('_', ' ')} record"
    return None


async def _run_local(activity: str, arg: Any, result_type: type | None, start_to_close: timedelta,
                     give_up: timedelta) -> Any:
    """A step as a local activity, retried with RETRY's backoff until `give_up`. Retries after
    the first wait on workflow timers, not inside the worker (where staff updates would queue
    behind them). The attempts are counted from RETRY's backoff, so the step gives up on the
    workflow's clock; the SDK's own limit (`schedule_to_close_timeout`) reads the machine's.
    Its failure arrives as the activity's own error (an ApplicationError or TimeoutError), not
    wrapped in an ActivityError."""
    return await workflow.execute_local_activity(
        activity, arg, result_type=result_type, start_to_close_timeout=start_to_close,
        schedule_to_close_timeout=give_up, local_retry_threshold=RETRY.initial_interval,
        retry_policy=RetryPolicy(initial_interval=RETRY.initial_interval, backoff_coefficient=RETRY.backoff_coefficient,
                                 maximum_interval=RETRY.maximum_interval,
                                 maximum_attempts=_attempts_within(give_up)))


def _attempts_within(window: timedelta) -> int:
    """How many attempts RETRY's backoff fits into `window`."""
    attempts, waited, delay = 1, timedelta(0), RETRY.initial_interval
    while waited + delay <= window:
        waited += delay
        attempts += 1
        delay = min(delay * RETRY.backoff_coefficient, RETRY.maximum_interval or delay)
    return attempts


def letter_job(
    request_id: str, purpose: str, *, key: str = "1", params: dict[str, Any] | None = None, to_staff: bool = False
) -> LetterJob:
    return LetterJob(request_id=request_id, purpose=purpose, key=key, params=params or {}, to_staff=to_staff)


def event_record(
    request_id: str, event_type: str, key: str, data: dict[str, Any], actor: str = "workflow"
) -> EventRecord:
    return EventRecord(request_id=request_id, event_type=event_type, event_key=key, actor=actor, data=data)


def transition_record(
    request_id: str, status: RequestStatus, event: str, data: dict[str, Any], actor: str = "workflow"
) -> Transition:
    """A status change, recorded once under `status:<event>` (the step's idempotency key)."""
    return Transition(request_id=request_id, status=status, event_key=f"status:{event}", actor=actor, data=data)


async def send_letter(
    request_id: str, purpose: str, *, key: str = "1", params: dict[str, Any] | None = None, to_staff: bool = False
) -> None:
    await run_step("send_letter", letter_job(request_id, purpose, key=key, params=params, to_staff=to_staff),
                   timeouts=MAILING)


async def record_event(
    request_id: str, event_type: str, key: str, data: dict[str, Any], actor: str = "workflow"
) -> None:
    await run_step("record_event", event_record(request_id, event_type, key, data, actor))


async def record_transition(
    request_id: str, status: RequestStatus, event: str, data: dict[str, Any], actor: str = "workflow"
) -> None:
    await run_step(
        "transition", transition_record(request_id, status, event, data, actor),
        skippable=False,  # the stored status is what the queue and the subject see
    )
