"""The `sql` connector's bulk read for access packages: PostgreSQL writes the files.

For each (dataset, category) two COPY statements produce what the package holds: the records as
JSON, one object a line, and as CSV rows. Python only moves bytes, so a subject with a million
rows costs little more than the COPY itself. The values read exactly as the record-by-record
`access` gives them (`sql_queries.plain`): dates and times in ISO 8601 (UTC offsets as +00:00,
microseconds only when there are any), numerics as exact strings, bytea as hex, json as its text,
other types as their PostgreSQL output; in the CSV, booleans as True/False and arrays as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from activities.connectors.base import Subject
from activities.connectors.sql_queries import Plan, select_fields
from policy.model import Dataset

# COPY's CSV format with a delimiter and a quote character that JSON text never holds raw (it
# escapes control characters), so each line is a row's JSON exactly as PostgreSQL wrote it.
JSON_LINES = {"format": "csv", "delimiter": "\x02", "quote": "\x01"}
CSV_ROWS = {"format": "csv"}

UTC = "'UTC'"


def _iso(ref: str) -> str:
    """A timestamp as Python's isoformat writes it."""
    return (f"(to_char({ref}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_part('microseconds', {ref})::bigint "
            f"% 1000000 <> 0 THEN to_char({ref}, '.US') ELSE '' END)")


def _as_text(ref: str, pg_type: str) -> str | None:
    """The expression giving the column's value as `plain` turns it into text, or None when its
    JSON (numbers, booleans, text, arrays) or its PostgreSQL output already reads the same."""
    base = pg_type.split("(")[0].removesuffix("[]").strip()
    if pg_type.endswith("]"):
        return None
    if base == "timestamp with time zone":
        return f"({_iso(f'({ref} AT TIME ZONE {UTC})')} || '+00:00')"
    if base == "timestamp without time zone":
        return _iso(ref)
    if base == "date":
        return f"to_char({ref}, 'YYYY-MM-DD')"
    if base in ("numeric", "money", "json", "jsonb"):
        return f"{ref}::text"
    if base == "bytea":
        return f"encode({ref}, 'hex')"
    return None


def json_expression(types: Mapping[str, str]) -> Callable[[str, str], str]:
    return lambda column, ref: _as_text(ref, types[column]) or ref


def csv_expression(types: Mapping[str, str]) -> Callable[[str, str], str]:
    def text(column: str, ref: str) -> str:
        pg_type = types[column]
        if pg_type == "boolean":
            return f"CASE WHEN {ref} THEN 'True' WHEN NOT {ref} THEN 'False' END"
        if pg_type.endswith("]"):
            return f"to_json({ref})::text"
        return _as_text(ref, pg_type) or ref

    # format() writes a value as its type's output and NULL as an empty string, which COPY
    # quotes: a row whose only column is NULL stays a row ("") instead of an empty line that
    # CSV readers skip.
    return lambda column, ref: f"format('%s', {text(column, ref)})"


def export_queries(plan: Plan, dataset: Dataset, subject: Subject, held_keys: Any, columns: Sequence[str],
                   types: Mapping[str, str]) -> tuple[str, str, list[Any]]:
    """(JSON-lines query, CSV-rows query, their arguments) for these columns of the subject's rows."""
    json_sql, args = select_fields(plan, dataset, subject, held_keys, columns, json_expression(types))
    csv_sql, _ = select_fields(plan, dataset, subject, held_keys, columns, csv_expression(types))
    return f"SELECT row_to_json(r)::text FROM ({json_sql}) AS r", csv_sql, args
