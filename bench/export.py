"""B4 export: an access package for a subject with 1,000,000 analytics page events, against
`COPY (SELECT ...) TO STDOUT WITH CSV` of the same rows.

    .venv/bin/python -m bench.export [--events 1000000] [--runs 3] [--storage s3]

An embedded PostgreSQL with the demo databases; tracked@example.com (only in analytics) gets
`--events` page events. Each run builds the package (activities/packages.py, the production
activity) in a process of its own, whose peak RSS is its `ru_maxrss`, then COPYs the rows to a
file. The figures: median build seconds, median COPY seconds, their ratio, median peak RSS.
`--storage s3` keeps the package in a bucket instead of DSRFLOW_HOME: moto's S3 server (the test
extras') on loopback stands in for the store, and the result is `b4_export_s3`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.testing import ActivityEnvironment

from activities.fanout import FanoutActivities
from bench.common import arguments, bench_policy, load_1min, median, write_result
from bench.s3_stand_in import moto_server
from devstack.demo.sql_systems import ensure_demo_databases
from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port
from dsrflow.crypto.keys import load_secret_key
from dsrflow.infra.db import create_pool
from dsrflow.infra.migrate import migrate
from dsrflow.settings import load_settings
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.workflow import Plan, StartRequest
from workers.dsr_worker import activity_context

SUBJECT = "tracked@example.com"  # in analytics only (devstack/demo/subjects.py)
USER_ID = "C-000002"
COPY_SQL = ("SELECT id, user_id, client_id, ip, device_id, url, referrer, occurred_at, restricted "
            "FROM page_events WHERE user_id = $1 ORDER BY id")


async def _seed_events(url: str, events: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO page_events (user_id, client_id, ip, device_id, url, referrer, occurred_at)
               SELECT $1, 'GA1.1.1234567890.1700000000', '81.2.3.4', 'a1b2c3d4e5f60718',
                      'https://onetagger.com/pricing?page=' || n, 'https://www.google.com/',
                      now() - n * interval '1 minute'
               FROM generate_series(1, $2::int) AS n""", USER_ID, events)
        await conn.execute("ANALYZE page_events")
    finally:
        await conn.close()


async def _plan(pool: asyncpg.Pool) -> Plan:
    """The request and its plan as the workflow would make them, on the SQL systems only (the
    OpenDSR processor is not running here, and holds nothing of this subject)."""
    settings = load_settings()
    row, _ = await create_request(
        pool, NewRequest(type="access", subject={"email": SUBJECT}, identity_attested=True),
        loaded_policy=load_policy(settings.policy_path), secret=load_secret_key(settings), actor="bench", idempotency_key=None)
    ctx = activity_context(settings, pool)
    plan = await ActivityEnvironment().run(
        FanoutActivities(ctx).plan_request,
        StartRequest(request_id=str(row["id"]), policy_version=row["policy_version"]))
    return plan.model_copy(update={"tasks": [t for t in plan.tasks if t.connector == "sql"]})


async def _copy(url: str, path: Path) -> float:
    conn = await asyncpg.connect(url)
    try:
        start = time.perf_counter()
        await conn.copy_from_query(COPY_SQL, USER_ID, output=path, format="csv")
        return time.perf_counter() - start
    finally:
        await conn.close()


@contextlib.contextmanager
def _bucket(home: Path) -> Iterator[dict[str, str]]:
    """moto's S3 server on loopback with a bucket: the settings that put packages there."""
    with moto_server(home, "dsrflow-bench") as endpoint:
        yield {"DSRFLOW_STORAGE": "s3", "DSRFLOW_S3_ENDPOINT": endpoint, "DSRFLOW_S3_BUCKET": "dsrflow-bench",
               "DSRFLOW_S3_REGION": "us-east-1", "DSRFLOW_S3_ACCESS_KEY_ID": "bench",
               "DSRFLOW_S3_SECRET_ACCESS_KEY": "bench"}


async def main(events: int, runs: int, results: Path, profile: Path | None, storage: str) -> None:
    load_before = load_1min()
    with tempfile.TemporaryDirectory(prefix="dsrflow-bench-") as tmp, contextlib.ExitStack() as stack:
        home = Path(tmp)
        if storage == "s3":
            os.environ.update(stack.enter_context(_bucket(home)))
        server = EmbeddedPostgres(home / "pg", free_port())
        server.start(home / "postgres.log")
        try:
            await server.wait_ready()
            await server.ensure_database("dsrflow")
            os.environ.update({"DSRFLOW_HOME": str(home), "DSRFLOW_DATABASE_URL": server.url("dsrflow"),
                               "DSRFLOW_POLICY": str(bench_policy(home / "policy.yaml"))})
            await migrate(server.url("dsrflow"))
            await ensure_demo_databases(server, server.url)
            await _seed_events(server.url("analytics"), events)
            pool = await create_pool(server.url("dsrflow"))
            plan = await _plan(pool)
            rows: list[dict[str, Any]] = []
            for run in range(runs):
                await pool.execute("DELETE FROM packages WHERE request_id = $1", plan.request_id)
                load = load_1min()
                command = [sys.executable, "-m", "bench.export_build", plan.model_dump_json()]
                if profile:  # py-spy's collapsed stacks of the build, for bench/profile_top.py
                    profile.mkdir(parents=True, exist_ok=True)
                    command = [str(Path(sys.executable).with_name("py-spy")), "record", "-r", "50", "-f", "raw",
                               "-o", str(profile / f"b4-build-{run + 1}.txt"), "--", *command]
                child = subprocess.run(command, check=True, capture_output=True, text=True)
                # The build's JSON line is its last; py-spy, when profiling, prints its own after it.
                build = json.loads([line for line in child.stdout.splitlines() if line.startswith("{")][-1])
                copy = await _copy(server.url("analytics"), home / "copy.csv")
                row = {"run": run + 1, "load_1min": load, **build, "copy_seconds": round(copy, 2),
                       "copy_bytes": (home / "copy.csv").stat().st_size,
                       "ratio": round(build["seconds"] / copy, 2)}
                print(row)
                rows.append(row)
            await pool.close()
        finally:
            server.stop()
    write_result(
        results, "b4_export" if storage == "local" else "b4_export_s3",
        params={"events": events, "runs": runs, "storage": storage},
        figures={"build_seconds": median([r["seconds"] for r in rows]),
                 "copy_seconds": median([r["copy_seconds"] for r in rows]),
                 "ratio": median([r["ratio"] for r in rows]),
                 "peak_rss_mb": median([r["peak_rss_mb"] for r in rows]),
                 "target_ratio": 3.5, "target_peak_rss_mb": 150},
        runs=rows, load_before=load_before,
        notes=["ratio = build seconds / COPY seconds, per run; peak RSS is the building process's "
               "ru_maxrss, interpreter and imports included"],
    )


if __name__ == "__main__":
    parser = arguments(__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--storage", choices=["local", "s3"], default="local",
                        help="where the package goes (DSRFLOW_STORAGE); s3: a moto server on loopback")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.runs, args.results, args.profile, args.storage))
