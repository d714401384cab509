"""B1 throughput: erasure requests completed per second against the engine's ceiling.

    .venv/bin/python -m bench.throughput [--requests 300] [--runs 3] [--workers 1]

On the embedded stack (bench/common.py), each run posts `--requests` erasures (identity attested,
one demo subject each) to `POST /v1/requests` and waits for every workflow to complete; then, in
the same run, as many skeleton workflows (bench/skeleton.py) with the shape counted from a real
request's history, on a worker with the same settings. The figure is the ratio of the two rates.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench.common import (
    BenchStack,
    arguments,
    embedded_stack,
    load_1min,
    median,
    profiled,
    write_result,
)
from bench.skeleton import TASK_QUEUE, Shape, SkeletonWorkflow
from devstack.demo.subjects import demo_subjects
from devstack.processes import spawn, stop
from schemas.workflow import workflow_id_for

CONCURRENCY = 20  # API calls in flight: a busy front office, not a flood


# Local activities that run beside the children: a `sql` system's task (workflows/task_fanout.py).
ALONGSIDE = {"run_system_action"}


def _local_activity_type(event: Any) -> str:
    """A local activity's type, from its marker's details (the SDK's JSON)."""
    data = event.marker_recorded_event_attributes.details["data"].payloads[0].data
    return str(json.loads(data).get("activity_type", ""))


async def shape_of(client: Client, workflow_id: str) -> Shape:
    """Count what a finished workflow (and, recursively, its children) did, from its history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    # Activities scheduled by the workflow task that starts the first child run beside the children.
    with_children = next((e.start_child_workflow_execution_initiated_event_attributes.workflow_task_completed_event_id
                          for e in history.events
                          if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED), None)
    before = after = alongside = local_before = local_after = local_alongside = timers = signals = updates = 0
    patches = upserts_before = upserts_after = 0
    children: list[str] = []
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.workflow_task_completed_event_id == with_children:
                alongside += 1
            elif children:
                after += 1
            else:
                before += 1
        elif (kind == EventType.EVENT_TYPE_MARKER_RECORDED
              and event.marker_recorded_event_attributes.marker_name == "core_patch"):
            patches += 1
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            if children:
                upserts_after += 1
            else:
                upserts_before += 1
        elif (kind == EventType.EVENT_TYPE_MARKER_RECORDED
              and event.marker_recorded_event_attributes.marker_name == "core_local_activity"):
            if _local_activity_type(event) in ALONGSIDE:
                local_alongside += 1
            elif children:
                local_after += 1
            else:
                local_before += 1
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            children.append(event.start_child_workflow_execution_initiated_event_attributes.workflow_id)
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timers += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signals += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            updates += 1
    kids = [await shape_of(client, child) for child in children]
    kids.sort(key=lambda s: (s.activities_before, s.timers, s.signals, s.updates))
    return Shape(activities_before=before, activities_after=after, alongside=alongside, local_before=local_before,
                 local_after=local_after, local_alongside=local_alongside, timers=timers, signals=signals, updates=updates,
                 patches=patches, upserts_before=upserts_before, upserts_after=upserts_after, children=kids,
                 events=len(history.events) + sum(k.events for k in kids),
                 bytes=sum(e.ByteSize() for e in history.events) + sum(k.bytes for k in kids))


def pad_like(shape: Shape, real: Shape, skeleton: Shape) -> None:
    """Give `shape` (and its children) the padding that makes an unpadded skeleton's history
    (`skeleton`) weigh what the real one's (`real`) does: the difference in bytes of each workflow's
    own events, spread over its activities' inputs and results (local activities record only their
    result) and its own result."""
    own = real.bytes - sum(k.bytes for k in real.children) - (skeleton.bytes - sum(k.bytes for k in skeleton.children))
    slots = 2 * (shape.activities_before + shape.activities_after + shape.alongside) \
        + shape.local_before + shape.local_after + shape.local_alongside + 1
    shape.padding = max(0, own // slots)
    for child, real_child, skeleton_child in zip(shape.children, real.children, skeleton.children, strict=True):
        pad_like(child, real_child, skeleton_child)


async def erasures(bench: BenchStack, emails: list[str]) -> float:
    """Seconds from the first POST until the last of the requests completed."""
    limit = asyncio.Semaphore(CONCURRENCY)
    async with await bench.api() as http:
        async def one(email: str) -> None:
            async with limit:
                r = await http.post("/v1/requests", json={
                    "type": "erasure", "identity_attested": True, "subject": {"email": email}})
            if r.status_code != 201:
                raise RuntimeError(f"POST /v1/requests answered {r.status_code}: {r.text}")
            state = await bench.client.get_workflow_handle(workflow_id_for(r.json()["id"])).result()
            if state["status"] != "completed":
                raise RuntimeError(f"request {r.json()['id']} ended {state['status']}")

        start = time.perf_counter()
        await asyncio.gather(*(one(email) for email in emails))
        return time.perf_counter() - start


async def _skeletons(client: Client, shape: Shape, count: int, run: str) -> float:
    """The same: started as the API starts requests (CONCURRENCY at a time), awaited to the end."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(n: int) -> None:
        async with limit:
            handle: WorkflowHandle = await client.start_workflow(
                SkeletonWorkflow.run, shape, id=f"skeleton-{run}-{n}", task_queue=TASK_QUEUE)
        await handle.result()

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return time.perf_counter() - start


def _outside_temporal(cpu: dict[str, float]) -> float:
    return sum(ms for role, ms in cpu.items() if role != "temporal")


def _per_request(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    return {role: round((after[role] - before.get(role, 0.0)) * 1000 / count)
            for role in after if after[role] - before.get(role, 0.0) >= 0.05}


async def main(requests: int, runs: int, workers: int, results: Path, profile: Path | None) -> None:
    load_before = load_1min()
    emails = [s.email for s in demo_subjects()]
    async with embedded_stack(opendsr_delay=0.0) as bench:
        skeleton_workers = [spawn([sys.executable, "-m", "bench.skeleton_worker"],
                                  log_path=bench.home / "logs" / f"skeleton_worker-{n + 1}.log")
                            for n in range(workers)]
        more = await bench.add_workers(workers - 1)
        try:
            # One real request first: its history gives the shape, and it warms every cache.
            await erasures(bench, ["ada@example.com"])
            first = await bench.pool.fetchval("SELECT id FROM dsr_requests LIMIT 1")
            real_shape = await shape_of(bench.client, workflow_id_for(str(first)))
            await _skeletons(bench.client, real_shape, 1, "warmup")
            # Then padded to weigh what the request's history weighs, and counted again.
            pad_like(real_shape, real_shape, await shape_of(bench.client, "skeleton-warmup-0"))
            await _skeletons(bench.client, real_shape, 1, "padded")
            skeleton_shape = await shape_of(bench.client, "skeleton-padded-0")
            print(f"real request: {real_shape.totals()}, {real_shape.events} history events, {real_shape.bytes} bytes; "
                  f"skeleton: {skeleton_shape.totals()}, {skeleton_shape.events} events, {skeleton_shape.bytes} bytes")
            if skeleton_shape.totals() != real_shape.totals():
                raise RuntimeError("the skeleton's history does not have the real request's shape")
            if abs(skeleton_shape.bytes - real_shape.bytes) > 0.1 * real_shape.bytes:
                raise RuntimeError("the skeleton's history does not weigh what the real request's does")
            rows: list[dict[str, Any]] = []
            for run in range(runs):
                batch = [emails[(3 + run * requests + i) % len(emails)] for i in range(requests)]
                load = load_1min()

                async def real_half(run: int = run, batch: list[str] = batch) -> tuple[float, dict[str, float]]:
                    cpu = bench.cpu_seconds()
                    with profiled({"worker": bench.pid("worker"), "api": bench.pid("api"),
                                   "processor": bench.pid("demo e-mail marketing service")}, profile,
                                  f"b1-real-{run + 1}"):
                        seconds = await erasures(bench, batch)
                    return seconds, _per_request(cpu, bench.cpu_seconds(), requests)

                async def skeleton_half(run: int = run) -> tuple[float, dict[str, float]]:
                    cpu = bench.cpu_seconds()
                    with profiled({"worker": skeleton_workers[0].pid}, profile, f"b1-skeleton-{run + 1}"):
                        seconds = await _skeletons(bench.client, real_shape, requests, str(run))
                    return seconds, _per_request(cpu, bench.cpu_seconds(), requests)

                # The dev server slows a little as its database grows: whichever half runs second
                # pays for it, so the halves take turns going first.
                if run % 2 == 0:
                    (real, cpu_real), (ceiling, cpu_skeleton) = await real_half(), await skeleton_half()
                else:
                    (ceiling, cpu_skeleton), (real, cpu_real) = await skeleton_half(), await real_half()
                row = {"run": run + 1, "first": "real" if run % 2 == 0 else "skeleton",
                       "load_1min": load, "requests": requests,
                       "real_seconds": round(real, 2), "skeleton_seconds": round(ceiling, 2),
                       "real_per_second": round(requests / real, 2),
                       "skeleton_per_second": round(requests / ceiling, 2),
                       "ratio": round(ceiling / real, 3),
                       "cpu_ms_per_request": cpu_real, "skeleton_cpu_ms_per_request": cpu_skeleton,
                       "own_cpu_ms_per_request": sum(cpu_real.values()) - sum(cpu_skeleton.values()),
                       "own_cpu_outside_temporal_ms_per_request": _outside_temporal(cpu_real)
                       - _outside_temporal(cpu_skeleton)}
                print(row)
                rows.append(row)
        finally:
            for proc in [*skeleton_workers, *more]:
                stop(proc)
    write_result(
        results, "b1_throughput" if workers == 1 else f"b1_throughput_{workers}_workers",
        params={"requests": requests, "runs": runs, "workers": workers, "api_concurrency": CONCURRENCY,
                "opendsr_completion_delay": 0.0},
        figures={"real_per_second": median([r["real_per_second"] for r in rows]),
                 "skeleton_per_second": median([r["skeleton_per_second"] for r in rows]),
                 "ratio": median([r["ratio"] for r in rows]), "target_ratio": 0.7,
                 "own_cpu_ms_per_request": median([r["own_cpu_ms_per_request"] for r in rows]),
                 "own_cpu_outside_temporal_ms_per_request":
                     median([r["own_cpu_outside_temporal_ms_per_request"] for r in rows]),
                 "shape": real_shape.totals(), "history_events_per_request": real_shape.events,
                 "skeleton_history_events": skeleton_shape.events,
                 "history_bytes_per_request": real_shape.bytes, "skeleton_history_bytes": skeleton_shape.bytes},
        runs=rows, load_before=load_before,
        notes=["ratio = skeleton seconds / real seconds for the same number of requests, per run; "
               "the real half goes first in odd runs, the skeleton's in even runs",
               "the skeleton mirrors activities, child workflows, timers, signals, updates, patch markers, "
               "search-attribute upserts and the history's size in bytes (the last three since 2026-12-01 "
               "16:30 UTC: history_bytes_per_request against skeleton_history_bytes)",
               "own_cpu_ms_per_request = every process's CPU per request minus every process's CPU per "
               "skeleton workflow: the work beyond the engine's, the part our changes can move (the ratio "
               "also carries the engine's own cost, which the machine's phase moves)",
               "own_cpu_outside_temporal_ms_per_request = the same without the Temporal dev server's CPU, "
               "which differs between the two halves of one run by up to 20 ms for the same events "
               "(its database grows): the steadier measure of our own work"],
    )


if __name__ == "__main__":
    parser = arguments(__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes for the requests (and as many for the skeleton)")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.runs, args.workers, args.results, args.profile))
