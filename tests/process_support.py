"""Processes of their own started for a test: dsrflow's (a worker, an API, one activity: the
erasure sweep's step, a task's poll, a status step) to be killed at a failpoint (dsrflow/infra/failpoints.py), the crash-window tests' harness,
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
from pydantic import BaseModel

from dsrflow.settings import Settings
from schemas.holds import SweepInput
from schemas.workflow import TaskInput, Transition
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


# One activity as a process of its own, to be killed at a failpoint: argv names the activity
# ("module:Class.method", its class built as the worker builds it) and its argument's model
# ("module:Model") and gives the argument as JSON.
_ACTIVITY = """
import asyncio, importlib, sys
from temporalio.testing import ActivityEnvironment
from dsrflow.infra.db import create_pool
from dsrflow.settings import load_settings
from workers.dsr_worker import activity_context

def named(path):
    module, name = path.split(":")
    found = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found

async def main():
    settings = load_settings()
    pool = await create_pool(settings.effective_database_url, min_size=1, max_size=4)
    owner, method = sys.argv[1].rsplit(".", 1)
    step = getattr(named(owner)(activity_context(settings, pool)), method)
    await ActivityEnvironment().run(step, named(sys.argv[2]).model_validate_json(sys.argv[3]))

asyncio.run(main())
"""


async def activity_killed_at(settings: Settings, failpoint: str, activity: str, argument: BaseModel) -> None:
    """Run `activity` ("module:Class.method") on `argument` in a process of its own and check the
    failpoint killed it there."""
    env = {**os.environ, **settings_env(settings), "DSRFLOW_FAILPOINTS": failpoint}
    model = f"{type(argument).__module__}:{type(argument).__qualname__}"
    killed = await asyncio.to_thread(subprocess.run,
                                     [sys.executable, "-c", _ACTIVITY, activity, model, argument.model_dump_json()],
                                     env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-3000:]


async def sweep_killed_at(settings: Settings, failpoint: str, as_of: datetime) -> None:
    """The erasure sweep's step (activities/deferred.py), killed at `failpoint`."""
    await activity_killed_at(settings, failpoint, "activities.deferred:DeferredErasureActivities.sweep",
                             SweepInput(reason="test", as_of=as_of))


async def poll_killed_at(settings: Settings, failpoint: str, task: TaskInput) -> None:
    """A task's poll (activities/fanout.py `poll_system_action`, which sends a processor's
    reminder), killed at `failpoint`: the workflow polls first five minutes after the ask, and
    reminds only `reminder_days` after it."""
    await activity_killed_at(settings, failpoint, "activities.fanout:FanoutActivities.poll_system_action", task)


async def transition_killed_at(settings: Settings, failpoint: str, change: Transition) -> None:
    """A request's status step (activities/lifecycle.py `transition`), killed at `failpoint`: the
    close on record, what follows it not yet done."""
    await activity_killed_at(settings, failpoint, "activities.lifecycle:LifecycleActivities.transition", change)
