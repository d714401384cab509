"""B2 latency: one erasure request from `POST /v1/requests` to `completed`.

    .venv/bin/python -m bench.latency [--requests 30] [--runs 3]

On the embedded stack with the OpenDSR demo processor answering at once, one request at a time,
each for a different subject held in all four demo systems. A run is `--requests` requests; its
figures are their median and 95th percentile; the reported figures are the medians over runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench.common import arguments, embedded_stack, load_1min, median, p95, profiled, write_result
from bench.throughput import erasures
from devstack.demo.subjects import demo_subjects


async def main(requests: int, runs: int, results: Path, profile: Path | None) -> None:
    load_before = load_1min()
    everywhere = [s.email for s in demo_subjects()
                  if s.in_crm and s.in_billing and s.in_analytics and s.in_email_marketing]
    async with embedded_stack(opendsr_delay=0.0) as bench:
        await erasures(bench, [everywhere[-1]])  # warm-up: imports, pools, caches
        rows: list[dict[str, Any]] = []
        for run in range(runs):
            load = load_1min()
            with profiled({"worker": bench.pid("worker"), "api": bench.pid("api")}, profile, f"b2-{run + 1}"):
                seconds = [await erasures(bench, [everywhere[(run * requests + i) % (len(everywhere) - 1)]])
                           for i in range(requests)]
            row = {"run": run + 1, "load_1min": load, "requests": requests,
                   "median_seconds": round(median(seconds), 3), "p95_seconds": round(p95(seconds), 3),
                   "seconds": [round(s, 3) for s in seconds]}
            print({k: v for k, v in row.items() if k != "seconds"})
            rows.append(row)
    write_result(
        results, "b2_latency",
        params={"requests_per_run": requests, "runs": runs, "opendsr_completion_delay": 0.0},
        figures={"median_seconds": median([r["median_seconds"] for r in rows]),
                 "p95_seconds": median([r["p95_seconds"] for r in rows]), "target_median_seconds": 1.5},
        runs=rows, load_before=load_before,
    )


if __name__ == "__main__":
    parser = arguments(__doc__)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.runs, args.results, args.profile))
