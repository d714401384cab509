"""Outbox claims a dead sender left, then a PostgreSQL restart under them: the window that leaves an
e-mail `busy` for the outbox's SENDER_LIFETIME (RELIABILITY.md, 2026-12-07). A restart frees every
session's locks, a live sender's as a dead one's, so the outbox cannot tell them apart and waits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from dsrflow.infra.db import create_pool
from tests.conftest import make_database, running_postgres

Claimed = TypeVar("Claimed")


@contextlib.asynccontextmanager
async def claims_cut_off_by_a_restart(tmp_path: Path, prefix: str,
                                      claim: Callable[[Any], Awaitable[Claimed]]) -> AsyncIterator[tuple[Any, Claimed]]:
    """A database on a PostgreSQL server of its own, where `claim(pool)` leaves outbox rows claimed
    (and returns what the test needs of them); the server then restarted. Yields a pool on the
    restarted server and what `claim` returned."""
    async with running_postgres(tmp_path) as server:
        url = await make_database(server, prefix)
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            claimed = await claim(pool)
        finally:
            await pool.close()
        server.stop()
        server.start(tmp_path / "postgres-again.log")
        await server.wait_ready()
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            yield pool, claimed
        finally:
            await pool.close()
