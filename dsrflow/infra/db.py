"""asyncpg pool creation, with JSON codecs so jsonb columns read and write Python values."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from dsrflow.infra.reachable import Waiting, when_reachable

# What a database that is starting, restarting or not yet reachable answers with.
NOT_YET_REACHABLE = (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


class PooledConnection(asyncpg.Connection):  # type: ignore[misc] # asyncpg is untyped
    """A pooled connection given back without asyncpg's reset statement (advisory unlock, CLOSE
    ALL, UNLISTEN, RESET ALL): a round trip on every release, for session state dsrflow never
    leaves behind. It uses SET LOCAL and transaction-scoped locks; the one session lock, the
    outbox's (activities/outbox.py), is released in a `finally`, and a connection whose release
    failed is closed. An unfinished transaction is still rolled back (asyncpg does that apart
    from the statement)."""

    def get_reset_query(self) -> str:
        return ""


async def init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=init_connection,
                                     connection_class=PooledConnection)
    assert pool is not None
    return pool


async def create_pool_when_reachable(url: str, waiting: Waiting, *,
                                     min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """`create_pool`, retried while the database cannot be reached (dsrflow/infra/reachable.py);
    `waiting(error, delay)` is told of each failed attempt."""
    return await when_reachable(lambda: create_pool(url, min_size=min_size, max_size=max_size),
                                lambda error: isinstance(error, NOT_YET_REACHABLE), waiting)


async def connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await init_connection(conn)
    return conn


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))
