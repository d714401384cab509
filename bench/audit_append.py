"""Audit appends per second, with 1 and with 16 concurrent appenders, each on requests of its own.

Only `migrate` and `append_event` are used, so the same script measures the code of any commit
(BENCHMARKS.md compares the per-request chains with the global chain before them). Runs its own
embedded PostgreSQL in a temporary directory:

    python -m bench.audit_append [--seconds 5] [--runs 3]
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import arguments, load_1min, median, write_result
from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port
from dsrflow.domain.audit import append_event
from dsrflow.infra.db import create_pool
from dsrflow.infra.migrate import migrate

APPENDERS = (1, 16)


async def _appends_per_second(pool: asyncpg.Pool, appenders: int, seconds: float) -> float:
    deadline = time.monotonic() + seconds
    counts = [0] * appenders

    async def appender(slot: int) -> None:
        request_id = str(uuid.uuid4())
        while time.monotonic() < deadline:
            if counts[slot] % 20 == 0:  # a request's worth of events, then the next request
                request_id = str(uuid.uuid4())
            async with pool.acquire() as conn:
                await append_event(conn, event_key=f"{request_id}:{counts[slot]}", request_id=request_id,
                                   event_type="bench.step", actor="bench", data={"n": counts[slot]})
            counts[slot] += 1

    started = time.monotonic()
    await asyncio.gather(*(appender(slot) for slot in range(appenders)))
    return sum(counts) / (time.monotonic() - started)


async def run(seconds: float, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data", free_port())
        server.start(Path(tmp) / "postgres.log")
        try:
            await server.wait_ready()
            await server.ensure_database("bench")
            await migrate(server.url("bench"))
            pool = await create_pool(server.url("bench"), min_size=max(APPENDERS), max_size=max(APPENDERS))
            try:
                per_run: dict[int, list[float]] = {n: [] for n in APPENDERS}
                for _ in range(runs):
                    for n in APPENDERS:
                        per_run[n].append(await _appends_per_second(pool, n, seconds))
                        print(f"{n:>2} appender(s): {per_run[n][-1]:.0f} appends/s", flush=True)
                events = await pool.fetchval("SELECT count(*) FROM audit_events")
            finally:
                await pool.close()
        finally:
            server.stop()
    return {"per_run": per_run, "events": events}


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument("--name", default="audit_append", help="name of the result file")
    args = parser.parse_args()
    load_before = load_1min()
    result = asyncio.run(run(args.seconds, args.runs))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    figures = {f"appends_per_s_{n}": round(median(values)) for n, values in result["per_run"].items()}
    write_result(args.results, args.name, params={"seconds": args.seconds, "runs": args.runs, "commit": commit},
                 figures=figures, runs=[{"appenders": n, "appends_per_s": [round(v) for v in values]}
                                        for n, values in result["per_run"].items()],
                 load_before=load_before, notes=[f"{result['events']} events appended in all"])
    print(figures)


if __name__ == "__main__":
    main()
