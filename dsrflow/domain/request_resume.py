"""Resuming a request whose workflow ended while the request was open.

A request's workflow can end without closing its request: an operator terminated it, or it failed
on an error nothing caught. The start sweep flags such a request (activities/request_start_sweep.py
`flag_ended_workflows`); until it is resumed every staff action on it is refused, and no deadline
warning comes. Resuming is Temporal's reset: a new run replays the ended run's history up to one of
its workflow tasks and carries on from there, with all the request had done and been told
(verification, staff decisions, the systems' results). Starting the workflow afresh would have
lost them, and Temporal refuses a second start of a request's workflow anyway
(dsrflow/domain/request_start.py).

Where it resumes from (`resume_point`): the last workflow task the ended run completed (or its
first, if it ended inside it), so that only that task's work is done again, except that
- a child workflow (a processor's task) still running when the run ended was terminated with it
  (the parent-close policy), and no new run would ever hear of that: the run resumes from the task
  that started the child, which starts it again;
- a run that failed on an activity or a child resumes from the task that scheduled it, which then
  runs again (with its retries) instead of failing the same way.
Whatever is done again takes effect once: letters, audit events and a system task's outcome are
keyed, and a processor's job id is derived from the task (activities/connectors/opendsr.py).
Activities and timers the ended run was waiting for carry over (the server renews them), and the
signals and staff updates it received after the reset point are applied again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, ResetReapplyType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest, ResetWorkflowExecutionResponse
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.temporal_client import ENGINE_CALL
from schemas.workflow import workflow_id_for

# The start sweep's flag for an ended run (a step trouble); a run's own key adds its id, so a run
# resumed and ended again is flagged again.
ENDED_TROUBLE = "workflow-ended"

# The events that end a child workflow, each naming the event that started it.
_CHILD_ENDS = {
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: "child_workflow_execution_completed_event_attributes",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: "child_workflow_execution_failed_event_attributes",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: "child_workflow_execution_canceled_event_attributes",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "child_workflow_execution_timed_out_event_attributes",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: "child_workflow_execution_terminated_event_attributes",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: "start_child_workflow_execution_failed_event_attributes",
}


class ResumeRefused(Exception):
    """Why a request cannot be resumed, with the HTTP status that says so."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Resumed:
    run_id: str  # the new run's
    ended: str  # how the earlier run ended: failed, terminated, timed_out
    from_event: int  # the workflow task it resumed from (an event id of the earlier run)


def ended_trouble_key(run_id: str) -> str:
    return f"{ENDED_TROUBLE}:{run_id}"


def how_ended(status: WorkflowExecutionStatus | None) -> str:
    """An ended run's status in the words of its flag and audit events: failed, terminated, timed_out."""
    return status.name.lower() if status else "ended"


def _scheduled_by(event: HistoryEvent | None) -> int | None:
    """The workflow task that scheduled an activity or started a child."""
    if event is None:
        return None
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return event.activity_task_scheduled_event_attributes.workflow_task_completed_event_id
    if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        return event.start_child_workflow_execution_initiated_event_attributes.workflow_task_completed_event_id
    return None


def _failed_at(failure: Failure, events: dict[int, HistoryEvent]) -> int | None:
    """The workflow task that scheduled the activity or child whose failure failed the run."""
    cause: Failure | None = failure
    while cause is not None:
        if cause.HasField("activity_failure_info") and cause.activity_failure_info.scheduled_event_id:
            return _scheduled_by(events.get(cause.activity_failure_info.scheduled_event_id))
        if cause.HasField("child_workflow_execution_failure_info"):
            return _scheduled_by(events.get(cause.child_workflow_execution_failure_info.initiated_event_id))
        cause = cause.cause if cause.HasField("cause") else None
    return None


def resume_point(history: Sequence[HistoryEvent]) -> int:
    """The workflow task (its completed event's id) an ended run resumes from (see above)."""
    completed = [e.event_id for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    # Ended inside its first workflow task (its first steps are local activities, run inside it):
    # it starts over from that task, which the server takes as a reset point too.
    completed = completed[-1:] or [e.event_id for e in history
                                   if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED][:1]
    if not completed:
        raise ResumeRefused(409, "the request's workflow ended before any worker took it up: an operator "
                                 "must look at its history in Temporal")
    events = {e.event_id: e for e in history}
    points = [completed[0]]
    ended_children = {getattr(e, attributes).initiated_event_id
                      for e in history if (attributes := _CHILD_ENDS.get(e.event_type))}
    points += [point for e in history if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
               and e.event_id not in ended_children and (point := _scheduled_by(e))]
    last = history[-1]
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        point = _failed_at(last.workflow_execution_failed_event_attributes.failure, events)
        if point:
            points.append(point)
    return min(points)


async def settle_ended_troubles(pool: asyncpg.Pool, request_id: str, resolution: str) -> None:
    """The start sweep's flags on the request's ended runs, settled: it runs again."""
    await pool.execute(
        """UPDATE step_troubles SET resolved_at = now(), resolution = $2
           WHERE request_id = $1::uuid AND trouble_key LIKE $3 AND resolved_at IS NULL""",
        request_id, resolution, f"{ENDED_TROUBLE}%")


# The start sweep's flag on `step_troubles s`, still open: in SQL for every reader that asks
# whether a request is stopped (here, and the queue's api/read_models/request_queries.py).
OPEN_ENDED_FLAG = f"s.trouble_key LIKE '{ENDED_TROUBLE}%' AND s.resolved_at IS NULL"
# A request (`r`) whose workflow still has work: open, or closed with its restriction on record and
# not yet lifted (completed, or closed part-way with it in force: workflows/restriction_lifecycle.py),
# which only that workflow lifts. Before, a closed request's ended workflow was neither flagged nor
# resumable, so such a restriction could never be lifted and nobody was told.
STILL_RUNS = """(r.closed_at IS NULL OR EXISTS (SELECT 1 FROM restrictions x
                                             WHERE x.request_id = r.id AND x.lifted_at IS NULL))"""
# The newest open flag of each such request: a run resumed and ended again is flagged again, and the
# older flag of a resume that died before settling it may still be open. Any other closed request
# is not stopped, whatever flag is left on it: nothing of it is to resume.
# Its `closed_at` too: a closed one's reminders count no days to its answered due date
# (activities/request_start_sweep.py `remind_stopped`).
_STOPPED = f"""SELECT DISTINCT ON (s.request_id) s.request_id, s.trouble_key, s.message, s.since,
                       r.current_due_date, r.policy_version, r.closed_at
                 FROM step_troubles s JOIN dsr_requests r ON r.id = s.request_id
                WHERE {OPEN_ENDED_FLAG} AND {STILL_RUNS} {{request}}
                ORDER BY s.request_id, s.since DESC"""


async def ended_flag(pool: asyncpg.Pool, request_id: str) -> asyncpg.Record | None:
    """The open request's stopped workflow as the start sweep flagged it (its message, and since
    when), or None: what the console's panel, the REST view and the subject's status page each say."""
    return await pool.fetchrow(_STOPPED.format(request="AND s.request_id = $1::uuid"), request_id)


async def stopped_requests(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Every stopped request (`ended_flag`), the nearest due date first (its deadline runs on),
    then the longest stopped."""
    return list(await pool.fetch(f"SELECT * FROM ({_STOPPED.format(request='')}) stopped "
                                 "ORDER BY current_due_date NULLS LAST, since"))


async def resume_request(client: Client, pool: asyncpg.Pool, request_id: str, *, actor: str,
                         reason: str) -> Resumed:
    """Resume the open request's ended workflow; refused (ResumeRefused) when there is nothing to
    resume. `reason` goes to the audit trail only, never into Temporal's history (it may name the
    subject). A repeat after a crash resets the ended run once: the reset's request id is the
    ended run's."""
    row = await pool.fetchrow(f"SELECT {STILL_RUNS} AS runs FROM dsr_requests r WHERE id = $1::uuid", request_id)
    if row is None:
        raise ResumeRefused(404, f"no request {request_id}")
    if not row["runs"]:
        raise ResumeRefused(409, "the request is closed: there is nothing to resume")
    workflow_id = workflow_id_for(request_id)
    try:
        described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=ENGINE_CALL)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        raise ResumeRefused(409, "the request's workflow has not started yet; the start sweep starts it "
                                 "within minutes") from None
    if described.status == WorkflowExecutionStatus.RUNNING:
        # Resumed already (a repeat after a crash, or by an operator): a flag left behind is stale.
        await settle_ended_troubles(pool, request_id, "its workflow runs again")
        raise ResumeRefused(409, "the request's workflow is running: there is nothing to resume")
    if described.status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.CONTINUED_AS_NEW):
        raise ResumeRefused(409, "the request's workflow completed without closing the request; resuming "
                                 "would complete it the same way: an operator must look at its history")
    ended = how_ended(described.status)
    history = [e async for e in client.get_workflow_handle(workflow_id, run_id=described.run_id).fetch_history_events(
        rpc_timeout=ENGINE_CALL)]
    point = resume_point(history)
    # Recorded first (keyed by the ended run): a resume that dies before the reset is repeated by
    # staff and recorded once.
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{request_id}:resumed:{described.run_id}", request_id=request_id,
                           event_type="request.resumed", actor=actor,
                           data={"reason": reason, "ended": ended, "from_event": point})
    failpoint("resume-recorded")
    reset = await _reset(client, ResetWorkflowExecutionRequest(
        namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id,
                                                                         run_id=described.run_id),
        reason="resumed by staff: the request's audit trail says who and why",
        workflow_task_finish_event_id=point,
        request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"dsrflow:resume:{described.run_id}")),
        reset_reapply_type=ResetReapplyType.RESET_REAPPLY_TYPE_ALL_ELIGIBLE,
    ))
    failpoint("resume-reset")  # running again, its flag not yet settled (a repeat, or the sweep, settles it)
    await settle_ended_troubles(pool, request_id, f"resumed by {actor}")
    return Resumed(run_id=reset.run_id, ended=ended, from_event=point)


# What a busy server answers when it gave up on a call it may still carry out (seen in CI under load:
# "operation was canceled"). The reset's request id is the ended run's, so asking again resets once.
_TRY_AGAIN = (RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


async def _reset(client: Client, request: ResetWorkflowExecutionRequest, *,
                 tries: int = 3) -> ResetWorkflowExecutionResponse:
    for attempt in range(1, tries + 1):
        try:
            return await client.workflow_service.reset_workflow_execution(request, timeout=timedelta(seconds=30))
        except RPCError as exc:
            if exc.status not in _TRY_AGAIN:
                raise
            if attempt == tries:
                raise ResumeRefused(503, f"the workflow engine did not complete the reset ({exc.message}); "
                                         "press again: a repeat resumes the request once") from None
            await asyncio.sleep(attempt)
    raise ValueError("tries must be at least 1")
