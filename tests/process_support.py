"""Processes of their own started for a test: dsrflow's (a worker, an API, the erasure sweep's
step, a task's poll) to be killed at a failpoint (dsrflow/infra/failpoints.py), the crash-window tests' harness,
and a benchmark's smoke run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from dsrflow.settings import Settings
from tests.support import delete_schedules, settings_env


@contextlib.asynccontextmanager
async def dsrflow_process(role: str, settings, client, tmp_path: Path, *, failpoints: str,
                          module: str = "cli.main", held: bool = False) -> AsyncIterator[subprocess.Popen]:
    """`dsrflow <role>` (worker, api) as its own process, dying at the named failpoints; its
    output goes to `<role>.log` in `tmp_path`. `module`: another entry point that takes the role
    (tests/worker_process.py, a worker on the time-skipping server). `held`: its stdin a pipe, for
    an entry point that waits there until `released` (started early, ready when the test needs it)."""
    env = {**os.environ, **settings_env(settings), "TEMPORAL_ADDRESS": client.service_client.config.target_host,
           "DSRFLOW_FAILPOINTS": failpoints}
    with open(tmp_path / f"{role}.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", module, role], env=env,
                                   stdin=subprocess.PIPE if held else None, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stdin is not None:
            process.stdin.close()
        if role == "worker":
            await delete_schedules(client)  # the process worker made them


def released(process: subprocess.Popen, failpoints: str | None = None) -> None:
    """Let a `held` process start its work; `failpoints`, if given, in place of those it was
    started with (a request's, known only once the request is open)."""
    assert process.stdin is not None
    process.stdin.write(b"go\n" if failpoints is None else f"go {failpoints}\n".encode())
    process.stdin.flush()


@contextlib.asynccontextmanager
async def worker_to_kill(settings, client, tmp_path: Path, *, failpoints: str) -> AsyncIterator[subprocess.Popen]:
    """A worker process dying at `failpoints`, at work at once: the one tests/worker_process.py runs,
    which `dsrflow worker` builds but without a sticky task queue. After a `dsrflow worker` died,
    its workflows' next tasks waited on its sticky queue for the SDK's 10 s before another worker
    could take them (a crash-window test took 17 s against 7 s); here they go to the shared queue.
    `dsrflow worker` itself stays where a test needs what only it does (schedules, the mailbox)."""
    async with dsrflow_process("worker", settings, client, tmp_path, failpoints=failpoints,
                               module="tests.worker_process", held=True) as worker:
        released(worker)
        yield worker


async def died(process: subprocess.Popen, tmp_path: Path, timeout: float = 60, role: str = "worker") -> None:
    log = tmp_path / f"{role}.log"
    for _ in range(int(timeout * 10)):
        if process.poll() is not None:
            assert process.returncode == -9, log.read_text()[-3000:]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the {role} never reached its failpoint: " + log.read_text()[-3000:])



async def answering(http: httpx.AsyncClient, api: subprocess.Popen, tmp_path: Path) -> None:
    """Wait until the API process answers /healthz (failing with its log if it exits first)."""
    for _ in range(300):
        assert api.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
        with contextlib.suppress(httpx.TransportError):
            if (await http.get("/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the API never answered: " + (tmp_path / "api.log").read_text()[-3000:])


def run_bench_smoke(module: str, results: Path, name: str, timeout: float,
                    ) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run `python -m bench.<module> --smoke`; its result file `name` (which must exist), with the
    finished run (its output for failure messages, its exit code)."""
    done = subprocess.run([sys.executable, "-m", f"bench.{module}", "--smoke", "--results", str(results)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                          timeout=timeout, check=False)
    path = results / name
    assert path.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(path.read_text()), done


# The erasure sweep's step (activities/deferred.py) as a process of its own, to be killed at a failpoint.
_SWEEP = """
import asyncio, sys
from datetime import datetime
from temporalio.testing import ActivityEnvironment
from activities.deferred import DeferredErasureActivities
from dsrflow.infra.db import create_pool
from dsrflow.settings import load_settings
from schemas.holds import SweepInput
from workers.dsr_worker import activity_context

async def main():
    settings = load_settings()
    pool = await create_pool(settings.effective_database_url, min_size=1, max_size=4)
    sweep = DeferredErasureActivities(activity_context(settings, pool)).sweep
    await ActivityEnvironment().run(sweep, SweepInput(reason="test", as_of=datetime.fromisoformat(sys.argv[1])))

asyncio.run(main())
"""


async def sweep_killed_at(settings: Settings, failpoint: str, as_of: datetime) -> None:
    """Run the erasure sweep in a process of its own and check the failpoint killed it there."""
    env = {**os.environ, **settings_env(settings), "DSRFLOW_FAILPOINTS": failpoint}
    killed = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", _SWEEP, as_of.isoformat()],
                                     env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-3000:]


# A task's poll (activities/fanout.py `poll_system_action`, which sends a processor's reminder) as
# a process of its own, to be killed at a failpoint: the workflow polls first five minutes after
# the ask, and reminds only `reminder_days` after it.
_POLL = """
import asyncio, sys
from temporalio.testing import ActivityEnvironment
from activities.fanout import FanoutActivities
from dsrflow.infra.db import create_pool
from dsrflow.settings import load_settings
from schemas.workflow import TaskInput
from workers.dsr_worker import activity_context

async def main():
    settings = load_settings()
    pool = await create_pool(settings.effective_database_url, min_size=1, max_size=4)
    poll = FanoutActivities(activity_context(settings, pool)).poll_system_action
    await ActivityEnvironment().run(poll, TaskInput.model_validate_json(sys.argv[1]))

asyncio.run(main())
"""


async def poll_killed_at(settings: Settings, failpoint: str, task: str) -> None:
    """Run a task's poll (`task`: its TaskInput as JSON) in a process of its own and check the
    failpoint killed it there."""
    env = {**os.environ, **settings_env(settings), "DSRFLOW_FAILPOINTS": failpoint}
    killed = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", _POLL, task],
                                     env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-3000:]


# A request's status step (activities/lifecycle.py `transition`) as a process of its own, to be
# killed at a failpoint: the close on record, what follows it not yet done.
_TRANSITION = """
import asyncio, sys
from temporalio.testing import ActivityEnvironment
from activities.lifecycle import LifecycleActivities
from dsrflow.infra.db import create_pool
from dsrflow.settings import load_settings
from schemas.workflow import Transition
from workers.dsr_worker import activity_context

async def main():
    settings = load_settings()
    pool = await create_pool(settings.effective_database_url, min_size=1, max_size=4)
    step = LifecycleActivities(activity_context(settings, pool)).transition
    await ActivityEnvironment().run(step, Transition.model_validate_json(sys.argv[1]))

asyncio.run(main())
"""


async def transition_killed_at(settings: Settings, failpoint: str, change: str) -> None:
    """Run a status step (`change`: its Transition as JSON) in a process of its own and check the
    failpoint killed it there."""
    env = {**os.environ, **settings_env(settings), "DSRFLOW_FAILPOINTS": failpoint}
    killed = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", _TRANSITION, change],
                                     env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-3000:]
