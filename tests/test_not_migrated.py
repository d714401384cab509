"""A worker or an API on a database this version's migrations have not reached (an upgrade
started before `dsrflow migrate`, a compose file without its migrate step): the worker refuses
to start, saying to run `dsrflow migrate`, and `/healthz` names the database as the failing
component with the same words. Before, both started and every step or page failed on a missing
table: the API answered 500 everywhere, `/healthz` included."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from dsrflow.infra.db import create_pool
from dsrflow.infra.migrate import discover, migrate
from tests.support import api_client, settings_env, staff_headers

REPO = Path(__file__).resolve().parents[1]


async def test_a_database_behind_the_code_is_named_by_health_and_refused_by_the_worker(
        postgres, settings, dev_server, task_queue):
    name = f"behind_{uuid.uuid4().hex[:10]}"
    await postgres.ensure_database(name)
    behind = postgres.url(name)
    await migrate(behind, before=discover()[-1].version)  # the version before this one's schema
    stale = settings.model_copy(update={"database_url": behind})
    behind_pool = await create_pool(behind, min_size=1, max_size=2)
    try:
        admin = await staff_headers(behind_pool, "admin")
    finally:
        await behind_pool.close()

    async with api_client(stale, dev_server.client, task_queue) as http:
        assert (await http.get("/healthz")).json() == {"status": "unavailable"}  # anyone: no detail
        r = await http.get("/healthz", headers=admin)
    assert r.status_code == 503 and r.json()["failing"] == ["postgres"], r.text
    assert "migration(s) this version needs and has not applied" in r.json()["components"]["postgres"]
    assert "run `dsrflow migrate` first" in r.json()["components"]["postgres"]

    env = {**os.environ, **settings_env(stale), "TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
           "DSRFLOW_WORKER_METRICS_ADDRESS": "off"}
    worker = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "cli.main", "worker"], cwd=REPO,
                                     env=env, capture_output=True, text=True, timeout=120)
    assert worker.returncode == 1, worker.stderr[-2000:]
    assert "error: the database has" in worker.stderr and "run `dsrflow migrate` first" in worker.stderr
    assert "Traceback" not in worker.stderr

    name = f"empty_{uuid.uuid4().hex[:10]}"
    await postgres.ensure_database(name)  # never migrated: not even the rate limit's table
    async with api_client(settings.model_copy(update={"database_url": postgres.url(name)}),
                          dev_server.client, task_queue) as http:
        r = await http.get("/healthz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable"}, r.text

    await migrate(behind)  # once migrated, health is whole again
    async with api_client(stale, dev_server.client, task_queue) as http:
        assert (await http.get("/healthz")).status_code == 200
