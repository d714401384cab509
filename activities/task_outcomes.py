"""What one action did in one system, kept per request, system, action and staff attempt.

Stored with the evidence of the effect, before a transactional system commits (`committed` false)
and again once the action returned (`committed` true). A retry of the same attempt after a worker
died returns the committed outcome instead of acting again, and one that finds only the provisional
outcome acts again: if the system then has nothing left to do, the earlier attempt's effect did
commit, and its outcome is the true one (never "not found, 0 records" for data that was erased).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from dsrflow.infra.writes import Write
from schemas.workflow import TaskInput, TaskResult


@dataclass(frozen=True)
class StoredOutcome:
    result: TaskResult
    committed: bool


def _key(task: TaskInput) -> tuple[str, str, str, int]:
    return task.request_id, *outcome_key(task)


# The stored outcome of a task, as an SQL expression over the task's request id ($1) and the rest
# of its key ($2-$4, `outcome_key`), to read along with the request (requests_store.get_request_with).
STORED_OUTCOME = ("(SELECT jsonb_build_object('outcome', outcome, 'committed', committed) FROM task_outcomes"
                  " WHERE request_id = $1 AND system = $2 AND action = $3 AND attempt = $4)")


def outcome_key(task: TaskInput) -> tuple[str, str, int]:
    return task.task.system, task.task.action, task.attempt


def stored_outcome(found: dict | None) -> StoredOutcome | None:
    """What STORED_OUTCOME read."""
    if found is None:
        return None
    return StoredOutcome(TaskResult.model_validate(found["outcome"]), found["committed"])


def outcome_write(task: TaskInput, result: TaskResult, *, committed: bool) -> Write:
    return Write(
        """INSERT INTO task_outcomes (request_id, system, action, attempt, outcome, committed)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (request_id, system, action, attempt) DO UPDATE
             SET outcome = EXCLUDED.outcome, committed = EXCLUDED.committed, stored_at = now()""",
        (*_key(task), result.model_dump(mode="json"), committed))


async def save_outcome(conn: asyncpg.Pool | asyncpg.Connection, task: TaskInput, result: TaskResult, *,
                       committed: bool) -> None:
    await outcome_write(task, result, committed=committed).execute(conn)


def did_nothing(result: TaskResult) -> bool:
    return not (result.found or result.changed or result.kept)
