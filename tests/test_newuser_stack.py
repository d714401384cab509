"""`make run` as a new user runs it: a second one on the same DSRFLOW_HOME (another terminal, other
ports), one after the stack was killed with SIGKILL, one on a home whose key files were deleted
while its data was kept, one on a home that kept only one of its two databases, and one with a
misspelt variable in front of it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.up_process import free_ports, start_up, stop_up, up_env, wait_healthy


def _up_refused(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "up"], env=env, capture_output=True, text=True,
                          timeout=60)


def _gone(processes: list[psutil.Process], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes):
            return
        time.sleep(0.2)
    raise AssertionError(f"still running: {[p.cmdline()[:3] for p in processes if p.is_running()]}")


async def test_one_stack_per_home_killed_stacks_resume_and_lost_keys_are_refused(tmp_path, lifecycle_policy):
    home, log = tmp_path / "home", tmp_path / "up.log"
    env = up_env(home, free_ports(), DSRFLOW_DEMO="false", DSRFLOW_POLICY=str(lifecycle_policy))
    first = start_up(env, log)
    try:
        await wait_healthy(int(env["DSRFLOW_API_PORT"]), first, log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{env['DSRFLOW_API_PORT']}") as http:
            asked = await http.post("/v1/public/requests", json={"type": "erasure", "email": "ada@example.com"})
        assert asked.status_code == 202, asked.text  # open, waiting for its subject: its workflow is in temporal.db
        # Another terminal, ports of its own, the same home: it would share PostgreSQL's data
        # directory, and stopped with "PostgreSQL exited with code 1; see .../postgres.log".
        second = _up_refused(up_env(home, free_ports(), DSRFLOW_DEMO="false", DSRFLOW_POLICY=str(lifecycle_policy)))
        assert second.returncode == 1
        assert f"another `dsrflow up` (pid {first.pid}) is running on DSRFLOW_HOME={home}" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first one runs on
        children = psutil.Process(first.pid).children(recursive=True)
        # As root the server runs from a copy of its binaries that `up` removes as it stops.
        copies = {Path(c.exe()).parents[3] for c in children if Path(c.exe()).name == "postgres"
                  and Path(c.exe()).parents[3].name.startswith("dsrflow-postgres-")}
        first.send_signal(signal.SIGKILL)  # a crash: nothing of the stack stops it in order
        first.wait(10)
        _gone(children)
    finally:
        stop_up(first)

    # A clean-up stopped halfway: a key file gone, the data it was written under still there.
    for name, data in (("keys", "temporal.db"), ("secret", "pg")):
        kept = (home / name).read_bytes()
        (home / name).unlink()
        refused = _up_refused(env)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"{home / name} is missing, but {home / data} is there" in refused.stderr
        assert not (home / name).exists()  # no new one made beside the data
        (home / name).write_bytes(kept)
        os.chmod(home / name, 0o600)

    # The same with the data: one of the two databases removed, the other kept.
    aside = tmp_path / "aside"
    aside.mkdir()
    for gone, kept_name, said in (
            (["pg"], "temporal.db", "its workflows run requests that were in the missing database"),
            (sorted(p.name for p in home.glob("temporal.db*")), "pg", "holds 1 open request(s) whose workflows were in it")):
        for name in gone:
            (home / name).rename(aside / name)
        refused = _up_refused(env)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"{home / gone[0]} is missing, but {home / kept_name}" in refused.stderr and said in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not (home / gone[0]).exists()  # nothing made afresh beside the data
        for name in gone:
            (aside / name).rename(home / name)

    again = start_up(env, log)  # after the crash and the refusals, the stack starts as before
    try:
        await wait_healthy(int(env["DSRFLOW_API_PORT"]), again, log, run=2)
        assert not [copy for copy in copies if copy.exists()]  # the crashed one's, left behind, is gone
    finally:
        stop_up(again)
    assert again.returncode == 0, log.read_text()[-3000:]


def test_a_misspelt_variable_in_front_of_make_run_is_said_in_its_terminal(tmp_path):
    """The worker and the API warned of it in their log files only, where nobody starting the
    stack looks; the API then took port 8000 as if nothing had been said."""
    ports = free_ports()
    with socket.socket() as blocker:  # the stack stops at its first step: its terminal is what is read
        blocker.bind(("127.0.0.1", ports["api"]))
        blocker.listen()
        done = _up_refused({**up_env(tmp_path / "home", ports), "DSRFLOW_API_PROT": "8001"})
    assert done.returncode == 1
    assert ("warning: DSRFLOW_API_PROT: dsrflow reads no variable of this name, so it has no effect "
            "(did you mean DSRFLOW_API_PORT?)") in done.stderr


def test_a_home_that_cannot_be_a_directory_is_named(tmp_path):
    """A DSRFLOW_HOME naming a file printed the traceback of pathlib's mkdir."""
    taken = tmp_path / "home"
    taken.write_text("a file, not a directory\n")
    done = _up_refused(up_env(taken, free_ports()))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1] == (f"error: DSRFLOW_HOME={taken} cannot hold the stack's data: "
                                            f"File exists; choose a directory of your own")
