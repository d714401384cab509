"""Several writes in one statement: atomic on their own, with no transaction (BEGIN and COMMIT
are two more round trips, and a transaction held open keeps its locks meanwhile).

Each write becomes a data-modifying WITH query of one statement. PostgreSQL runs every such query
exactly once, against the statement's one snapshot: a write does not see another's rows, so
writes carried together must not depend on each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

_PLACEHOLDER = re.compile(r"\$(\d+)")


@dataclass(frozen=True)
class Write:
    """An INSERT, UPDATE or DELETE without RETURNING, with its own $1, $2..."""
    sql: str
    args: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if "$$" in self.sql:  # placeholders are renumbered by their text: no dollar quoting
            raise ValueError("a Write's statement cannot use dollar quoting")

    async def execute(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        """The write on its own."""
        await conn.execute(self.sql, *self.args)


def columns(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Rows as columns, the arguments of one `INSERT ... SELECT * FROM unnest($1::type[], ...)`:
    all rows in one statement rather than one execution each."""
    return tuple(list(column) for column in zip(*rows, strict=True))


def with_writes(statement: str, arity: int, writes: Sequence[Write]) -> tuple[str, list[Any]]:
    """`statement` (a SELECT using $1 to $`arity`) with the writes before it, and the writes'
    arguments, to follow the statement's own. The statement reads how many rows each write
    returned, so every write has run, and locked its rows, before the statement's own work: the
    order a transaction would give them."""
    if not writes:
        return statement, []
    parts: list[str] = []
    args: list[Any] = []
    for n, write in enumerate(writes):
        parts.append(f"w{n} AS ({_renumbered(write.sql, arity + len(args))} RETURNING 1)")
        args += write.args
    done = ", ".join(f"(SELECT count(*) FROM w{n}) AS c{n}" for n in range(len(writes)))
    return f"WITH {', '.join(parts)} {statement} FROM {done}", args


def _renumbered(sql: str, offset: int) -> str:
    return _PLACEHOLDER.sub(lambda m: f"${int(m[1]) + offset}", sql)


async def write_together(conn: asyncpg.Connection | asyncpg.Pool, writes: Sequence[Write]) -> None:
    """The writes in one statement."""
    if writes:
        statement, args = with_writes("SELECT 1", 0, writes)
        await conn.execute(statement, *args)
