"""`dsrflow up` restarts a worker or API that dies, and stops, naming it, on a crash loop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from devstack.smtp_sink import read_mailbox
from tests.support import live_client
from tests.up_process import (
    child_of_up,
    free_ports,
    start_up,
    stop_up,
    up_env,
    wait_healthy,
)


def _launch(tmp_path: Path, policy: Path, **extra: str) -> tuple[Path, dict[str, int], dict[str, str], Path,
                                                                  subprocess.Popen]:
    """`dsrflow up` without demo systems, on the lifecycle policy: (home, ports, env, log, process)."""
    home, ports, log = tmp_path / "home", free_ports(), tmp_path / "up.log"
    env = up_env(home, ports, DSRFLOW_DEMO="false", DSRFLOW_POLICY=str(policy), **extra)
    return home, ports, env, log, start_up(env, log)


async def _wait_for_line(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{text!r} not in the output of dsrflow up within {timeout}s:\n{log.read_text()[-3000:]}")


async def _kill_and_see_restarted(proc: subprocess.Popen, log: Path, home: Path, role: str, name: str) -> None:
    victim = child_of_up(proc, role)
    os.kill(victim.pid, signal.SIGKILL)
    await _wait_for_line(log, f"the {name} was killed by SIGKILL; restarting it in 1s (restart 1); "
                              f"its log: {home / 'logs' / f'{role}.log'}")
    await _wait_for_line(log, f"the {name} restarted (pid ")
    assert child_of_up(proc, role).pid != victim.pid
    assert f"--- dsrflow up: restart 1 of the {name}, which was killed by SIGKILL ---" in \
        (home / "logs" / f"{role}.log").read_text()


async def test_killed_worker_and_api_are_restarted_and_a_request_completes(tmp_path, lifecycle_policy):
    home, ports, env, log, proc = _launch(tmp_path, lifecycle_policy)
    try:
        await wait_healthy(ports["api"], proc, log)
        await _kill_and_see_restarted(proc, log, home, "worker", "worker")
        await _kill_and_see_restarted(proc, log, home, "api", "API")
        await wait_healthy(ports["api"], proc, log)

        created = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "cli.main", "token", "create", "--role", "agent"],
            env=env, capture_output=True, text=True, check=True)
        token = created.stdout.strip()
        async with live_client(base_url=f"http://127.0.0.1:{ports['api']}", timeout=10,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            r = await http.post("/v1/requests", json={
                "type": "erasure", "subject": {"email": "restart@example.com"}, "identity_attested": True})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            deadline = time.monotonic() + 60
            while (status := (await http.get(f"/v1/requests/{rid}")).json()["status"]) != "completed":
                assert time.monotonic() < deadline, f"request {rid} still {status}"
                await asyncio.sleep(0.5)
        purposes = [m["X-DSR-Purpose"] for m in read_mailbox(home / "mail") if m["X-DSR-Request-Id"] == rid]
        assert purposes.count("response") == 1, purposes
        assert proc.poll() is None
    finally:
        stop_up(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]


async def test_crash_looping_worker_stops_the_stack_naming_it(tmp_path, lifecycle_policy):
    # An empty task queue passes the settings check but every worker start fails on it. The
    # pauses between restarts start at 50 ms here (1 s by default): 1.55 s in all, still doubling.
    home, ports, env, log, proc = _launch(tmp_path, lifecycle_policy, DSRFLOW_TASK_QUEUE="",
                                          DSRFLOW_RESTART_PAUSE="0.05")
    try:
        proc.wait(150)
    finally:
        if proc.poll() is None:
            stop_up(proc)
    output = log.read_text()
    assert proc.returncode == 1, output[-3000:]
    for n, pause in enumerate(("0.05", "0.1", "0.2", "0.4", "0.8"), start=1):
        assert f"restarting it in {pause}s (restart {n}); its log: {home / 'logs' / 'worker.log'}" in output
    assert (f"error: the worker is crash-looping: it exited with code 1 after 5 restarts within 60s "
            f"(last logged: ValueError: Task queue required); its log: {home / 'logs' / 'worker.log'}") in output
    assert "the API" not in output  # only the worker failed, and only it was restarted


async def test_a_dead_temporal_server_stops_the_stack_naming_it_and_its_log(tmp_path, lifecycle_policy):
    home, ports, env, log, proc = _launch(tmp_path, lifecycle_policy)
    try:
        await wait_healthy(ports["api"], proc, log)
        temporal = next(c for c in psutil.Process(proc.pid).children() if c.name() == "temporal")
        os.kill(temporal.pid, signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            stop_up(proc)
    output = log.read_text()
    assert proc.returncode == 1, output[-3000:]
    assert (f"error: the Temporal dev server was killed by SIGKILL; its log: {home / 'logs' / 'temporal.log'}"
            in output)
    assert "restarting" not in output  # the worker and API were not restarted meanwhile
