"""Starting a request's workflow: the one function every caller uses (staff API, portal, console,
retention sweep), so that a request's workflow runs at most once, ever.

A repeated call (same idempotency key, a retried sweep) while the workflow runs finds the running
one; after it has closed, the id is never reused: Temporal refuses a second run
(`REJECT_DUPLICATE`) and a row that is already closed is not even asked about. Without this, the
same `Idempotency-Key` sent after a request completed would acknowledge, erase and answer again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from dsrflow.infra.temporal_client import ENGINE_CALL
from schemas.requests import RequestStatus
from schemas.workflow import StartRequest, workflow_id_for

WORKFLOW = "DataSubjectRequestWorkflow"


async def start_request_workflow(client: Client, row: dict[str, Any],
                                 attention_after_minutes: int, *,
                                 task_queue: str, task_timeout: float) -> None:
    """Make sure the stored request `row` has its workflow, unless it has run already.
    `attention_after_minutes` is from the policy the request started under (its own version);
    `task_timeout`, the settings' `workflow_task_timeout`."""
    if RequestStatus(row["status"]).is_closed:
        return
    request_id = str(row["id"])
    start = StartRequest(request_id=request_id, policy_version=row["policy_version"],
                         attention_after_minutes=attention_after_minutes)
    try:
        await client.start_workflow(
            WORKFLOW, start, id=workflow_id_for(request_id), task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            task_timeout=timedelta(seconds=task_timeout),
            rpc_timeout=ENGINE_CALL,
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran and closed already: a repeat must never run it again
