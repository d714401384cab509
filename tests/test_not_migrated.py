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

import pytest

from dsrflow.infra.db import create_pool
from dsrflow.infra.migrate import discover, migrate
from policy.model import PolicyError
from tests.support import api_client, settings_env, staff_headers
from workers.dsr_worker import run_worker

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


async def test_a_worker_on_a_policy_that_does_not_load_stops_before_it_connects(settings, tmp_path):
    """The worker reads its policy once, first (workers/dsr_worker.py run_worker): one that does
    not load stops it at once, naming the file, even while Temporal cannot be reached. Before,
    it waited for Temporal and the database, retrying for ever, and failed only once connected."""
    broken = tmp_path / "policy.yaml"
    broken.write_text("controller: [\n")
    unreachable = settings.model_copy(update={"policy_path": broken, "temporal_address": "127.0.0.1:1"})
    with pytest.raises(PolicyError, match="policy.yaml"):
        await asyncio.wait_for(run_worker(unreachable), 10)
