"""A complete stack for fan-out tests: the demo systems (three Postgres databases and the OpenDSR
e-mail service over loopback), the API served by uvicorn (processors call back over HTTP), a
policy pointing at them, and a worker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn

from devstack.demo.email_marketing import BASE_PATH, create_email_marketing_app
from devstack.demo.email_marketing_db import ensure_email_marketing_database
from devstack.demo.sql_systems import SQL_SYSTEMS
from devstack.policy_copies import without_processors_by_email
from devstack.postgres import EmbeddedPostgres
from dsrflow.settings import Settings
from policy.model import DEFAULT_POLICY, LoadedPolicy, load_policy
from tests.apps import lent_app
from tests.conftest import database_pool
from tests.pools import kept_pool, session_pool_on
from tests.processor_identity import processor_identity
from tests.sql_demo import clone, seeded_template
from tests.support import english_only, live_client
from tests.yaml_files import dump_yaml, read_yaml


@dataclass
class FanoutStack:
    settings: Settings
    policy: LoadedPolicy
    databases: dict[str, str]  # system -> database URL
    api_url: str
    email_url: str


def loopback_socket(host: str = "127.0.0.1") -> tuple[socket.socket, int]:
    """A socket bound to a free loopback port, and the port. Held from now until `serve` listens
    on it: a port only probed free (devstack.processes.free_port) can be taken meanwhile, by
    another test's server or any outgoing connection's ephemeral port, and the server then fails
    to bind (seen in CI). Made as TCP by name (IPPROTO_TCP, not the default 0): asyncio sets
    TCP_NODELAY only on the connections of a socket that says so, and without it an answer written
    in two parts (uvicorn's headers, then its body) waited for the client's delayed ACK, 40 ms an
    answer: a Mailchimp stand-in's read took 44 ms instead of 1.5, the suite's API calls as long."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((host, 0))
    return sock, sock.getsockname()[1]


async def serve(app, sock: socket.socket) -> tuple[uvicorn.Server, asyncio.Task]:
    server = uvicorn.Server(uvicorn.Config(app, log_config=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # it failed to start: say why rather than wait for ever
        await asyncio.sleep(0.05)
    return server, task


@contextlib.asynccontextmanager
async def served(app) -> AsyncIterator[str]:
    """`app` served on a free loopback port for the block; yields its base URL."""
    sock, port = loopback_socket()
    server, task = await serve(app, sock)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _a_new_world(database_url: str) -> None:
    """Each stack's demo systems are seeded afresh, so what an earlier test restricted in its own
    restricts nothing in these. Its restriction, recorded in force or under way with a system
    restricted, would otherwise keep this stack's lifts of the same demo subject from lifting
    (activities/restrictions.py `lift_held_by`), as it rightly does within one controller's
    systems: it is ended here (lifted; its restricted systems no longer so; one still running,
    whose plan holds its systems, closed: its stack's worker is gone)."""
    async with (await kept_pool(database_url)).acquire() as conn:
        await conn.execute("UPDATE restrictions SET lifted_at = now() WHERE lifted_at IS NULL")
        await conn.execute("UPDATE system_tasks SET status = 'not_found' WHERE action = 'restrict' AND status = 'done'")
        await conn.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE request_type = "
                           "'restriction' AND status IN ('in_progress', 'awaiting_approval')")


@contextlib.asynccontextmanager
async def fanout_stack(postgres: EmbeddedPostgres, settings: Settings, client, tmp: Path,
                       *, email_delay: float = 0.5, callback_attempts: int = 5,
                       keep_manual: tuple[str, ...] = (),
                       extra_systems: dict | None = None,
                       policy_updates: dict | None = None) -> AsyncIterator[FanoutStack]:
    await _a_new_world(settings.effective_database_url)
    suffix = uuid.uuid4().hex[:6]
    names = {**await clone(postgres, await seeded_template(postgres)), "email_marketing": f"email_marketing_{suffix}"}
    email_db = postgres.url(names["email_marketing"])
    await ensure_email_marketing_database(postgres, email_db)

    (email_socket, email_port), (api_socket, api_port) = loopback_socket(), loopback_socket()
    email_url = f"http://127.0.0.1:{email_port}{BASE_PATH}"
    # Processors reached by e-mail wait days for a person to confirm: tests/test_manual_email.py
    # covers them; here they would only hold every request open.
    content = without_processors_by_email(read_yaml(DEFAULT_POLICY), keep_manual)
    for system in SQL_SYSTEMS:
        content["systems"][system]["config"] = {"database": names[system]}
    # Responses go out without compliance approval here; tests/test_approval.py covers the gate.
    content["approval_required_for"] = []
    content["systems"]["email_marketing"]["config"]["base_url"] = email_url
    content["systems"].update(extra_systems or {})  # e.g. http systems (tests/test_saas_*.py)
    if extra_systems:
        english_only(content)
    content.update(policy_updates or {})  # e.g. small upload limits (tests/test_processor_exports.py)
    policy_path = tmp / f"policy-{suffix}.yaml"
    policy_path.write_text(dump_yaml(content, sort_keys=False))

    api_url = f"http://127.0.0.1:{api_port}"
    stack_settings = settings.model_copy(update={
        "policy_path": policy_path, "public_url": api_url, "task_queue": f"fanout-{suffix}",
    })
    key_pem, cert_pem = processor_identity()  # one per process: a new RSA key each stack cost 40-170 ms
    email_app = create_email_marketing_app(email_db, public_url=f"http://127.0.0.1:{email_port}",
                                           key_pem=key_pem, cert_pem=cert_pem,
                                           completion_delay=email_delay,
                                           callback_attempts=callback_attempts)
    async with lent_app(stack_settings, temporal_client=client,
                        pool=session_pool_on(stack_settings.effective_database_url)) as stack_app:
        servers = [await serve(email_app, email_socket), await serve(stack_app, api_socket)]
        try:
            yield FanoutStack(
                settings=stack_settings, policy=load_policy(policy_path),
                databases={s: postgres.url(n) for s, n in names.items()},
                api_url=api_url, email_url=email_url,
            )
        finally:
            for server, task in reversed(servers):
                server.should_exit = True
                await task


@contextlib.asynccontextmanager
async def fanout_stack_alone(postgres: EmbeddedPostgres, settings: Settings, client, tmp: Path, prefix: str,
                             **options: Any) -> AsyncIterator[tuple[FanoutStack, asyncpg.Pool]]:
    """`fanout_stack` on a database of its own, with its pool: for a test whose sweep or replay
    takes every row of its database (other modules leave theirs in the session's)."""
    async with database_pool(postgres, prefix) as (url, pool), \
            fanout_stack(postgres, settings.model_copy(update={"database_url": url}), client, tmp, **options) as stack:
        yield stack, pool


def api(stack: FanoutStack) -> httpx.AsyncClient:
    return live_client(base_url=stack.api_url, timeout=60)
