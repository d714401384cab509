"""`dsrflow up` in a subprocess: healthy, mail lands as .eml, Ctrl-C leaves nothing, data survives."""

from __future__ import annotations

import socket
import subprocess
import sys
from email.message import EmailMessage

import aiosmtplib
import asyncpg
import httpx
import psutil

from tests.up_process import free_ports, start_up, stop_up, up_env, wait_healthy


async def test_up_runs_stops_and_resumes(tmp_path):
    home = tmp_path / "home"
    ports = free_ports()
    env = up_env(home, ports)
    log = tmp_path / "up.log"

    proc = start_up(env, log)
    try:
        health = await wait_healthy(ports["api"], proc, log, run=1)
        assert health == {"status": "ok"}  # postgres, temporal and smtp all answered (details: tests/test_untrusted_input.py)
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
        children = stop_up(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert children, "up started no child processes"
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"still running after Ctrl-C: {[c.cmdline()[:3] for c in alive]}"

    proc = start_up(env, log)
    try:
        await wait_healthy(ports["api"], proc, log, run=2)
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{ports['pg']}/dsrflow")
        assert await conn.fetchval("SELECT note FROM kept_across_runs") == "first run"
        await conn.close()
        assert len(list((home / "mail").glob("*.eml"))) == 1
    finally:
        stop_up(proc)
    assert proc.returncode == 0


async def test_port_in_use_is_named(tmp_path):
    ports = free_ports()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["api"]))
        blocker.listen()
        done = subprocess.run([sys.executable, "-m", "cli.main", "up"], env=up_env(tmp_path, ports),
                              capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"port {ports['api']} (dsrflow API) is already in use" in done.stderr
