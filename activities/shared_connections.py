"""What a worker process keeps open for its connectors, shared by all of them.

A connector lives for one activity. Opening a connection per task (TLS negotiation,
authentication), checking the schema, or fetching a processor's discovery document and
certificate each time cost more CPU than the task's own work, so the worker keeps one small pool
per system database, remembers each schema check for a while, and keeps one object per connector
kind that asks for it (the processors' certificates). A pool's idle connections close by
themselves, and a connection a restarted database dropped fails its task's attempt as
"unavailable", which the activity's retry cures on a fresh connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import asyncpg

from dsrflow.infra.db import PooledConnection

# Per database: a few connections are enough (a task holds one for milliseconds).
_MAX_SIZE = 4
_IDLE_SECONDS = 60.0
# A schema checked this recently is trusted: a column dropped since fails the statement anyway.
_SCHEMA_SECONDS = 300.0

Schema = dict[str, dict[str, str]]  # table -> column -> SQL type
T = TypeVar("T")


class SharedConnections:
    def __init__(self) -> None:
        self._pools: dict[str, asyncpg.Pool] = {}
        self._lock = asyncio.Lock()
        self._schemas: dict[tuple[str, int], tuple[float, object, Schema]] = {}
        self._kept: dict[str, Any] = {}

    def kept(self, key: str, make: Callable[[], T]) -> T:
        """The process's one `make()` under `key` (closed with the others: its `aclose()`)."""
        if key not in self._kept:
            self._kept[key] = make()
        return cast(T, self._kept[key])

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
        kept, self._kept = list(self._kept.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools), *(k.aclose() for k in kept))
