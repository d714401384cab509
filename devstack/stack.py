"""`dsrflow up`: the whole stack on one machine, on embedded defaults.

Starts what is not configured externally (PostgreSQL, Temporal, the SMTP sink), applies migrations,
then the worker and the API as child processes, and stops all of it, in reverse order, on Ctrl-C or
SIGTERM. A worker or API that exits is restarted (devstack/supervisor.py). Everything lives under
DSRFLOW_HOME, so a second `up` resumes with the same data.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable

import httpx

from devstack.demo.email_marketing_db import ensure_email_marketing_database
from devstack.demo.sql_systems import ensure_demo_databases
from devstack.demo_names import DEMO_OPENDSR_URL, DEMO_PROCESSOR_ADDRESSES, OPENDSR_BASE_PATH
from devstack.home_state import (
    lock_home,
    refuse_lost_database,
    refuse_lost_keys,
    refuse_open_requests_without_workflows,
)
from devstack.postgres import EmbeddedPostgres
from devstack.processes import StackError, ensure_port_free, spawn, wait_for_port
from devstack.smtp_sink import MailSink, PrivacyInbox
from devstack.supervisor import EssentialProcess, RestartingProcess
from devstack.temporal_server import TemporalDevServer
from dsrflow.crypto.keys import load_keyring, load_secret_key
from dsrflow.infra.db import with_database
from dsrflow.infra.migrate import migrate
from dsrflow.settings import Settings
from dsrflow.stores.request_lookup import backfill_database
from policy.mailbox import load_mailbox_policy
from policy.model import DEFAULT_POLICY, load_policy

APP_DATABASE = "dsrflow"


def _say(message: str) -> None:
    print(message, flush=True)


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.logs = self.home / "logs"
        self.env = {**os.environ, "DSRFLOW_HOME": str(self.home)}
        # Stop actions, run last-started first.
        self._stops: list[tuple[str, Callable[[], None]]] = []
        # What the rest stands on, checked first: when one of these ends, the stack stops.
        self._infrastructure: list[EssentialProcess] = []
        self._sink: MailSink | None = None
        # What people reach the database by (psql, a policy draft): the TCP URL, where the stack's
        # own processes use the Unix socket's (devstack/postgres.py `local_url`).
        self.database_url_shown: str | None = None
        # The worker, the API and the demo systems, by role (bench/common.py reads their pids).
        self._children: list[tuple[str, EssentialProcess | RestartingProcess]] = []

    def _check_ports(self) -> None:
        s = self.settings
        ensure_port_free(s.api_port, "dsrflow API")
        if not s.database_url:
            ensure_port_free(s.postgres_port, "PostgreSQL")
        if not s.temporal_address:
            ensure_port_free(s.temporal_port, "Temporal frontend")
            ensure_port_free(s.temporal_ui_port, "Temporal Web UI")
        if not s.smtp_host:
            ensure_port_free(s.smtp_port, "SMTP sink")
        if s.demo:
            ensure_port_free(s.demo_opendsr_port, "demo e-mail marketing (OpenDSR) service")
        if s.demo_saas:
            ensure_port_free(s.demo_saas_port, "SaaS stand-ins")

    async def start(self) -> None:
        s = self.settings
        held = lock_home(self.home)
        self._stops.append(("the lock on DSRFLOW_HOME", held.close))  # let go of last, once all has stopped
        refuse_lost_keys(s, self.home)
        fresh_workflows = refuse_lost_database(s, self.home)
        self._check_ports()
        load_keyring(s)  # create the payload key once, before any child races for it

        pg: EmbeddedPostgres | None = None
        if not s.database_url:
            pg = EmbeddedPostgres(self.home / "pg", s.postgres_port)
            pg.start(self.logs / "postgres.log")
            self._stops.append(("PostgreSQL", pg.stop))
            assert pg.proc is not None
            self._infrastructure.append(EssentialProcess("PostgreSQL", pg.proc, self.logs / "postgres.log"))
            await pg.wait_ready()
            await pg.ensure_database(APP_DATABASE)
            self.env["DSRFLOW_DATABASE_URL"] = pg.local_url(APP_DATABASE)
            self.database_url_shown = pg.url(APP_DATABASE)
        if not s.smtp_host:
            controller = load_policy(s.policy_path).policy.controller
            sink = MailSink(self.home / "mail", s.smtp_port, inbox=PrivacyInbox(
                controller.privacy_email, self.env.get("DSRFLOW_DATABASE_URL") or s.effective_database_url,
                load_secret_key(s), load_mailbox_policy(), our_sender=controller.sender_email))
            sink.start()
            self._stops.append(("SMTP sink", sink.stop))
            self._sink = sink
        if fresh_workflows:
            await refuse_open_requests_without_workflows(self.env["DSRFLOW_DATABASE_URL"], self.home)
        if not s.temporal_address:
            temporal = TemporalDevServer(s)
            temporal.start(self.logs / "temporal.log")
            self._stops.append(("Temporal", temporal.stop))
            assert temporal.proc is not None
            self._infrastructure.append(
                EssentialProcess("the Temporal dev server", temporal.proc, self.logs / "temporal.log"))
            await asyncio.to_thread(temporal.wait_ready)

        database_url = self.env.get("DSRFLOW_DATABASE_URL") or s.effective_database_url
        applied = await migrate(database_url)
        if applied:
            _say(f"applied migrations: {', '.join(applied)}")
        if hashed := await backfill_database(database_url, load_secret_key(s)):
            _say(f"hashed the identities of {hashed} requests for search")
        if s.demo:
            await self._start_demo_systems(database_url, pg)
        if s.demo_saas:
            await self._start_saas_standins()

        for role, name in (("worker", "worker"), ("api", "API")):
            child = RestartingProcess(name, [sys.executable, "-m", "cli.main", role], env=self.env,
                                      log_path=self.logs / f"{role}.log", say=_say, pause=s.restart_pause)
            self._children.append((role, child))
            self._stops.append((role, child.stop))
        await self._wait_healthy()

    async def _start_demo_systems(self, database_url: str, server: EmbeddedPostgres | None) -> None:
        """The demo processor systems of the default policy: three Postgres databases and the
        OpenDSR e-mail marketing service, seeded once and kept across runs."""
        port = self.settings.demo_opendsr_port
        ensure_port_free(port, "demo e-mail marketing (OpenDSR) service")
        await ensure_demo_databases(server, lambda name: with_database(database_url, name))
        email_url = with_database(database_url, "email_marketing")
        await ensure_email_marketing_database(server, email_url)
        log = self.logs / "email_marketing.log"
        proc = spawn(
            [sys.executable, "-m", "devstack.demo.email_marketing", "--port", str(port),
             "--database-url", email_url, "--home", str(self.home / "demo"),
             "--delay", str(self.settings.demo_opendsr_delay)],
            env=self.env, log_path=log,
        )
        child = EssentialProcess("the demo e-mail marketing service", proc, log)
        self._children.append(("demo e-mail marketing service", child))
        self._stops.append(("demo e-mail marketing service", child.stop))
        self.env[DEMO_OPENDSR_URL] = f"http://127.0.0.1:{port}{OPENDSR_BASE_PATH}"
        for name, address in DEMO_PROCESSOR_ADDRESSES.items():
            self.env.setdefault(name, address)
        await asyncio.to_thread(wait_for_port, port, "demo e-mail marketing service", 60, proc)

    async def _start_saas_standins(self) -> None:
        """The SaaS stand-ins (devstack/saas) in one process, and a copy of the policy with the
        http systems of policy/http/demo-systems.yaml pointed at them through the environment."""
        # Imported here, only for --demo-saas: the stand-ins' apps (FastAPI) are the child's to
        # import, and `dsrflow up` without them starts sooner.
        from devstack.saas.__main__ import demo_environment
        from devstack.saas.policy import write_demo_saas_policy

        port = self.settings.demo_saas_port
        home = self.home / "saas"
        log = self.logs / "saas.log"
        proc = spawn([sys.executable, "-m", "devstack.saas", "--port", str(port), "--home", str(home)],
                     env=self.env, log_path=log)
        child = EssentialProcess("the SaaS stand-ins", proc, log)
        self._children.append(("SaaS stand-ins", child))
        self._stops.append(("SaaS stand-ins", child.stop))
        self.env.update(demo_environment(port, home))
        self.env["DSRFLOW_POLICY"] = str(write_demo_saas_policy(self.settings.policy_path or DEFAULT_POLICY, self.home))
        await asyncio.to_thread(wait_for_port, port, "SaaS stand-ins", 60, proc)

    async def _wait_healthy(self, timeout: float = 90.0) -> None:
        url = f"http://127.0.0.1:{self.settings.api_port}/healthz"
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                self._check_children()
                try:
                    if (await http.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                # A refused connection costs nothing: a tenth of a second, not half of one, after
                # the API is ready before `up` (and every test and benchmark starting a stack) goes on.
                await asyncio.sleep(0.1)
        raise StackError(f"the API did not report healthy at {url} within {timeout:.0f}s")

    def _check_children(self) -> None:
        """Raise when the stack must stop; restart a worker or API that exited."""
        if self._sink is not None and not self._sink.running:
            raise StackError("the SMTP sink stopped; it runs inside dsrflow up: see the messages above")
        for component in self._infrastructure:
            component.check()
        for _, child in self._children:
            child.check()

    def print_urls(self) -> None:
        s = self.settings
        lines = [
            "dsrflow is up",
            f"  API            {s.base_url}  (OpenAPI: {s.base_url}/docs, health: {s.base_url}/healthz)",
            f"  Temporal UI    {s.temporal_ui_url}" if not s.temporal_address else
            f"  Temporal       {s.temporal_address}",
            f"  PostgreSQL     {self.database_url_shown or s.effective_database_url}",
            f"  Mail           {self.home / 'mail'} (.eml files; SMTP on 127.0.0.1:{s.smtp_port})"
            if not s.smtp_host else f"  SMTP           {s.smtp_host}:{s.smtp_port}",
            f"  Demo systems   crm, analytics, billing (Postgres), e-mail marketing (OpenDSR at "
            f"{self.env.get(DEMO_OPENDSR_URL)})" if s.demo else "  Demo systems   off",
            f"  SaaS systems   Stripe, HubSpot, Mailchimp, GA4 stand-ins on 127.0.0.1:{s.demo_saas_port} "
            f"(policy {self.env.get('DSRFLOW_POLICY')})" if s.demo_saas else "  SaaS systems   off",
            f"  Logs           {self.logs} (worker.log, api.log, postgres.log, temporal.log, ...)",
            "Press Ctrl-C to stop.",
        ]
        _say("\n".join(lines))

    def stop_all(self) -> None:
        while self._stops:
            name, action = self._stops.pop()
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                _say(f"while stopping {name}: {exc}")

    async def watch(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            self._check_children()
            try:
                await asyncio.wait_for(stopping.wait(), 1.0)
            except TimeoutError:
                pass


async def run_up(settings: Settings) -> int:
    stack = Stack(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        starting = asyncio.create_task(stack.start())
        waiter = asyncio.create_task(stopping.wait())
        await asyncio.wait({starting, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            _say("stopping before start-up finished")
            return 130
        waiter.cancel()
        starting.result()
        stack.print_urls()
        await stack.watch(stopping)
        _say("stopping")
        return 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        await asyncio.to_thread(stack.stop_all)

