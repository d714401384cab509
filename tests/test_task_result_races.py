"""What a SaaS task keeps when its writes race: a run's journal write against its request's close
(migration 0039), and two tries of one attempt storing the result that ends the task
(activities/task_results.py). Against the database, the race staged by holding one side's
transaction open (the real-process kills are in tests/test_saas_long_runs.py)."""

from __future__ import annotations

import asyncio
import time
import uuid

from activities.connectors.http_journal import Journal
from activities.task_results import store_task_result
from dsrflow.stores.requests_store import set_status
from schemas.requests import RequestStatus
from schemas.workflow import TaskResult
from tests.saas_support import SECRET
from tests.support import stored_request
from workers.dsr_worker import activity_context


async def test_a_journal_write_racing_the_requests_close_leaves_no_row(pool, settings):
    """The request is cancelled (its close's transaction has updated the row, and its trigger has
    deleted the journal's rows, not yet committed) while an attempt's write goes: the write waits
    for the close, reads it, and keeps nothing. Before, it read the request still open, inserted,
    and its row (records as the service listed them, sealed) outlived the close by up to a week."""
    rid = await stored_request(pool, settings, "close-race", "erasure")
    journal = await Journal.open(pool, SECRET, (rid, "newsletter", "erase", 1), time.monotonic() + 60, "config")
    await journal.read("lists", "first", [{"id": "list-1"}], 10)
    async with pool.acquire() as conn:
        closing = conn.transaction()
        await closing.start()
        await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-cancelled", actor="test")
        writing = asyncio.create_task(journal.flush())
        await asyncio.sleep(0.3)
        waited = not writing.done()
        await closing.commit()
    await writing  # a closed request's write drops its rows; the attempt carries on as before
    assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(rid)) == 0
    assert waited


async def test_the_first_result_that_ended_an_attempt_stands_with_its_time(pool, settings):
    """Two tries of one attempt get to its end: the first stores 'done'; the second, later, stores
    the same result, then one counted otherwise (a delete of the first's heard 404). The record
    keeps the first, its time too (the evidence pack's 'when'), and the second is answered with it.
    Before, the same result was stored again: the task's time became the later try's."""
    rid = await stored_request(pool, settings, "two-tries", "erasure")
    ctx = activity_context(settings, pool)
    first = TaskResult(system="newsletter", action="erase", status="done", found=3, changed=3,
                       datasets={"members": {"found": 3, "deleted": 3}})
    assert await store_task_result(ctx, rid, first, by_attempt=True) is None
    stored = await pool.fetchrow("SELECT updated_at, datasets FROM system_tasks WHERE request_id = $1",
                                 uuid.UUID(rid))
    assert await store_task_result(ctx, rid, first, by_attempt=True) is None  # as on record: its own answer
    otherwise = first.model_copy(update={"changed": 2, "datasets": {"members": {"found": 3, "deleted": 2}}})
    answer = await store_task_result(ctx, rid, otherwise, by_attempt=True)
    assert answer is not None and (answer.changed, answer.datasets) == (3, first.datasets)
    after = await pool.fetchrow("SELECT updated_at, datasets FROM system_tasks WHERE request_id = $1",
                                uuid.UUID(rid))
    assert tuple(after) == tuple(stored)
    events = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'task.done'",
                              uuid.UUID(rid))
    assert [(e["data"]["found"], e["data"]["changed"]) for e in events] == [(3, 3)]
