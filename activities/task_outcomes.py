"""What one action did in one system, kept per request, system, action and staff attempt.

Stored with the evidence of the effect, before a transactional system commits (`committed` false)
and again once the action returned (`committed` true), for every action that changes a system
(erasure, rectification, restriction and its lifting, objection). A retry of the same attempt after
a worker died returns the committed outcome instead of acting again, and one that finds only the
provisional outcome acts again: if it then changes nothing, the earlier attempt's effect did
commit, and its outcome is the true one (never "not found, 0 records" for data that was erased, nor
"0 changed" for a restriction in force). A system without a transaction (a SaaS API) keeps its
provisional outcome before its first request changes anything: its retry may find part of the work
done, and reports both attempts together (`resumed`). An `http` system's retry does not: it carries
on from its run's journal (activities/connectors/http_journal.py), so its counts are the whole run's.
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


def changed_nothing(result: TaskResult) -> bool:
    """A retry that changed nothing: the try before it had made its effect (or there was none)."""
    return not result.changed


def resumed(planned: TaskResult, rest: TaskResult) -> TaskResult:
    """An action in a system without a transaction, retried after an attempt that planned
    `planned` and may have carried out part of it: the retry did `rest` (what was left, and what
    it finds again, such as a held record it minimises once more). Each count is the larger of the
    two; for an erasure, the ledger already holds every record either attempt named."""
    if changed_nothing(rest):  # the plan was carried out in full: "not found" would deny it
        return planned
    datasets = {name: {key: max(planned.datasets.get(name, {}).get(key, 0), rest.datasets.get(name, {}).get(key, 0))
                       for key in {*planned.datasets.get(name, {}), *rest.datasets.get(name, {})}}
                for name in {*planned.datasets, *rest.datasets}}
    return rest.model_copy(update={
        "found": max(planned.found, rest.found), "changed": max(planned.changed, rest.changed),
        "kept": max(planned.kept, rest.kept), "datasets": datasets,
        "kept_records": rest.kept_records or planned.kept_records, "note": rest.note or planned.note})
