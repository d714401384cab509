"""A worker started while PostgreSQL is down (restarting, or not up yet) waits for it instead of
exiting: before, `dsrflow worker` died on its first connection, and where nothing restarts it (the
chaos suite's stack, a plain `nohup`), no request moved again. Against a real PostgreSQL that
comes up on the port only after the wait has begun."""

from __future__ import annotations

import asyncio
import socket

from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port
from dsrflow.infra.db import create_pool_when_reachable


async def test_the_pool_waits_for_a_database_that_comes_up_later(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data", free_port())
    # The port is held (bound, not listening: connections are refused) until the server takes
    # it, so that no other test's process picks it as free meanwhile.
    held = socket.socket()
    held.bind(("127.0.0.1", server.port))
    failed: list[str] = []
    waiting = asyncio.ensure_future(create_pool_when_reachable(
        server.url(), lambda error, delay: failed.append(type(error).__name__), min_size=1, max_size=1))
    await asyncio.sleep(1.5)
    assert not waiting.done() and failed  # refused, and still trying
    held.close()
    server.start(tmp_path / "postgres.log")
    try:
        pool = await asyncio.wait_for(waiting, 60)
        try:
            assert await pool.fetchval("SELECT 1") == 1
        finally:
            await pool.close()
    finally:
        server.stop()
    assert set(failed) <= {"ConnectionRefusedError", "OSError", "CannotConnectNowError"}, failed
