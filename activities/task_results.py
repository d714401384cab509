"""A system's result for a request as its record keeps it (`system_tasks`, what the queue, the
evidence pack and the response letter read): stored and audited in one statement, interim or final,
by the task's own activities, by the workflow (a task needing staff, a processor's callback) and by
staff's resolution of a task. (activities/task_outcomes.py keeps what one attempt did, for its retry.)

A result that ends the task (http_journal.ENDS_TASK) also ends its http runs' journals
(activities/connectors/http_journal.py), whoever records it: the rows hold what the run read of the
subject, sealed, and nothing goes on from them once the task is over. It is stored after the lock
that the runs' writes hold while they write (`ending_lock`), so that an attempt still running (staff
resolved the task meanwhile) keeps no row after it and stops; that attempt then answers with the
result on record (`result_on_record`) rather than one of its own. Its own result, stored after its
run's last write had found the task not ended, is refused the same way (`by_attempt`): a resolution
stored between the two stands.

Two tries of one attempt (a worker cut off from Temporal runs on while the retry runs elsewhere) may
both get to the end: the first result stored that ends the task stands, whole. A later try's, the
same in every stored field, writes nothing (the record's time stays the first's: the evidence pack
shows it as when the system's task ended); a different one (counted otherwise: a delete of the first
try's heard 404) is refused, and the later try answers with the record. The audit event of the
status is one per attempt (its key), with the first's counts, so the record cannot say otherwise.

A task that ends without success must not read as having changed nothing when its run changed part
of what it was asked to (1 of 3 records erased, then its retries ran out; staff resolved it by
hand; its request closed mid-run): its record keeps what the journal counted (`partial_changed`),
read before the journal goes, and the letters, the request page and the evidence pack say it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import asyncpg

from activities.connectors.http_journal import ENDS_TASK, ending_lock, journal_cleared
from activities.context import ActivityContext
from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.writes import Write
from schemas.workflow import TaskResult


async def store_task_result(ctx: ActivityContext, request_id: str, result: TaskResult,
                            *, along: Sequence[Write] = (), by_attempt: bool = False,
                            journaled: bool = True) -> TaskResult | None:
    """A system's (interim or final) result for a request, stored and audited in one statement,
    with the `along` writes; one that ends the task also takes its journals, after `ending_lock`
    in the same transaction (BEGIN, the lock and COMMIT: three more round trips, once a task).
    `by_attempt`: the result of the attempt's own run (activities/fanout.py), which may still run
    when staff resolve its task. It is stored only if no other result of this attempt or a later
    one ended the task, read after the same lock, so that a resolution is either seen here or stored
    after this result; otherwise nothing is stored (nor audited) and that result on record is
    returned. None: stored, or on record already as this result says it (stored by a try of the
    attempt that died before answering, or by another try that found the same): the first stands,
    with its time (the evidence's), not overwritten by a later try's. Not `journaled`: a `sql`
    system's task, whose runs keep no journal (nothing to count or clear, no run's write to order
    the result after) and which takes no resolution while it runs (fanout.py): one statement, no
    transaction or lock around it (three round trips on every erasure's path for each such system)."""
    ends = result.status in ENDS_TASK and journaled
    # What the task's runs changed before it stopped, unless this is the run's own success (its
    # counts are the whole run's): a result needing staff, staff's resolution, the record of a task
    # its request's close stopped. Not asked of a pending result, which keeps what is on record.
    partial = journaled and result.status != "pending" and not (ends and by_attempt)
    counted = 0
    async with ctx.pool.acquire() as conn:
        locked = ends or by_attempt
        transaction: AbstractAsyncContextManager[Any] = conn.transaction() if locked else nullcontext()
        async with transaction:
            if locked:
                counted = await ending_lock(conn, request_id, result.system, result.action, result.attempt)
            elif partial:  # no run in flight: its attempt's retries ran out, or its request closed
                counted = await conn.fetchval("SELECT http_run_partial($1, $2, $3, $4, false)",
                                              request_id, result.system, result.action, result.attempt)
            if by_attempt:
                record = await result_on_record(conn, request_id, result.system, result.action, result.recipient)
                if record is not None and record.status in ENDS_TASK and record.attempt >= result.attempt:
                    # The first result that ended the task stands, with its time: an identical one
                    # (a try that died after storing it, or two tries finding the same) answers as
                    # stored; any other (a resolution, a try that counted otherwise) is the answer.
                    return None if _told(record) == _told(result) else record
            # Changes the result's own counts leave out (a run needing staff counts what it did).
            before = counted if partial and counted > result.changed else None
            writes = [_record(request_id, result, before), *along,
                      *([journal_cleared(request_id, result.system, result.attempt)] if ends else [])]
            await append_event(
                conn,
                event_key=f"{request_id}:task:{result.system}:{result.action}:{result.attempt}:{result.status}",
                request_id=request_id, event_type=f"task.{result.status}", actor="workflow",
                data={"system": result.system, "action": result.action, "found": result.found,
                      "changed": result.changed, "kept": result.kept, "message": result.message,
                      **({"partial_changed": before} if before is not None else {})},
                along=writes)
    # Stored, and its caller (the attempt, or the workflow's step) not yet answered.
    failpoint("task-result-stored", f"{result.system}:{result.status}:{'attempt' if by_attempt else 'workflow'}")
    return None


def _told(result: TaskResult) -> tuple[object, ...]:
    """What the record keeps of a result, to tell one stored result from another of the same
    attempt (a resolution says who resolved it and why in its message); not its external id, which
    the record keeps from the first that had one."""
    return (result.attempt, result.status, result.found, result.changed, result.kept, result.message,
            result.datasets, result.kept_records)


def _record(request_id: str, result: TaskResult, partial_changed: int | None) -> Write:
    return Write(
        """INSERT INTO system_tasks (request_id, system, action, status, found, changed,
                                     kept, datasets, external_id, message, attempt, kept_records, partial_changed)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (request_id, system, action) DO UPDATE SET
             status = EXCLUDED.status, found = EXCLUDED.found, changed = EXCLUDED.changed,
             kept = EXCLUDED.kept, datasets = EXCLUDED.datasets,
             kept_records = EXCLUDED.kept_records,
             external_id = coalesce(EXCLUDED.external_id, system_tasks.external_id),
             message = EXCLUDED.message, attempt = EXCLUDED.attempt, updated_at = now(),
             -- a pending result (a job asked, a note of its wait) keeps its attempt's count
             partial_changed = CASE WHEN EXCLUDED.status = 'pending' AND system_tasks.attempt = EXCLUDED.attempt
                                    THEN system_tasks.partial_changed ELSE EXCLUDED.partial_changed END""",
        (request_id, result.system, result.action, result.status, result.found,
         result.changed, result.kept, result.datasets, result.external_id, result.message,
         result.attempt, result.kept_records, partial_changed))


async def result_on_record(db: asyncpg.Pool | asyncpg.Connection, request_id: str, system: str, action: str,
                           recipient: str | None) -> TaskResult | None:
    """The task's result as `store_task_result` last stored it (no `note`: the record keeps none)."""
    row = await db.fetchrow(
        """SELECT status, found, changed, kept, datasets, external_id, message, attempt, kept_records
             FROM system_tasks WHERE request_id = $1 AND system = $2 AND action = $3""",
        request_id, system, action)
    return None if row is None else TaskResult(system=system, action=action, recipient=recipient, **dict(row))
