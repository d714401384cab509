"""Helpers of the audit tests: cheap fresh databases, and tampering as someone with superuser
access to the database could (the append-only triggers switched off for the session)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from devstack.postgres import EmbeddedPostgres
from dsrflow.domain.audit import GENESIS, chain_hash, event_body
from dsrflow.infra.db import connect
from tests.pools import server_execute


async def clone_database(server: EmbeddedPostgres, template_url: str, prefix: str) -> str:
    """A copy of a migrated database (CREATE DATABASE ... TEMPLATE: much faster than migrating)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await server_execute(server.url(), f'CREATE DATABASE "{name}" TEMPLATE "{template_url.rsplit("/", 1)[1]}"')
    return server.url(name)


@contextlib.asynccontextmanager
async def tampering(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")  # no triggers, as a superuser could
        yield conn
    finally:
        await conn.close()


async def seq_at(conn: asyncpg.Connection, chain: str, pos: int) -> int:
    seq: int = await conn.fetchval("SELECT seq FROM audit_events WHERE chain_id = $1 AND chain_pos = $2", chain, pos)
    return seq


async def swap(conn: asyncpg.Connection, chain: str, pos: int) -> None:
    """Swap the events at `pos` and `pos + 1` (their rows, hashes and all)."""
    await conn.execute("UPDATE audit_events SET chain_pos = -1 WHERE chain_id = $1 AND chain_pos = $2", chain, pos)
    await conn.execute("UPDATE audit_events SET chain_pos = $2 WHERE chain_id = $1 AND chain_pos = $2 + 1", chain, pos)
    await conn.execute("UPDATE audit_events SET chain_pos = $2 + 1 WHERE chain_id = $1 AND chain_pos = -1", chain, pos)


async def rehash(conn: asyncpg.Connection, chain: str, from_pos: int, through_tail: bool = True) -> None:
    """Recompute the hashes from `from_pos` (to the chain's end, or that one event only), and the
    chain's head bookkeeping, as a careful attacker would."""
    rows = await conn.fetch("SELECT * FROM audit_events WHERE chain_id = $1 AND chain_pos >= $2 ORDER BY chain_pos",
                            chain, from_pos)
    prev = await conn.fetchval("SELECT hash FROM audit_events WHERE chain_id = $1 AND chain_pos = $2",
                               chain, from_pos - 1) or GENESIS
    for row in rows if through_tail else rows[:1]:
        digest = chain_hash(prev, event_body(row))
        await conn.execute("UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE seq = $1", row["seq"], prev, digest)
        prev = digest
    if through_tail:
        await conn.execute("UPDATE audit_chain_heads SET last_pos = $2, last_hash = $3 WHERE chain_id = $1",
                           chain, rows[-1]["chain_pos"] if rows else from_pos - 1, prev)
