"""What a worker process keeps open for its connectors, shared by all of them.

A connector lives for one activity. Opening a connection per task (TLS negotiation,
authentication), checking the schema, or fetching a processor's discovery document and
certificate each time cost more CPU than the task's own work, so the worker keeps one small pool
per system database, remembers each schema check and each processor's discovery document for a
while, and keeps one object per connector kind that asks for it (the processors' certificates, an
HTTP client whose connections stay open between tasks). A pool's idle connections close by
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
# A schema checked (or a discovery document read) this recently is trusted: a column dropped
# since fails the statement anyway, and a processor that stopped offering a request type refuses it.
RECENT_SECONDS = 300.0

Schema = dict[str, dict[str, str]]  # table -> column -> SQL type
T = TypeVar("T")


class SharedConnections:
    def __init__(self) -> None:
        self._pools: dict[str, asyncpg.Pool] = {}
        self._lock = asyncio.Lock()
        self._recent: dict[str, tuple[float, Any]] = {}
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

    async def recent(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """`fetch()`'s answer under `key`, fetched again once older than `RECENT_SECONDS` (a fetch
        that fails is not kept)."""
        cached = self._recent.get(key)
        if cached is not None and time.monotonic() - cached[0] < RECENT_SECONDS:
            return cast(T, cached[1])
        value = await fetch()
        self._recent[key] = (time.monotonic(), value)
        return value

    async def schema(self, url: str, checked: Any, check: Callable[[], Awaitable[Schema]]) -> Schema:
        """`check()`'s answer for what `checked` (a system's description) uses in the database at
        `url`, recomputed when older than a few minutes."""
        async def checked_now() -> tuple[object, Schema]:
            return checked, await check()  # holding `checked` keeps its id unique

        return (await self.recent(f"schema {url} {id(checked)}", checked_now))[1]

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        kept, self._kept = list(self._kept.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools), *(k.aclose() for k in kept))
