"""The seeded demo SQL systems as sql connectors, for the connector's tests: seeded once per
PostgreSQL server into template databases; each test (and each fan-out stack, tests/fanout_stack.py)
gets its own copy (CREATE DATABASE ... TEMPLATE), so tests do not depend on their order. tests/conftest.py registers the fixtures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from activities.connectors import build_connector
from activities.connectors.base import ConnectorEnv, Subject
from activities.connectors.sql import SqlConnector
from devstack.demo.sql_systems import SQL_SYSTEMS, ensure_demo_databases
from devstack.postgres import EmbeddedPostgres
from dsrflow.settings import Settings
from policy.model import DEFAULT_POLICY, Policy, parse_policy
from tests.pools import server_execute
from tests.yaml_files import read_yaml

SECRET = b"k" * 32
ADA = Subject(request_id="r-ada", email="Ada@Example.com", name="Ada Lovelace")
GRACE = Subject(request_id="r-grace", email="grace@example.com")
TRACKED = Subject(request_id="r-tracked", email="tracked@example.com")
TABLES = {
    "crm": ["companies", "contacts", "support_requests", "chat_transcripts"],
    "analytics": ["users", "page_events"],
    "billing": ["customers", "invoices", "payments", "mandates"],
}


def policy_for(names: dict[str, str], edit=None) -> Policy:
    content = read_yaml(DEFAULT_POLICY)
    for system, database in names.items():
        content["systems"][system]["config"] = {"database": database}
    if edit:
        edit(content)
    return parse_policy(content).policy


class Systems:
    """Connectors to one set of demo databases, plus direct connections for checking."""

    def __init__(self, server: EmbeddedPostgres, names: dict[str, str], policy: Policy) -> None:
        self.server, self.names, self.policy = server, names, policy
        self._pools: dict[str, asyncpg.Pool] = {}
        settings = Settings(DSRFLOW_DATABASE_URL=server.url("not_used"))
        self.connectors: dict[str, SqlConnector] = {
            system: build_connector(ConnectorEnv(  # type: ignore[misc]
                system_name=system, system=policy.systems[system], policy=policy, settings=settings,
                secret=SECRET, callback_url="http://127.0.0.1:8000/v1/callbacks/opendsr",
            ))
            for system in SQL_SYSTEMS
        }

    async def fetch(self, system: str, sql: str, *args):
        # A small pool per system for the test's checks: a connection for each (`counts` and
        # `checksums` read ten tables) was a new PostgreSQL backend each, ~12 ms of its CPU.
        if system not in self._pools:
            self._pools[system] = await asyncpg.create_pool(self.server.url(self.names[system]), min_size=0, max_size=2)
        return await self._pools[system].fetch(sql, *args)

    async def value(self, system: str, sql: str, *args):
        return (await self.fetch(system, sql, *args))[0][0]

    async def counts(self) -> dict[str, int]:
        return {f"{s}.{t}": await self.value(s, f"SELECT count(*) FROM {t}") for s in TABLES for t in TABLES[s]}

    async def checksums(self) -> dict[str, str]:
        return {
            f"{s}.{t}": await self.value(s, f"SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) FROM {t} x")
            for s in TABLES for t in TABLES[s]
        }

    async def close(self) -> None:
        for connector in self.connectors.values():
            await connector.close()
        for pool in self._pools.values():
            await pool.close()


# The templates of each PostgreSQL server, by its data directory: seeding generates and copies in
# some 40,000 rows (about 2 s), a copy of the seeded databases takes a quarter of that.
_TEMPLATES: dict[Path, dict[str, str]] = {}


async def seeded_template(server: EmbeddedPostgres) -> dict[str, str]:
    """The demo databases seeded once on `server`, to be copied by `clone`, never used directly:
    system -> database name."""
    if server.data_dir not in _TEMPLATES:
        names = {system: f"tpl_{system}_{uuid.uuid4().hex[:8]}" for system in SQL_SYSTEMS}
        await ensure_demo_databases(server, server.url, names)
        _TEMPLATES[server.data_dir] = names
    return _TEMPLATES[server.data_dir]


@pytest.fixture(scope="module")
async def template(postgres: EmbeddedPostgres) -> dict[str, str]:
    return await seeded_template(postgres)


async def clone(server: EmbeddedPostgres, template: dict[str, str]) -> dict[str, str]:
    names = {system: f"{system}_{uuid.uuid4().hex[:8]}" for system in SQL_SYSTEMS}
    for system, name in names.items():
        await server_execute(server.url(), f'CREATE DATABASE "{name}" TEMPLATE "{template[system]}"')
    return names


@pytest.fixture
async def systems(postgres: EmbeddedPostgres, template: dict[str, str]) -> AsyncIterator[Systems]:
    names = await clone(postgres, template)
    found = Systems(postgres, names, policy_for(names))
    yield found
    await found.close()


