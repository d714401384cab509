"""A system's result for a request as its record keeps it (`system_tasks`, what the queue, the
evidence pack and the response letter read): stored and audited in one statement, interim or final,
by the task's own activities, by the workflow (a task needing staff, a processor's callback) and by
staff's resolution of a task. (activities/task_outcomes.py keeps what one attempt did, for its retry.)

A result that ends the task also ends its http runs' journals (activities/connectors/http_journal.py),
whoever records it: the rows hold what the run read of the subject, sealed, and nothing goes on from
them once the task is over.
"""

from __future__ import annotations

from collections.abc import Sequence

from activities.connectors.http_journal import journal_cleared
from activities.context import ActivityContext
from dsrflow.domain.audit import append_event
from dsrflow.infra.writes import Write
from schemas.workflow import TaskResult

# The statuses a task is over with. Only a task needing staff runs again (a staff retry goes on
# from its journal) and a pending one carries on; a task staff resolve is `done` however far its
# run got, and no retry follows a resolution.
ENDS_TASK = frozenset({"done", "not_found"})


async def store_task_result(ctx: ActivityContext, request_id: str, result: TaskResult,
                            *, along: Sequence[Write] = ()) -> None:
    """A system's (interim or final) result for a request, stored and audited in one statement,
    with the `along` writes."""
    async with ctx.pool.acquire() as conn:
        await append_event(
            conn,
            event_key=f"{request_id}:task:{result.system}:{result.action}:{result.attempt}:{result.status}",
            request_id=request_id, event_type=f"task.{result.status}", actor="workflow",
            data={"system": result.system, "action": result.action, "found": result.found,
                  "changed": result.changed, "kept": result.kept, "message": result.message},
            along=[Write(
                """INSERT INTO system_tasks (request_id, system, action, status, found, changed,
                                             kept, datasets, external_id, message, attempt, kept_records)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                   ON CONFLICT (request_id, system, action) DO UPDATE SET
                     status = EXCLUDED.status, found = EXCLUDED.found, changed = EXCLUDED.changed,
                     kept = EXCLUDED.kept, datasets = EXCLUDED.datasets,
                     kept_records = EXCLUDED.kept_records,
                     external_id = coalesce(EXCLUDED.external_id, system_tasks.external_id),
                     message = EXCLUDED.message, attempt = EXCLUDED.attempt, updated_at = now()""",
                (request_id, result.system, result.action, result.status, result.found,
                 result.changed, result.kept, result.datasets, result.external_id, result.message,
                 result.attempt, result.kept_records)), *along,
                   *([journal_cleared(request_id, result.system, result.attempt)]
                     if result.status in ENDS_TASK else [])],
        )
