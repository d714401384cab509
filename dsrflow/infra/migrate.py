"""Versioned SQL migrations from `migrations/NNNN_name.sql`, applied in order, each once.

Safe to run twice and from two processes at once: a session advisory lock serialises runners, and
each file is applied in its own transaction together with its row in `schema_migrations`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import asyncpg

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x64737266  # "dsrf": any constant shared by every runner


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover() -> list[Migration]:
    found = []
    for entry in resources.files("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(match.group(1), match.group(2), entry.read_text()))
        elif entry.name.endswith(".sql"):
            raise MigrationError(f"migrations/{entry.name}: expected a name like 0001_description.sql")
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"migrations: two files share a version number in {versions}")
    return found


async def migrate(database_url: str, *, before: str | None = None) -> list[str]:
    """Apply pending migrations (only those older than version `before`, if given: a test of a
    migration on data written before it); return the versions applied by this call."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            return await _apply_pending(conn, before)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()


async def _apply_pending(conn: asyncpg.Connection, before: str | None) -> list[str]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version text PRIMARY KEY,
               name text NOT NULL,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    applied = {r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")}
    done = []
    for migration in discover():
        if before is not None and migration.version >= before:
            break
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migrations/{migration.version}_{migration.name}.sql changed after it was "
                    f"applied; add a new migration instead of editing an applied one"
                )
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version, migration.name, migration.checksum,
            )
        done.append(migration.version)
    return done


@cache
def _known() -> tuple[Migration, ...]:
    return tuple(discover())  # the files ship with the code: read once per process


async def pending_migrations(conn: asyncpg.Connection | asyncpg.Pool) -> list[str]:
    """The migrations this code has that the database has not applied ("0031_name"), oldest
    first: a worker or an API on such a database fails on a missing table or column at every
    step, where it should say to run `dsrflow migrate`."""
    applied = set() if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL") else {
        r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [f"{m.version}_{m.name}" for m in _known() if m.version not in applied]


def not_migrated(pending: list[str]) -> str:
    return (f"the database has {len(pending)} migration(s) this version needs and has not applied "
            f"(the newest {pending[-1]}): run `dsrflow migrate` first")
