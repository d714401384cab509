"""The tests' connections to PostgreSQL, reused: each new connection is a new backend process on
the server (fork, authentication, catalog caches: about 12 ms of its CPU), and the suite's four
session servers started 1,400-2,000 each a run (docs/testing.md#how-the-suite-is-kept-fast)."""

from __future__ import annotations

import asyncio

import asyncpg

# The session's pool by its database's URL (the `pool` fixture registers it): an app a test builds
# on that database (`api_client`, `app_http`) takes its connections from it, where each app made a
# pool of its own, at least one backend a test.
_SESSION_POOLS: dict[str, asyncpg.Pool] = {}

# Small pools the helpers keep per database URL and event loop (the session's; a sync test's
# `asyncio.run` makes its own). A connection left idle closes after a few seconds, so the databases
# of tests gone by keep none, and one a restarted server dropped is replaced at the next acquire.
_KEPT: dict[tuple[asyncio.AbstractEventLoop, str], asyncpg.Pool] = {}
_KEPT_LOCK = asyncio.Lock()


def session_pool_on(url: str) -> asyncpg.Pool | None:
    """The session's pool if `url` is its database and the `pool` fixture is in use, else None."""
    return _SESSION_POOLS.get(url)


def register_session_pool(url: str, pool: asyncpg.Pool | None) -> None:
    if pool is None:
        del _SESSION_POOLS[url]
    else:
        _SESSION_POOLS[url] = pool


async def kept_pool(url: str, max_size: int = 2) -> asyncpg.Pool:
    """A pool on the database at `url` kept for the session (its connections while in use)."""
    key = (asyncio.get_running_loop(), url)
    if key not in _KEPT:
        async with _KEPT_LOCK:
            if key not in _KEPT:
                _KEPT[key] = await asyncpg.create_pool(url, min_size=0, max_size=max_size,
                                                       max_inactive_connection_lifetime=5)
    return _KEPT[key]


async def server_execute(server_url: str, statement: str) -> None:
    """`statement` on the server's own database (CREATE DATABASE ... TEMPLATE), one at a time on
    one kept connection. A server stopped and started since (tests/test_outages.py restarts its
    own) left that connection closed: the statement is sent once more on a new one."""
    pool = await kept_pool(server_url, max_size=1)
    try:
        await pool.execute(statement)
    except (asyncpg.ConnectionDoesNotExistError, ConnectionError):
        await pool.execute(statement)


async def fetch_rows(url: str, sql: str, *args) -> list[asyncpg.Record]:
    """Rows from a database by URL (a demo system's, a processor's), on a pool kept for it: a test
    reads one several times, some in a poll, and each read was a new backend."""
    return await (await kept_pool(url)).fetch(sql, *args)


def fetch_rows_now(url: str, sql: str, *args) -> list[asyncpg.Record]:
    """`fetch_rows` for a test that runs no event loop (one that calls the CLI's runner), on a
    connection of its own: a pool would outlive the loop `asyncio.run` makes for it."""
    async def once() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()
    return asyncio.run(once())
