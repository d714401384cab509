"""A worker started while PostgreSQL or Temporal is down (restarting, or not up yet) waits for it
instead of exiting: before, `dsrflow worker` died on its first connection, and where nothing
restarts it (the chaos suite's stack, a plain `nohup`), no request moved again. Against a real
PostgreSQL and a real Temporal dev server that come up on their port only after the wait began.
Any other failure is raised at once (dsrflow/infra/reachable.py)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.testing import WorkflowEnvironment

from devstack.postgres import EmbeddedPostgres
from devstack.processes import find_binary, free_port
from dsrflow.crypto.keys import load_keyring
from dsrflow.infra.db import create_pool_when_reachable
from dsrflow.infra.reachable import when_reachable
from dsrflow.infra.temporal_client import build_data_converter, connect_client_when_reachable


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


async def test_the_client_waits_for_a_temporal_server_that_comes_up_later(settings):
    port = free_port()
    held = socket.socket()  # refused until the server takes the port, as above
    held.bind(("127.0.0.1", port))
    failed: list[str] = []
    waiting = asyncio.ensure_future(connect_client_when_reachable(
        settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"}),
        lambda error, delay: failed.append(str(error))))
    await asyncio.sleep(1.5)
    assert not waiting.done() and failed  # refused, and still trying
    assert all("tcp connect error" in message for message in failed), failed
    held.close()
    env = await WorkflowEnvironment.start_local(
        port=port, dev_server_existing_path=str(find_binary("temporal")),
        data_converter=build_data_converter(load_keyring(settings)))
    try:
        client = await asyncio.wait_for(waiting, 60)
        # Connected to the server that came up: it answers for the namespace the worker polls.
        assert (await client.workflow_service.get_system_info(GetSystemInfoRequest())).server_version
    finally:
        await env.shutdown()


async def test_a_failure_that_is_not_unreachability_is_raised_at_once():
    told: list[BaseException] = []

    async def misconfigured() -> None:
        raise RuntimeError("Failed client connect: invalid TLS configuration")

    with pytest.raises(RuntimeError, match="invalid TLS"):
        await asyncio.wait_for(when_reachable(misconfigured, lambda error: "tcp connect error" in str(error),
                                              lambda error, delay: told.append(error)), 5)
    assert told == []
