"""Migrations apply in order, once, even when run twice or by two processes at the same time."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from dsrflow.infra.migrate import discover, migrate


async def test_twice_and_concurrently(postgres):
    name = f"mig_{uuid.uuid4().hex[:8]}"
    await postgres.ensure_database(name)
    url = postgres.url(name)
    first, second = await asyncio.gather(migrate(url), migrate(url))
    versions = [m.version for m in discover()]
    assert sorted(first + second) == versions  # each applied exactly once, by one of the two
    assert await migrate(url) == []
    conn = await asyncpg.connect(url)
    try:
        recorded = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
        assert recorded == versions
    finally:
        await conn.close()


async def test_edited_migration_is_refused(postgres):
    name = f"mig_{uuid.uuid4().hex[:8]}"
    await postgres.ensure_database(name)
    url = postgres.url(name)
    await migrate(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = '0001'")
    finally:
        await conn.close()
    with pytest.raises(Exception, match="changed after it was applied"):
        await migrate(url)
