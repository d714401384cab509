"""`python -m tests.worker_process worker`: the worker `dsrflow worker` runs, as a process of its
own to be killed at a failpoint (tests/process_support.py, `held`: it waits for a line on its stdin
before it works, a line that may name its failpoints), without the schedules it makes first (the
time-skipping test server implements none: "CreateSchedule is unimplemented") and without a sticky
task queue (where the workflow's next task would wait for a timeout after the kill)."""

from __future__ import annotations

import gc

# No collection while the modules are imported, and what they built, which lives as long as the
# process, frozen before the collector is on again: never walked. Until the worker ran (a crash
# test's kill), two runs each way: 0.95 s of CPU (0.01 s of it collections) against 1.05-1.17 s
# (0.10-0.11 s), and the crash tests start this process dozens of times a run.
gc.disable()

import asyncio  # noqa: E402 - after the collector is off
import os  # noqa: E402
import sys  # noqa: E402

from dsrflow.infra.db import create_pool_when_reachable  # noqa: E402
from dsrflow.infra.temporal_client import connect_client_when_reachable  # noqa: E402
from dsrflow.settings import load_settings  # noqa: E402
from workers.dsr_worker import build_worker  # noqa: E402

gc.freeze()
gc.enable()


async def _run() -> None:
    settings = load_settings()
    client = await connect_client_when_reachable(settings, lambda error, delay: None)
    pool = await create_pool_when_reachable(settings.effective_database_url, lambda error, delay: None)
    line = await asyncio.to_thread(sys.stdin.readline)  # started early: held until the test needs it
    if failpoints := line.removeprefix("go").strip():  # named on release: read where each is reached
        os.environ["DSRFLOW_FAILPOINTS"] = failpoints
    gc.freeze()  # what start-up built lives as long as the process, as in `dsrflow worker`
    async with build_worker(client, settings, pool, sticky=False):
        await asyncio.Event().wait()  # until the failpoint kills the process


if __name__ == "__main__":
    asyncio.run(_run())
