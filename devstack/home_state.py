"""What `dsrflow up` checks of its DSRFLOW_HOME before it starts anything: that no other `up` runs
on it, and that the keys its data was written under are still there.

Two stacks on one home (a second terminal with other ports) shared PostgreSQL's data directory,
and the second stopped with "PostgreSQL exited with code 1" and a log to read. A home whose `keys`
or `secret` had been deleted while its data was kept (a clean-up stopped halfway) started as if
nothing was wrong: a new key was made under the old one's name, every open workflow then failed
to decode in the worker's log alone, and a new secret left every stored code, link and search hash
unreadable.

The same goes for a home whose PostgreSQL data and Temporal's database are no longer a pair: a
`pg/` removed while `temporal.db` was kept left open workflows whose requests the new database had
never heard of (each failed in the worker's log), and a `temporal.db` removed while `pg/` was kept
left every open request without the workflow that moves it on (frozen, with nothing said).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

import asyncpg

from devstack.processes import StackError
from dsrflow.crypto.keys import keys_file
from dsrflow.settings import Settings

_LOCK = "up.lock"


def lock_home(home: Path) -> IO[str]:
    """Hold `home` for this `up` until the returned file is closed (or the process dies, when the
    kernel lets go of it: a crashed stack never blocks the next). Made first if need be."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        handle = (home / _LOCK).open("a+")
    except OSError as exc:  # a file of that name, a directory we may not write in, ...
        raise StackError(f"DSRFLOW_HOME={home} cannot hold the stack's data: {exc.strerror or exc}"
                         f"{f' ({exc.filename})' if exc.filename and str(exc.filename) != str(home) else ''}; "
                         f"choose a directory of your own") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise StackError(f"another `dsrflow up` (pid {holder}) is running on DSRFLOW_HOME={home}: stop it "
                         f"(Ctrl-C in its terminal), or give this one a DSRFLOW_HOME of its own") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def refuse_lost_keys(settings: Settings, home: Path) -> None:
    """Refuse to start on data whose key file is gone, rather than make a new one beside it."""
    keys = keys_file(settings).resolve()
    if not settings.keyring and not keys.exists() and not settings.temporal_address \
            and (home / "temporal.db").exists():
        raise StackError(_lost(keys, home / "temporal.db", "the workflows' encrypted inputs and results"))
    secret = home / "secret"  # where load_secret_key keeps it without DSRFLOW_SECRET_KEY
    if settings.secret_key is None and not secret.exists() and not settings.database_url \
            and (home / "pg" / "PG_VERSION").exists():
        raise StackError(_lost(secret, home / "pg", "the requests' codes, links, search hashes and package files"))


def _lost(key: Path, data: Path, what: str) -> str:
    return (f"{key} is missing, but {data} is there: {what} were made with it, and a new one would read "
            f"none of them. Put the file back (from a backup), or start afresh by removing "
            f"{data.parent} as a whole (every request in it is lost)")


def _both_embedded(settings: Settings) -> bool:
    return not settings.database_url and not settings.temporal_address


def refuse_lost_database(settings: Settings, home: Path) -> bool:
    """Refuse a home whose workflows (`temporal.db`) outlived the requests they run (`pg/`).
    Returns whether Temporal's database would be made afresh: `refuse_open_requests_without_workflows`
    then checks, once PostgreSQL is up and before Temporal starts, what that would leave."""
    workflows, requests = home / "temporal.db", home / "pg" / "PG_VERSION"
    if _both_embedded(settings) and workflows.exists() and not requests.exists():
        raise StackError(f"{home / 'pg'} is missing, but {workflows} is there: its workflows run requests that "
                         f"were in the missing database, and each would fail. Put {home / 'pg'} back (from a "
                         f"backup), or start afresh by removing {home} as a whole (every request in it is lost)")
    return _both_embedded(settings) and not workflows.exists()


async def refuse_open_requests_without_workflows(database_url: str, home: Path) -> None:
    """Refuse to make a fresh Temporal database beside a PostgreSQL one that holds open requests:
    their workflows went with the old `temporal.db`, and nothing would move them on. Closed
    requests keep their evidence in PostgreSQL and need no workflow; a database not migrated yet
    holds no request."""
    conn = await asyncpg.connect(database_url)
    try:
        stranded = await conn.fetchval("SELECT count(*) FROM dsr_requests WHERE closed_at IS NULL")
    except asyncpg.UndefinedTableError:
        return
    finally:
        await conn.close()
    if stranded:
        raise StackError(f"{home / 'temporal.db'} is missing, but {home / 'pg'} holds {stranded} open request(s) "
                         f"whose workflows were in it: none of them would move on. Put {home / 'temporal.db'} back "
                         f"(from a backup), or start afresh by removing {home} as a whole (every request in it "
                         f"is lost)")
