"""`dsrflow up` as a subprocess on free ports, for the tests that start the whole stack."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from dsrflow.infra.ports import free_ports as distinct_free_ports

PORT_NAMES = ("api", "pg", "temporal", "ui", "smtp", "demo")


def free_ports() -> dict[str, int]:
    return dict(zip(PORT_NAMES, distinct_free_ports(len(PORT_NAMES)), strict=True))


def up_env(home: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DSRFLOW_DATABASE_URL", "TEMPORAL_ADDRESS", "SMTP_HOST")}
    env.update(
        DSRFLOW_HOME=str(home),
        DSRFLOW_API_PORT=str(ports["api"]),
        DSRFLOW_POSTGRES_PORT=str(ports["pg"]),
        DSRFLOW_TEMPORAL_PORT=str(ports["temporal"]),
        DSRFLOW_TEMPORAL_UI_PORT=str(ports["ui"]),
        SMTP_PORT=str(ports["smtp"]),
        DSRFLOW_DEMO_OPENDSR_PORT=str(ports["demo"]),
        **extra,
    )
    return env


def start_up(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.main", "up"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def stop_up(proc: subprocess.Popen) -> list[psutil.Process]:
    """SIGINT like Ctrl-C; return every descendant that existed before (none when `up` has
    already exited, so the failure that ended it is the one reported)."""
    if proc.poll() is not None:
        return []
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    return children


async def wait_healthy(port: int, proc: subprocess.Popen, log: Path, run: int = 1, timeout: float = 90) -> dict:
    """Healthy, and `up` has printed its URLs for the `run`th time (it has finished starting)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"dsrflow up exited early with {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                response = await http.get(f"http://127.0.0.1:{port}/healthz")
                if response.status_code == 200 and log.read_text().count("dsrflow is up") == run:
                    return response.json()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)  # as `up` polls its API: a stack's start is what the tests wait for
    raise AssertionError(f"/healthz not 200 within {timeout}s")


async def start_healthy(home: Path, log: Path, **extra: str) -> tuple[subprocess.Popen, dict[str, int], dict[str, str]]:
    """`dsrflow up` in `home` on free ports (and a free worker metrics port), healthy: (the process, its
    ports, its environment). A port chosen free can be taken by another test's server before the
    stack binds it (the API then crash-loops on "address already in use", or `up` finds it "already in use"): started again, once, on
    other ports."""
    for attempt in (1, 2):
        ports = dict(zip((*PORT_NAMES, "metrics"), distinct_free_ports(len(PORT_NAMES) + 1), strict=True))
        env = up_env(home, ports, DSRFLOW_WORKER_METRICS_ADDRESS=f"127.0.0.1:{ports['metrics']}", **extra)
        proc = start_up(env, log)
        try:
            await wait_healthy(ports["api"], proc, log)
            return proc, ports, env
        except AssertionError:
            stop_up(proc)
            taken = any("already in use" in path.read_text(errors="replace").lower()
                        for path in [log, *(home / "logs").glob("*.log")])
            if not taken or attempt == 2:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def child_of_up(proc: subprocess.Popen, role: str) -> psutil.Process:
    """`up`'s running `cli.main <role>` child (worker or api)."""
    for child in psutil.Process(proc.pid).children():
        try:
            if child.cmdline()[-2:] == ["cli.main", role] and child.status() != psutil.STATUS_ZOMBIE:
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no running {role} child of dsrflow up")
