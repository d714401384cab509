"""Connections to the systems' own databases, shared by every sql connector of a worker process.

A connector lives for one activity. Opening a connection per task (TLS negotiation,
authentication) and checking the schema each time cost more CPU than the task's own statements,
so the worker keeps one small pool per database and remembers each schema check for a while. A
pool's idle connections close by themselves, and a connection a restarted database dropped fails
its task's attempt as "unavailable", which the activity's retry cures on a fresh connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from dsrflow.infra.db import PooledConnection

# Per database: a few connections are enough (a task holds one for milliseconds).
_MAX_SIZE = 4
_IDLE_SECONDS = 60.0
# A schema checked this recently is trusted: a column dropped since fails the statement anyway.
_SCHEMA_SECONDS = 300.0

Schema = dict[str, dict[str, str]]  # table -> column -> SQL type


class SystemPools:
    def __init__(self) -> None:
        self._pools: dict[str, asyncpg.Pool] = {}
        self._lock = asyncio.Lock()
        self._schemas: dict[tuple[str, int], tuple[float, object, Schema]] = {}

    async def pool(self, url: str) -> asyncpg.Pool:
        async with self._lock:
            if url not in self._pools:
                self._pools[url] = await asyncpg.create_pool(
                    url, min_size=0, max_size=_MAX_SIZE, max_inactive_connection_lifetime=_IDLE_SECONDS,
                    connection_class=PooledConnection)
            return self._pools[url]

    async def schema(self, url: str, checked: Any, check: Callable[[], Awaitable[Schema]]) -> Schema:
        """`check()`'s answer for what `checked` (a system's description) uses in the database at
        `url`, recomputed when older than a few minutes."""
        key = (url, id(checked))
        cached = self._schemas.get(key)
        if cached is not None and cached[1] is checked and time.monotonic() - cached[0] < _SCHEMA_SECONDS:
            return cached[2]
        types = await check()
        self._schemas[key] = (time.monotonic(), checked, types)  # holding `checked` keeps its id unique
        return types

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools))
