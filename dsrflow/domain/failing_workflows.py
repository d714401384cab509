"""What Temporal says of a request's workflow whose workflow task fails at every try.

Workflow code that no longer replays (deployed without `workflow.patched`), a bug, or a key
dropped while a workflow still holds payloads sealed with it (docs/operations.md, "Keys and their
rotation") make every workflow task fail: the workflow runs, yet nothing of it moves, its deadline
watch included. The server (1.30 and later) marks such a workflow, after
`system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute` (5) failures in a row, with
the search attribute `TemporalReportedProblems`, and clears it once a task completes: one
visibility query lists them all (`FAILING`), however many requests are open. The start sweep
alerts staff of each (activities/request_start_sweep.py `flag_failing_workflows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingWorkflowTaskInfo
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from dsrflow.crypto.payload_codec import KEY_ID_METADATA
from dsrflow.domain.audit import append_event
from dsrflow.domain.request_resume import STILL_RUNS
from schemas.workflow import workflow_id_for

FAILING = ("WorkflowType = 'DataSubjectRequestWorkflow' AND ExecutionStatus = 'Running' "
           "AND TemporalReportedProblems IS NOT NULL")

# Only the first failure in a row is written to a run's history (the attempts after it are not),
# so the last events read backwards hold it, unless what happened since (timers fired, children
# ended, each recorded with the failure it brought) buried it deeper: read back page by page, to
# the last task that completed, up to _PAGES pages. Before, one page of 50: once the first failure
# fell off it, the stretch's key and its start changed, so its alert and audit event went twice.
_PAGE = 100
_PAGES = 10
_FAILURES = (EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED, EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)


@dataclass(frozen=True)
class Failing:
    run_id: str
    since: datetime  # the first failure in a row
    failure_event: int  # its event id: a later stretch of failures, after a task that completed, has another
    attempts: int  # of the workflow task, so far


async def failing_task(handle: WorkflowHandle[Any, Any], *, rpc_timeout: timedelta | None = None,
                       ) -> tuple[WorkflowExecutionDescription, PendingWorkflowTaskInfo] | None:
    """The workflow and its pending task while that task fails (its attempt past the first: a
    task only waiting for a worker is at its first); None otherwise, or when the engine cannot say."""
    try:
        described = await handle.describe(rpc_timeout=rpc_timeout)
    except RPCError:
        return None
    pending = described.raw_description.pending_workflow_task
    return (described, pending) if pending.attempt > 1 else None


async def failing(client: Client, workflow_id: str) -> Failing | None:
    """How the workflow's task has failed, while it fails; None once a task completed, or when
    the workflow is gone."""
    if (task := await failing_task(client.get_workflow_handle(workflow_id))) is None:
        return None
    described, pending = task
    try:
        first = await _first_failure(client, WorkflowExecution(workflow_id=workflow_id, run_id=described.run_id))
    except RPCError:
        return None
    if first is None:  # beyond the pages read: the pending task's scheduling, near enough
        since, event_id = pending.scheduled_time.ToDatetime(tzinfo=UTC), 0
    else:
        since, event_id = first.event_time.ToDatetime(tzinfo=UTC), first.event_id
    return Failing(run_id=described.run_id, since=since, failure_event=event_id, attempts=pending.attempt)


async def _first_failure(client: Client, execution: WorkflowExecution) -> HistoryEvent | None:
    """The first failure since the last task that completed (a signal received meanwhile is
    recorded after it, and can record a later failure too), read backwards."""
    first, token = None, b""
    for _ in range(_PAGES):
        page = await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(namespace=client.namespace, execution=execution,
                                                      maximum_page_size=_PAGE, next_page_token=token))
        for event in page.history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                return first
            if event.event_type in _FAILURES:
                first = event
        token = page.next_page_token
        if not token:
            break
    return first


# Each stretch of failures recorded on a request whose workflow still has work (open, or its
# restriction not yet lifted: STILL_RUNS; before, a lifting restriction's stretch never ended on
# its timeline) whose end is not recorded yet; the end's key is the stretch's with ":recovered"
# (migration 0041's index finds the stretches).
_UNENDED = f"""
SELECT e.request_id::text AS request_id, e.event_key, e.data->>'since' AS since FROM audit_events e
  JOIN dsr_requests r ON r.id = e.request_id AND {STILL_RUNS}
 WHERE e.event_type = 'request.workflow_failing'
   AND NOT EXISTS (SELECT 1 FROM audit_events x WHERE x.event_key = e.event_key || ':recovered')"""


async def record_recoveries(pool: asyncpg.Pool, client: Client, marked: set[str], now: datetime) -> list[str]:
    """Record `request.workflow_recovered` for each stretch of failures whose workflow carries on
    again: running, no longer marked failing (`marked`: the workflow ids the server marks now),
    its pending task at its first try. A workflow that ended instead is left to the sweep's
    ended-workflow flag. The timeline then shows how long the request was frozen (the time it
    was noticed: the sweep runs every few minutes). The request ids recorded."""
    recorded = []
    for stretch in await pool.fetch(_UNENDED):
        workflow_id = workflow_id_for(stretch["request_id"])
        if workflow_id in marked:
            continue
        try:
            described = await client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            continue
        if described.status != WorkflowExecutionStatus.RUNNING or described.raw_description.pending_workflow_task.attempt > 1:
            continue
        async with pool.acquire() as conn:
            await append_event(conn, event_key=f"{stretch['event_key']}:recovered", request_id=stretch["request_id"],
                               event_type="request.workflow_recovered", actor="sweep",
                               data={"failing_since": stretch["since"], "noticed": now.isoformat()})
        recorded.append(stretch["request_id"])
    return recorded


async def unheld_key(handle: WorkflowHandle[Any, Any], held: Iterable[str], *, rpc_timeout: timedelta | None = None) -> str | None:
    """The id of the key the workflow's input was encrypted with, when it is not among `held` (a
    key dropped before every workflow started under it had ended): no worker can replay the
    workflow. The id is in clear beside each payload (dsrflow/crypto/payload_codec.py), and a
    key's id is no secret. None when it is held, or the engine cannot say."""
    try:
        async for event in handle.fetch_history_events(page_size=1, rpc_timeout=rpc_timeout):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            kids = {p.metadata[KEY_ID_METADATA].decode() for p in payloads if KEY_ID_METADATA in p.metadata}
            return next(iter(sorted(kids - set(held))), None)
    except RPCError:
        return None
    return None
