"""PostgreSQL going down at the moment a SaaS task's result is written with the changes its run
made before it stopped (activities/task_results.py `store_task_result`, migration 0049's
`partial_changed`): the result's retry, once the database is back, keeps the count once. Neither
lost (the journal that counted it went with a write that never committed) nor doubled (a write that
committed, its answer lost, written again). The result needing staff once its run's retries ran out,
then staff's resolution, which takes the journal.

PostgreSQL is a server of this test's own (the session's is shared), stopped while the result's
statement is about to go and started again; the run itself is the connector in-process against the
Mailchimp stand-in (tests/test_saas_partial_effects.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from activities import task_results
from activities.task_results import store_task_result
from devstack.postgres import EmbeddedPostgres
from schemas.workflow import TaskResult
from tests.conftest import database_pool, running_postgres
from tests.test_saas_partial_effects import NEEDS_STAFF, _erased_one_of_three, _events, _task
from workers.dsr_worker import activity_context

RESOLVED = "resolved by staff: the other two deleted in Mailchimp's console"


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    async with running_postgres(tmp_path) as server:
        yield server


async def _stored_as_it_goes_down(server: EmbeddedPostgres, monkeypatch: Any, tmp_path: Path, ctx: Any,
                                  rid: str, result: TaskResult) -> None:
    """`store_task_result` with PostgreSQL stopped as its write is about to go (the count read, in the
    result's transaction if it has one): it fails, nothing is stored; then the server is back."""
    real = task_results.append_event

    async def down_first(conn: Any, **write: Any) -> None:
        server.stop()
        await real(conn, **write)

    with monkeypatch.context() as patched:
        patched.setattr(task_results, "append_event", down_first)
        with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
            await store_task_result(ctx, rid, result)
    server.start(tmp_path / "postgres-again.log")
    await server.wait_ready()
    await ctx.pool.expire_connections()


async def test_a_partial_count_written_as_postgresql_goes_down_is_kept_once_it_is_back(
        own_postgres, settings, monkeypatch, tmp_path):
    async with database_pool(own_postgres, "partial_outage") as (url, pool):
        ctx = activity_context(settings.model_copy(update={"database_url": url}), pool)
        rid = await _erased_one_of_three(pool, settings, monkeypatch, tmp_path, "partial-outage")
        needing_staff = TaskResult(system="newsletter", action="erase", status="needs_attention", message=NEEDS_STAFF)
        resolved = TaskResult(system="newsletter", action="erase", status="done", message=RESOLVED)

        await _stored_as_it_goes_down(own_postgres, monkeypatch, tmp_path, ctx, rid, needing_staff)
        assert await pool.fetchval("SELECT count(*) FROM system_tasks WHERE request_id = $1", uuid.UUID(rid)) == 0
        for _ in range(2):  # the workflow's step retried; then again, as if its answer had been lost
            await store_task_result(ctx, rid, needing_staff)
        assert await _task(pool, rid) == {"status": "needs_attention", "changed": 0, "partial_changed": 1,
                                          "message": NEEDS_STAFF}

        await _stored_as_it_goes_down(own_postgres, monkeypatch, tmp_path, ctx, rid, resolved)
        assert (await _task(pool, rid))["status"] == "needs_attention"  # the resolution rolled back whole
        assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(rid)) > 0
        for _ in range(2):
            await store_task_result(ctx, rid, resolved)
        assert await _task(pool, rid) == {"status": "done", "changed": 0, "partial_changed": 1, "message": RESOLVED}
        assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(rid)) == 0
        assert [e["data"]["partial_changed"] for e in await _events(pool, rid, "task.needs_attention")] == [1]
        assert [e["data"]["partial_changed"] for e in await _events(pool, rid, "task.done")] == [1]
