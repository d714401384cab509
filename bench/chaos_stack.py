"""The chaos suite's stack: every component a separate OS process it can kill and restart.

`dsrflow up` (devstack/stack.py) runs the SMTP sink on a thread and keeps the PostgreSQL and
Temporal handles to itself; here each piece is started from the same devstack classes but kept
by the suite: PostgreSQL (EmbeddedPostgres), the Temporal dev server (TemporalDevServer), the SMTP
sink (bench/chaos_sink.py), the demo processor systems (seeded and started by the Stack's own
code), and `.venv/bin/dsrflow worker` and `dsrflow api`, which reach the rest through
DSRFLOW_DATABASE_URL, TEMPORAL_ADDRESS and SMTP_HOST/SMTP_PORT as a production deployment would.
Everything listens on 127.0.0.1 on free ports, under one DSRFLOW_HOME.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bench.common import unattended_policy
from devstack.demo.sql_systems import SQL_SYSTEMS
from devstack.postgres import EmbeddedPostgres
from devstack.processes import (
    StackError,
    find_binary,
    free_port,
    spawn,
    stop,
    wait_for_port,
)
from devstack.stack import APP_DATABASE, Stack
from devstack.temporal_server import TemporalDevServer
from dsrflow.infra.db import connect, create_pool, with_database
from dsrflow.infra.migrate import migrate
from dsrflow.infra.temporal_client import connect_client
from dsrflow.settings import load_settings
from dsrflow.stores.staff_tokens import create_token
from workers.schedules import SCHEDULE_IDS

DEMO_DATABASES = (*SQL_SYSTEMS, "email_marketing")


class ChaosStack:
    def __init__(self, home: Path, opendsr_delay: float, *, policy: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.home = home.resolve()
        self.logs = self.home / "logs"
        self.mail = self.home / "mail"
        ports = {name: str(free_port()) for name in (
            "DSRFLOW_API_PORT", "DSRFLOW_POSTGRES_PORT", "DSRFLOW_TEMPORAL_PORT",
            "DSRFLOW_TEMPORAL_UI_PORT", "SMTP_PORT", "DSRFLOW_DEMO_OPENDSR_PORT")}
        self.database_url = f"postgresql://postgres@127.0.0.1:{ports['DSRFLOW_POSTGRES_PORT']}/{APP_DATABASE}"
        # Our own process reads the same settings as the children (TemporalDevServer and the
        # demo systems take theirs from a Settings object). The default policy is kept whole:
        # the processors reached by e-mail are part of what a crash can duplicate. Only the
        # approval of attested erasures is left out: nobody approves the load's erasures.
        # `env` adds to (or overrides) all of it, for every process (bench/multi_stack.py).
        for name in ("DSRFLOW_ENCRYPTION_KEYS", "DSRFLOW_SECRET_KEY"):
            os.environ.pop(name, None)
        os.environ.update({
            "DSRFLOW_POLICY": str(policy or unattended_policy(self.home / "policy.yaml")),
            **ports,
            "DSRFLOW_HOME": str(self.home),
            "DSRFLOW_DEMO": "true",
            "DSRFLOW_DEMO_OPENDSR_DELAY": str(opendsr_delay),
            "DSRFLOW_DATABASE_URL": self.database_url,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{ports['DSRFLOW_TEMPORAL_PORT']}",
            "SMTP_HOST": "127.0.0.1",
            # Every processor asked by e-mail confirms from 127.0.0.1: 200 erasures are 800 links
            # from one client, past the 300 an hour a client may open (docs/rate-limits.md), which
            # held the clean pass at 75 requests, each link refused with 429 until the hour ends.
            "DSRFLOW_RATE_LINK_PER_IP": "100000/hour",
            # One agent token opens every request of a run: more than the 200 an hour a token may.
            "DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN": "1000000/hour",
            **(env or {}),
        })
        self.settings = load_settings()
        # The Stack object is used for what it already does for `dsrflow up`: seed and start the
        # demo systems (and stop them).
        self.stack = Stack(self.settings)
        self.postgres = EmbeddedPostgres(self.home / "pg", self.settings.postgres_port)
        self.temporal = TemporalDevServer(self.settings)
        self.sink: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.api: subprocess.Popen | None = None
        self.worker_starts = 0
        self.client: Client | None = None
        self.token = ""

    @property
    def api_url(self) -> str:
        return self.settings.base_url

    # -- start and stop ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.start_infrastructure()
        self.start_worker()
        self.api = self._spawn_dsrflow("api", self.logs / "api.log")
        await self._wait_healthy(self.api_url, {"API": self.api, "worker": self.worker})
        await self.connect()

    async def start_infrastructure(self) -> None:
        """What the workers and APIs reach by address: PostgreSQL (migrated), the SMTP sink,
        the Temporal dev server and the demo systems."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.postgres.start(self.logs / "postgres.log")
        await self.postgres.wait_ready()
        await self.postgres.ensure_database(APP_DATABASE)
        self.start_sink()
        self.temporal.start(self.logs / "temporal.log")
        await asyncio.to_thread(self.temporal.wait_ready)
        await migrate(self.database_url)
        await self.stack._start_demo_systems(self.database_url, self.postgres)

    async def connect(self) -> None:
        """Our own Temporal client and staff token, once a worker has created the schedules."""
        self.client = await connect_client(self.settings)
        await self._pause_schedules()
        pool = await create_pool(self.database_url, max_size=1)
        try:
            self.token = await create_token(pool, "agent", "chaos suite")
        finally:
            await pool.close()

    def stop_all(self) -> None:
        """Stop whatever runs, last started first; each stop is tried whatever the others did."""
        for name, action in (
            ("api", lambda: self.api and stop(self.api)),
            ("worker", lambda: self.worker and stop(self.worker)),
            ("demo systems", self.stack.stop_all),
            ("Temporal", self.temporal.stop),
            ("SMTP sink", lambda: self.sink and stop(self.sink)),
            ("PostgreSQL", self.postgres.stop),
        ):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"while stopping {name}: {exc}", file=sys.stderr, flush=True)

    def _spawn_dsrflow(self, role: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        return spawn([find_binary("dsrflow"), role], env={**os.environ, **self.stack.env, **(env or {})},
                     log_path=log)

    def start_worker(self) -> None:
        self.worker_starts += 1
        self.worker = self._spawn_dsrflow("worker", self.logs / f"worker-{self.worker_starts}.log")

    def start_sink(self) -> None:
        self.sink = spawn([sys.executable, "-m", "bench.chaos_sink", "--port", str(self.settings.smtp_port),
                           "--directory", str(self.mail)], log_path=self.logs / "smtp_sink.log")
        wait_for_port(self.settings.smtp_port, "SMTP sink", 30, self.sink)

    async def _wait_healthy(self, url: str, watched: dict[str, subprocess.Popen | None],
                            timeout: float = 90.0) -> None:
        """Until GET `url`/healthz answers 200, while every `watched` process runs (the Stack's
        own wait watches the Stack's children, and these are ours)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            while time.monotonic() < deadline:
                for name, proc in watched.items():
                    if proc is not None and proc.poll() is not None:
                        raise StackError(f"the {name} exited with code {proc.returncode}; see {self.logs}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise StackError(f"the API at {url} did not report healthy within {timeout:.0f}s; see {self.logs}")

    async def _pause_schedules(self) -> None:
        """The daily sweeps would open requests of their own in the middle of a measurement if
        a run crossed their hour: they are paused (a restarted worker leaves them so)."""
        assert self.client is not None
        for schedule_id in SCHEDULE_IDS:
            handle = self.client.get_schedule_handle(schedule_id)
            for attempt in range(20):
                try:
                    await handle.pause(note="chaos suite run")
                    break
                except RPCError as exc:
                    # A schedule just created starts its scheduler a moment later (seen on a
                    # loaded machine): until then the server answers NOT_FOUND.
                    if exc.status != RPCStatusCode.NOT_FOUND or attempt == 19:
                        raise
                    await asyncio.sleep(0.25)

    @contextlib.asynccontextmanager
    async def connection(self, database: str = APP_DATABASE) -> AsyncIterator[asyncpg.Connection]:
        """A fresh connection (a pool would hold connections across a PostgreSQL restart)."""
        conn = await connect(with_database(self.database_url, database))
        try:
            yield conn
        finally:
            await conn.close()

    # -- faults: each returns once the component is back ---------------------------------------

    async def kill_worker(self, outage: float) -> None:
        """kill -9 of the worker (its whole process group), and a new one after `outage` s."""
        assert self.worker is not None
        if self.worker.poll() is not None:  # a worker that died by itself is a finding, not a kill
            raise StackError(f"the worker had already exited with code {self.worker.returncode}; see {self.logs}")
        os.killpg(self.worker.pid, signal.SIGKILL)
        await asyncio.to_thread(self.worker.wait, 10)
        await asyncio.sleep(outage)
        self.start_worker()

    async def restart_postgres(self, outage: float) -> None:
        await asyncio.to_thread(self.postgres.stop)
        await asyncio.sleep(outage)
        self.postgres.start(self.logs / "postgres.log")
        await self.postgres.wait_ready()

    async def restart_temporal(self, outage: float) -> None:
        await asyncio.to_thread(self.temporal.stop)
        await asyncio.sleep(outage)
        self.temporal.start(self.logs / "temporal.log")
        await asyncio.to_thread(self.temporal.wait_ready)

    async def restart_smtp(self, outage: float) -> None:
        assert self.sink is not None
        await asyncio.to_thread(stop, self.sink)
        await asyncio.sleep(outage)
        self.start_sink()

    # -- between the clean pass and the chaos pass ---------------------------------------------

    async def reset_demo_systems(self) -> None:
        """Put the demo systems back to their seeded state, so the chaos pass erases the same
        subjects from the same data as the clean pass did. The worker and the OpenDSR service
        hold connections to those databases: both are stopped first and started again after."""
        assert self.worker is not None
        await asyncio.to_thread(stop, self.worker)
        await asyncio.to_thread(self.stack.stop_all)  # it started the demo e-mail marketing service only
        async with self.connection("postgres") as conn:
            for name in DEMO_DATABASES:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await self.stack._start_demo_systems(self.database_url, self.postgres)
        self.start_worker()

    async def audit_verify(self) -> tuple[int, str]:
        """`dsrflow audit verify` as an operator runs it: exit status and its one line."""
        done = await asyncio.to_thread(
            subprocess.run, [str(find_binary("dsrflow")), "audit", "verify"],
            env={**os.environ, **self.stack.env}, capture_output=True, text=True, timeout=120)
        return done.returncode, (done.stdout + done.stderr).strip()


@contextlib.asynccontextmanager
async def chaos_stack(home: Path, opendsr_delay: float) -> AsyncIterator[ChaosStack]:
    """A started ChaosStack; every process it started is stopped on the way out, failure or not."""
    stack = ChaosStack(home, opendsr_delay)
    started = time.monotonic()
    try:
        await stack.start()
        print(f"stack up in {time.monotonic() - started:.1f}s (home {stack.home})", flush=True)
        yield stack
    finally:
        await asyncio.to_thread(stack.stop_all)
