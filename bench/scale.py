"""B3 scale: memory with many open requests, and the staff queue with many closed ones.

    .venv/bin/python -m bench.scale [--open 10000] [--closed 100000] [--runs 3]

On the embedded stack: `--open` requests posted through the API without attestation, so each
workflow sends its verification code and waits (days) for the subject; once every code is out,
the resident memory (RSS) of the worker and of the Temporal server, sampled several times. Then
`--closed` completed requests are added to Postgres (bench/queue_listing.py's seeding) and
`GET /v1/requests` and the console's queue page are timed, per filter, `--calls` times a run:
p95 per run, median over runs.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path
from typing import Any

import psutil

from bench.common import (
    BenchStack,
    arguments,
    embedded_stack,
    load_1min,
    median,
    p95,
    profiled,
    write_result,
)
from bench.queue_listing import seed_queue
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.request_lookup import backfill_lookup_keys

CONCURRENCY = 20
QUERIES = {  # the first page (50 rows) of the queue as staff open it: (path, parameters)
    "all": ("/v1/requests", {}),
    "open": ("/v1/requests", {"status": ["awaiting_verification", "in_progress", "awaiting_approval"]}),
    "overdue": ("/v1/requests", {"overdue": "true"}),
    "type=erasure": ("/v1/requests", {"type": "erasure"}),
    # The console's queue page, rendered whole (its default view: open requests by due date),
    # and the same page filtered to overdue requests.
    "console": ("/console/", {}),
    "console overdue": ("/console/", {"overdue": "true"}),
    # A subject's requests by e-mail address (the hash index of migrations/0025), over the API
    # and in the console's Subject box.
    "search email": ("/v1/requests", {"subject_email": "Subject77@example.com"}),
    "console search email": ("/console/", {"subject": "subject77@example.com"}),
}


async def _open_requests(bench: BenchStack, count: int) -> float:
    limit = asyncio.Semaphore(CONCURRENCY)
    async with await bench.api() as http:
        async def one(n: int) -> None:
            async with limit:
                r = await http.post("/v1/requests", json={
                    "type": "erasure", "subject": {"email": f"scale{n}@example.com"}})
            if r.status_code != 201:
                raise RuntimeError(f"POST /v1/requests answered {r.status_code}: {r.text}")

        start = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(count)))
        return time.perf_counter() - start


async def _until_codes_sent(bench: BenchStack, count: int) -> None:
    while await bench.pool.fetchval(
            "SELECT count(*) FROM sent_letters WHERE purpose = 'verification'") < count:
        await asyncio.sleep(1)


def _temporal_pid() -> int:
    return next(p.pid for p in psutil.Process().children(recursive=True) if p.name() == "temporal")


async def _rss_mb(pid: int, samples: int = 5) -> float:
    values = []
    for _ in range(samples):
        values.append(psutil.Process(pid).memory_info().rss / 2**20)
        await asyncio.sleep(1)
    return round(median(values), 1)


async def _listing_p95(bench: BenchStack, calls: int) -> dict[str, float]:
    async with await bench.api() as http:
        p95s = {}
        for name, (path, params) in QUERIES.items():
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                r = await http.get(path, params=params)
                times.append((time.perf_counter() - start) * 1000)
                r.raise_for_status()
            p95s[name] = round(p95(times), 1)
        return p95s


async def main(open_count: int, closed: int, calls: int, runs: int, results: Path,
               profile: Path | None, samples: int = 5) -> None:
    load_before = load_1min()
    async with embedded_stack(demo=False) as bench:
        worker, temporal = bench.pid("worker"), _temporal_pid()
        idle = {"worker_rss_mb": await _rss_mb(worker, samples), "temporal_rss_mb": await _rss_mb(temporal, samples)}
        start = time.perf_counter()
        with profiled({"worker": worker, "api": bench.pid("api")}, profile, "b3-open"):
            posted = await _open_requests(bench, open_count)
            await _until_codes_sent(bench, open_count)
        waiting = time.perf_counter() - start
        await asyncio.sleep(samples)  # let the last workflow tasks finish
        memory = {"worker_rss_mb": await _rss_mb(worker, samples), "temporal_rss_mb": await _rss_mb(temporal, samples),
                  "load_1min": load_1min()}
        print(f"{open_count} open: posted in {posted:.0f} s, all waiting after {waiting:.0f} s; {memory}")

        await seed_queue(bench.pool, closed, date.today(), open_every=0)
        await backfill_lookup_keys(bench.pool, load_secret_key(bench.settings))  # as `dsrflow migrate` would
        await bench.pool.execute("ANALYZE dsr_requests")
        rows: list[dict[str, Any]] = []
        await _listing_p95(bench, 5)  # warm-up
        for run in range(runs):
            load = load_1min()
            row = {"run": run + 1, "load_1min": load, "calls": calls,
                   "p95_ms": await _listing_p95(bench, calls)}
            print(row)
            rows.append(row)
    p95_ms = {name: median([r["p95_ms"][name] for r in rows]) for name in QUERIES}
    write_result(
        results, "b3_scale",
        params={"open_requests": open_count, "closed_requests": closed, "calls_per_query": calls,
                "runs": runs, "api_concurrency": CONCURRENCY, "rss_samples": samples},
        figures={"worker_rss_mb": memory["worker_rss_mb"], "temporal_rss_mb": memory["temporal_rss_mb"],
                 "idle": idle, "post_seconds": round(posted, 1), "all_waiting_seconds": round(waiting, 1),
                 "list_p95_ms": p95_ms, "list_p95_ms_worst": max(p95_ms.values()),
                 "target_worker_rss_mb": 400, "target_p95_ms": 100},
        runs=rows, load_before=load_before,
        notes=[f"RSS: median of {samples} samples a second apart, once every verification code was sent",
               "console: the whole queue page (GET /console/, 50 rows) with a bearer token"],
    )


if __name__ == "__main__":
    parser = arguments(__doc__)
    parser.add_argument("--open", type=int, default=10_000, dest="open_count")
    parser.add_argument("--closed", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=100, help="GETs per filter and run")
    parser.add_argument("--samples", type=int, default=5,
                        help="RSS samples a second apart, after as many seconds for the last workflow tasks")
    args = parser.parse_args()
    asyncio.run(main(args.open_count, args.closed, args.calls, args.runs, args.results, args.profile, args.samples))
