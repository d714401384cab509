"""Horizontal scale on one machine: M `dsrflow api` and N `dsrflow worker` processes against one
PostgreSQL, one Temporal dev server and one SMTP sink, as `docker compose up --scale api=M
--scale worker=N` runs them behind a load balancer (docs/scaling.md).

The infrastructure is the chaos suite's (bench/chaos_stack.py: every component a separate OS
process, reached through DSRFLOW_DATABASE_URL, TEMPORAL_ADDRESS and SMTP_HOST/SMTP_PORT); only the
app processes differ. What a deployment must share, they share the way production does: the
secrets by environment (DSRFLOW_SECRET_KEY and DSRFLOW_ENCRYPTION_KEYS chosen here, so that no
process makes its own key file), package files through one DSRFLOW_HOME (compose's shared volume;
object storage once its back end lands). DSRFLOW_PUBLIC_URL, where letters link to, stands for
the load balancer: it is API 1's address, and any API serves the same paths.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from bench.chaos_stack import ChaosStack
from bench.common import bench_policy, cpu_seconds
from devstack.processes import stop
from dsrflow.infra.ports import free_ports

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class AppProcess:
    """One `dsrflow api` or `dsrflow worker` of the stack, and how to start it again."""
    role: str  # "api" or "worker"
    number: int  # 1, 2, ...
    port: int | None  # an API's own port
    proc: subprocess.Popen | None = None
    starts: int = 0
    identities: list[str] = field(default_factory=list)  # as Temporal records it, one per start

    @property
    def name(self) -> str:
        return f"{self.role}-{self.number}"

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} is not an API"
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


class MultiProcessStack(ChaosStack):
    def __init__(self, home: Path, *, apis: int = 2, workers: int = 2, env: dict[str, str] | None = None) -> None:
        home = home.resolve()
        api_ports = free_ports(apis)
        super().__init__(home, opendsr_delay=0.0, policy=bench_policy(home / "policy.yaml"), env={
            # B1's conditions (bench/common.py): no processor reached by e-mail, nobody approves
            # attested erasures, the OpenDSR demo answers at once.
            "DSRFLOW_SECRET_KEY": _random_key(),
            "DSRFLOW_ENCRYPTION_KEYS": f"k1:{_random_key()}",
            "DSRFLOW_API_PORT": str(api_ports[0]),
            "DSRFLOW_PUBLIC_URL": f"http://127.0.0.1:{api_ports[0]}",
            # Whichever venv runs us, the children run this checkout's code.
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            **(env or {}),
        })
        self.apis = [AppProcess("api", n + 1, port) for n, port in enumerate(api_ports)]
        self.workers = [AppProcess("worker", n + 1, None) for n in range(workers)]

    @property
    def processes(self) -> list[AppProcess]:
        return [*self.workers, *self.apis]

    async def start(self) -> None:
        await self.start_infrastructure()
        for app in self.processes:
            self.start_app(app)
        for api in self.apis:
            await self.wait_app(api)
        await self.connect()
        for worker in self.workers:
            await self.wait_app(worker)

    def start_app(self, app: AppProcess) -> None:
        app.starts += 1
        env = {"DSRFLOW_API_PORT": str(app.port)} if app.port else {}
        app.proc = self._spawn_dsrflow(app.role, self.logs / f"{app.name}.{app.starts}.log", env)
        app.identities.append(self.identity(app))

    async def wait_app(self, app: AppProcess) -> None:
        """An API until it answers healthy; a worker until it polls the task queue."""
        if app.role == "api":
            await self._wait_healthy(app.url, {p.name: p.proc for p in self.processes})
            return
        assert self.client is not None and app.proc is not None
        deadline = time.monotonic() + 90
        while self.identity(app) not in await self.pollers():
            if app.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app.name} is not polling the task queue; see {self.logs}")
            await asyncio.sleep(0.5)

    def stop_app(self, app: AppProcess) -> None:
        """SIGTERM, as compose stops the surplus when the scale goes down. A worker stops polling;
        what it had in hand (nothing, between our passes) Temporal retries on another."""
        if app.proc is not None:
            stop(app.proc)

    def identity(self, app: AppProcess) -> str:
        """What Temporal records as the worker in every task it picks up (the SDK's default)."""
        assert app.proc is not None
        return f"{app.proc.pid}@{socket.gethostname()}"

    async def pollers(self) -> set[str]:
        """Identities polling the request task queue for workflow tasks, as Temporal saw them
        lately (a stopped worker stays listed for a minute or so)."""
        assert self.client is not None
        answer = await self.client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=self.settings.temporal_namespace, task_queue=TaskQueue(name=self.settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
        return {poller.identity for poller in answer.pollers}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far, per process of the stack (Temporal and PostgreSQL by name)."""
        roles = {app.proc.pid: app.name for app in self.processes if app.proc}
        roles.update({child.proc.pid: "demo systems" for _, child in self.stack._children})
        if self.sink is not None:
            roles[self.sink.pid] = "smtp sink"
        return cpu_seconds(roles)

    def stop_all(self) -> None:
        for app in reversed(self.processes):
            try:
                self.stop_app(app)
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"while stopping {app.name}: {exc}", file=sys.stderr, flush=True)
        super().stop_all()

    def http(self, api: AppProcess, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=api.url, headers=headers, timeout=120,
                                 limits=httpx.Limits(max_connections=50))


@contextlib.asynccontextmanager
async def multi_process_stack(home: Path, *, apis: int = 2, workers: int = 2,
                              env: dict[str, str] | None = None) -> AsyncIterator[MultiProcessStack]:
    """A started MultiProcessStack; every process it started is stopped on the way out."""
    stack = MultiProcessStack(home, apis=apis, workers=workers, env=env)
    started = time.monotonic()
    try:
        await stack.start()
        print(f"stack up in {time.monotonic() - started:.1f}s: {len(stack.apis)} APIs, {len(stack.workers)} "
              f"workers (home {stack.home})", flush=True)
        yield stack
    finally:
        await asyncio.to_thread(stack.stop_all)
