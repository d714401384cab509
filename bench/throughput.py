"""B1 throughput: erasure requests completed per second against the engine's ceiling.

    .venv/bin/python -m bench.throughput [--requests 300] [--runs 3] [--slices 3] [--workers 1]

On the embedded stack (bench/common.py), each run posts `--requests` erasures (identity attested,
one demo subject each) to `POST /v1/requests` and waits for every workflow to complete, and, in the
same run, starts as many skeleton workflows (bench/skeleton.py) with the shape counted from a real
request's history, on a worker with the same settings. The two take turns in `--slices` parts of
the run. The figure is the ratio of the two rates.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Coroutine
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


async def _part(bench: BenchStack, cpu_total: dict[str, float], profile: Path | None, label: str,
                pids: dict[str, int], work: Coroutine[Any, Any, float]) -> float:
    """One slice of a run's half (`work`, its seconds); its CPU is added to `cpu_total`, and `pids`
    profiled as `label`."""
    cpu = bench.cpu_seconds()
    with profiled(pids, profile, label):
        seconds = await work
    _add_cpu(cpu_total, cpu, bench.cpu_seconds())
    return seconds


def _outside_temporal(cpu: dict[str, float]) -> float:
    return sum(ms for role, ms in cpu.items() if role != "temporal")


def _slices(batch: list[str], count: int) -> list[list[str]]:
    """`batch` in `count` consecutive parts as even as can be (fewer if it is shorter)."""
    count = max(1, min(count, len(batch)))
    size, extra = divmod(len(batch), count)
    bounds = [n * size + min(n, extra) for n in range(count + 1)]
    return [batch[bounds[n]:bounds[n + 1]] for n in range(count)]


def _add_cpu(total: dict[str, float], before: dict[str, float], after: dict[str, float]) -> None:
    for role in after:
        total[role] = total.get(role, 0.0) + after[role] - before.get(role, 0.0)


def _per_request(seconds: dict[str, float], count: int) -> dict[str, float]:
    return {role: round(cpu * 1000 / count) for role, cpu in seconds.items() if cpu >= 0.05}


async def main(requests: int, runs: int, slices: int, workers: int, results: Path, profile: Path | None) -> None:
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

                real = ceiling = 0.0
                cpu_real: dict[str, float] = {}
                cpu_skeleton: dict[str, float] = {}
                # The halves take turns in slices (real, skeleton; skeleton, real; ...), so that both
                # sample the same phases of the machine: halves run one after the other have given
                # ratios 0.58 and 0.90 in one set, as the machine's speed drifted between them. A
                # slice's start and end cost each half the same share of its time (in-flight
                # requests over twice the slice's), so the ratio is not biased by the slicing. The
                # dev server also slows a little as its database grows: the turns share that too.
                for part, chunk in enumerate(_slices(batch, slices)):
                    name = f"{run + 1}-{part + 1}"
                    real_part = _part(bench, cpu_real, profile, f"b1-real-{name}",
                                      {"worker": bench.pid("worker"), "api": bench.pid("api"),
                                       "processor": bench.pid("demo e-mail marketing service")},
                                      erasures(bench, chunk))
                    skeleton_part = _part(bench, cpu_skeleton, profile, f"b1-skeleton-{name}",
                                          {"worker": skeleton_workers[0].pid},
                                          _skeletons(bench.client, real_shape, len(chunk), name))
                    if (run * slices + part) % 2 == 0:
                        real += await real_part
                        ceiling += await skeleton_part
                    else:
                        ceiling += await skeleton_part
                        real += await real_part
                cpu_ms, skeleton_cpu_ms = _per_request(cpu_real, requests), _per_request(cpu_skeleton, requests)
                row = {"run": run + 1, "slices": slices,
                       "load_1min": load, "requests": requests,
                       "real_seconds": round(real, 2), "skeleton_seconds": round(ceiling, 2),
                       "real_per_second": round(requests / real, 2),
                       "skeleton_per_second": round(requests / ceiling, 2),
                       "ratio": round(ceiling / real, 3),
                       "cpu_ms_per_request": cpu_ms, "skeleton_cpu_ms_per_request": skeleton_cpu_ms,
                       # What the ratio comes to when both halves keep the cores busy: every
                       # process's CPU per skeleton workflow over every process's per request.
                       "cpu_ratio": round(sum(skeleton_cpu_ms.values()) / sum(cpu_ms.values()), 3),
                       "own_cpu_ms_per_request": sum(cpu_ms.values()) - sum(skeleton_cpu_ms.values()),
                       "own_cpu_outside_temporal_ms_per_request": _outside_temporal(cpu_ms)
                       - _outside_temporal(skeleton_cpu_ms)}
                print(row)
                rows.append(row)
        finally:
            for proc in [*skeleton_workers, *more]:
                stop(proc)
    write_result(
        results, "b1_throughput" if workers == 1 else f"b1_throughput_{workers}_workers",
        params={"requests": requests, "runs": runs, "slices": slices, "workers": workers,
                "api_concurrency": CONCURRENCY,
                "opendsr_completion_delay": 0.0},
        figures={"real_per_second": median([r["real_per_second"] for r in rows]),
                 "skeleton_per_second": median([r["skeleton_per_second"] for r in rows]),
                 "ratio": median([r["ratio"] for r in rows]), "target_ratio": 0.7,
                 "cpu_ratio": median([r["cpu_ratio"] for r in rows]),
                 "own_cpu_ms_per_request": median([r["own_cpu_ms_per_request"] for r in rows]),
                 "own_cpu_outside_temporal_ms_per_request":
                     median([r["own_cpu_outside_temporal_ms_per_request"] for r in rows]),
                 "shape": real_shape.totals(), "history_events_per_request": real_shape.events,
                 "skeleton_history_events": skeleton_shape.events,
                 "history_bytes_per_request": real_shape.bytes, "skeleton_history_bytes": skeleton_shape.bytes},
        runs=rows, load_before=load_before,
        notes=["ratio = skeleton seconds / real seconds for the same number of requests, per run; "
               "since 2026-12-06 22:30 UTC each run is cut into `slices` parts, the halves taking turns "
               "(real then skeleton, skeleton then real, ...), each half's seconds and CPU summed over its "
               "parts; before, the two halves of a run ran once each, one after the other",
               "the skeleton mirrors activities, child workflows, timers, signals, updates, patch markers, "
               "search-attribute upserts and the history's size in bytes (the last three since 2026-12-01 "
               "16:30 UTC: history_bytes_per_request against skeleton_history_bytes)",
               "cpu_ratio = every process's CPU per skeleton workflow over every process's CPU per request "
               "(since 2026-12-06 22:45 UTC): the ratio on a machine both halves keep busy, whatever its speed",
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
    parser.add_argument("--slices", type=int, default=3,
                        help="parts each run is cut into, the real and skeleton halves taking turns")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes for the requests (and as many for the skeleton)")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.runs, args.slices, args.workers, args.results, args.profile))
