"""`dsrflow up` in a subprocess: healthy, mail lands as .eml, Ctrl-C leaves nothing, data survives."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import asyncpg
import httpx
import psutil

from devstack.processes import free_port


def _env(home: Path, ports: dict[str, int]) -> dict[str, str]:
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
    )
    return env


async def _wait_healthy(port: int, proc: subprocess.Popen, log: Path, run: int, timeout: float = 90) -> dict:
    """Healthy, and `up` has printed its URLs for the `run`th time (it has finished starting)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"dsrflow up exited early with {proc.returncode}"
            try:
                response = await http.get(f"http://127.0.0.1:{port}/healthz")
                if response.status_code == 200 and log.read_text().count("dsrflow is up") == run:
                    return response.json()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError(f"/healthz not 200 within {timeout}s")


def _stop(proc: subprocess.Popen) -> list[psutil.Process]:
    """SIGINT like Ctrl-C; return every descendant that existed before."""
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    return children


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dsrflow.cli", "up"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def test_up_runs_stops_and_resumes(tmp_path):
    home = tmp_path / "home"
    ports = {name: free_port() for name in ("api", "pg", "temporal", "ui", "smtp", "demo")}
    env = _env(home, ports)
    log = tmp_path / "up.log"

    proc = _start(env, log)
    try:
        health = await _wait_healthy(ports["api"], proc, log, run=1)
        assert health["components"] == {"postgres": "ok", "temporal": "ok", "smtp": "ok"}
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{ports['ui']}/")).status_code == 200

        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "sink test"
        message.set_content("hello")
        await aiosmtplib.send(message, hostname="127.0.0.1", port=ports["smtp"])
        emls = list((home / "mail").glob("*.eml"))
        assert len(emls) == 1 and b"sink test" in emls[0].read_bytes()

        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{ports['pg']}/dsrflow")
        await conn.execute("CREATE TABLE kept_across_runs (note text); INSERT INTO kept_across_runs VALUES ('first run')")
        await conn.close()
    finally:
        children = _stop(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert children, "up started no child processes"
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"still running after Ctrl-C: {[c.cmdline()[:3] for c in alive]}"

    proc = _start(env, log)
    try:
        await _wait_healthy(ports["api"], proc, log, run=2)
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{ports['pg']}/dsrflow")
        assert await conn.fetchval("SELECT note FROM kept_across_runs") == "first run"
        await conn.close()
        assert len(list((home / "mail").glob("*.eml"))) == 1
    finally:
        _stop(proc)
    assert proc.returncode == 0


async def test_port_in_use_is_named(tmp_path):
    import socket

    ports = {name: free_port() for name in ("api", "pg", "temporal", "ui", "smtp", "demo")}
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["api"]))
        blocker.listen()
        done = subprocess.run([sys.executable, "-m", "dsrflow.cli", "up"], env=_env(tmp_path, ports),
                              capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"port {ports['api']} (dsrflow API) is already in use" in done.stderr
