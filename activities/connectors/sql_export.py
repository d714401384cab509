"""The `sql` connector's bulk read for access packages: PostgreSQL writes the files.

For each (dataset, category) two COPY statements produce what the package holds: the records as
JSON, one object a line followed by a comma, and as CSV rows. Python only moves bytes, so a
subject with a million rows costs little more than the COPY itself. The values read exactly as the record-by-record
`access` gives them (`sql_queries.plain`): dates and times in ISO 8601 as PostgreSQL's JSON writes
them (in UTC), numerics as exact strings, bytea as hex, json as its text, other types as their
PostgreSQL output; in the CSV, booleans as True/False and arrays as JSON, and text that would run
as a spreadsheet formula with a leading apostrophe (schemas/plain_text.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from activities.connectors.base import Subject
from activities.connectors.sql_queries import Linked, Plan, select_fields
from policy.systems import Dataset
from schemas.plain_text import sql_csv_cell

# COPY's CSV format with a delimiter and a quote character that JSON text never holds raw (it
# escapes control characters), so each line is a row's JSON exactly as PostgreSQL wrote it, and
# its comma.
JSON_LINES = {"format": "csv", "delimiter": "\x02", "quote": "\x01"}
CSV_ROWS = {"format": "csv"}

# Dates and times are written as JSON writes them (ISO 8601, in UTC: see SESSION).
SESSION = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'"
_TIMES = ("timestamp with time zone", "timestamp without time zone", "date",
          "time without time zone", "time with time zone")
_TEXT = ("text", "character varying")  # already text as they are (char(n) pads: not so)


def _base(pg_type: str) -> str:
    """The type without its modifiers: `timestamp(3) with time zone` -> `timestamp with time zone`."""
    return " ".join(re.sub(r"\([^)]*\)", "", pg_type).split())


def _as_text(ref: str, pg_type: str) -> str | None:
    """The expression giving the column's value as `plain` turns it into text, or None when its
    JSON (numbers, booleans, text, arrays) or its PostgreSQL output already reads the same."""
    base = _base(pg_type)
    if pg_type.endswith("]"):
        return None
    if base in ("numeric", "money", "json", "jsonb"):
        return f"{ref}::text"
    if base == "bytea":
        return f"encode({ref}, 'hex')"
    return None


def json_expression(types: Mapping[str, str]) -> Callable[[str, str], str]:
    return lambda column, ref: _as_text(ref, types[column]) or ref


def csv_expression(types: Mapping[str, str], columns: Sequence[str]) -> Callable[[str, str], str]:
    def text(column: str, ref: str) -> str:
        pg_type = types[column]
        if pg_type == "boolean":
            return f"CASE WHEN {ref} THEN 'True' WHEN NOT {ref} THEN 'False' END"
        if pg_type.endswith("]"):
            return f"to_json({ref})::text"
        if _base(pg_type) in _TIMES:
            return f"(to_json({ref}) #>> '{{}}')"
        # Text a spreadsheet would run as a formula gets its apostrophe here, as `_csv_value`
        # gives it record by record; numbers (a negative amount) stay numbers.
        if (as_text := _as_text(ref, pg_type)) is not None:
            return sql_csv_cell(as_text, text=True)
        return sql_csv_cell(ref, text=_base(pg_type) in _TEXT)

    if len(columns) > 1:
        return text
    # A row of one column that is NULL would be an empty line, which CSV readers skip: format()
    # writes NULL as an empty string, which COPY quotes ("").
    return lambda column, ref: f"format('%s', {text(column, ref)})"


def export_queries(plan: Plan, dataset: Dataset, subject: Subject, held_keys: Any, columns: Sequence[str],
                   types: Mapping[str, str], linked: Linked | None) -> tuple[str, str, list[Any]]:
    """(JSON-lines query, CSV-rows query, their arguments) for these columns of the subject's rows."""
    json_sql, args = select_fields(plan, dataset, subject, held_keys, columns, json_expression(types), linked)
    csv_sql, _ = select_fields(plan, dataset, subject, held_keys, columns, csv_expression(types, columns), linked)
    # Each record's line ends in the comma that separates it from the next in the package's JSON
    # array: PostgreSQL writes it for a few ms, where Python would rewrite every line.
    return f"SELECT row_to_json(r)::text || ',' FROM ({json_sql}) AS r", csv_sql, args


@asynccontextmanager
async def shared_snapshot(first: asyncpg.Connection, second: asyncpg.Connection) -> AsyncIterator[None]:
    """Both connections in one read-only snapshot, so that a part's JSON and CSV COPYs run at once
    on two server processes and still read the same rows, and every dataset of the system is read
    as of one moment: the first exports its snapshot, the second takes it before any query."""
    async with first.transaction(isolation="repeatable_read", readonly=True):
        snapshot = await first.fetchval("SELECT pg_export_snapshot()")
        if not re.fullmatch(r"[0-9A-F-]+", snapshot):  # written into SQL below: it cannot be a parameter
            raise ValueError("unexpected snapshot identifier")
        async with second.transaction(isolation="repeatable_read", readonly=True):
            await second.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            await first.execute(SESSION)
            await second.execute(SESSION)
            yield


Sink = Callable[[bytes], Awaitable[None]]


async def copy_together(copies: Sequence[tuple[asyncpg.Connection, str, Sink, Mapping[str, str]]],
                        args: Sequence[Any]) -> None:
    """Run the COPYs (connection, query, sink, options) at once; the first failure is raised once
    every COPY has ended. A sink that fails is not allowed to raise into asyncpg, which would then
    cancel its COPY and, when the failing chunk was the last, wait forever for the end of a
    command that has already ended: from the first failure on, every COPY reads its rows to the
    end and drops them, and its connection goes back to the pool as clean as after any query."""
    failures: list[BaseException] = []

    def guarded(sink: Sink) -> Sink:
        async def write(chunk: bytes) -> None:
            if failures:
                return
            try:
                await sink(chunk)
            except Exception as exc:
                failures.append(exc)
        return write

    async def copy(conn: asyncpg.Connection, sql: str, sink: Sink, options: Mapping[str, str]) -> None:
        try:
            await conn.copy_from_query(sql, *args, output=guarded(sink), **options)
        except Exception as exc:
            failures.append(exc)

    await asyncio.gather(*(copy(*each) for each in copies))
    if failures:
        raise failures[0]
