"""dsrflow's own processes (a worker, an API) started for a test, to be killed at a failpoint
(dsrflow/infra/failpoints.py): the crash-window tests' harness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.support import delete_schedules, settings_env


@contextlib.asynccontextmanager
async def dsrflow_process(role: str, settings, client, tmp_path: Path, *,
                          failpoints: str) -> AsyncIterator[subprocess.Popen]:
    """`dsrflow <role>` (worker, api) as its own process, dying at the named failpoints; its
    output goes to `<role>.log` in `tmp_path`."""
    env = {**os.environ, **settings_env(settings), "TEMPORAL_ADDRESS": client.service_client.config.target_host,
           "DSRFLOW_FAILPOINTS": failpoints}
    with open(tmp_path / f"{role}.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "cli.main", role], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if role == "worker":
            await delete_schedules(client)  # the process worker made them


async def died(process: subprocess.Popen, tmp_path: Path, timeout: float = 60, role: str = "worker") -> None:
    log = tmp_path / f"{role}.log"
    for _ in range(int(timeout * 10)):
        if process.poll() is not None:
            assert process.returncode == -9, log.read_text()[-3000:]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the {role} never reached its failpoint: " + log.read_text()[-3000:])



async def answering(http: httpx.AsyncClient, api: subprocess.Popen, tmp_path: Path) -> None:
    """Wait until the API process answers /healthz (failing with its log if it exits first)."""
    for _ in range(300):
        assert api.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
        with contextlib.suppress(httpx.TransportError):
            if (await http.get("/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the API never answered: " + (tmp_path / "api.log").read_text()[-3000:])


