"""What a PostgreSQL database holds, read from its catalog: the tables of one schema, their columns
and types, primary and foreign keys, row counts, and a few values of a column for pattern checks.

Used by `dsrflow policy draft` (activities/connectors/sql_draft.py) and `dsrflow policy check`
(activities/connectors/sql_check.py). It only reads. Sampled values are for the caller's pattern
checks and stay in memory: nothing here prints, logs or stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

# Above this many rows (the planner's estimate) a count would read the whole table for a figure
# a reviewer only needs roughly: the estimate is shown instead.
EXACT_COUNT_BELOW = 1_000_000
SAMPLE_SIZE = 20

_TABLES = """
SELECT c.oid, c.relname AS name, c.reltuples::bigint AS estimate
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""
_COLUMNS = """
SELECT a.attrelid AS oid, a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
# Key columns in the constraint's own order (a composite key's order matters for a reference).
_CONSTRAINTS = """
SELECT con.conrelid AS oid, con.contype::text AS kind, con.conname AS name,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, pos)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.pos)::text[] AS columns,
       fn.nspname AS ref_schema, fc.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, pos)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
             ORDER BY k.pos)::text[] AS ref_columns
FROM pg_catalog.pg_constraint con
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.conrelid = ANY($1::oid[]) AND con.contype IN ('p', 'f')
ORDER BY con.conrelid, con.conname
"""


def quote_ident(name: str) -> str:
    """An SQL identifier, quoted as PostgreSQL's quote_ident does for any name."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as format_type writes it: "text", "character varying(200)", "bigint"
    not_null: bool


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass
class Table:
    schema: str
    name: str
    columns: list[Column]
    primary_key: tuple[str, ...] = ()
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    rows: int = 0
    rows_estimated: bool = False

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


async def introspect(conn: asyncpg.Connection, schema: str = "public") -> list[Table]:
    """Every ordinary or partitioned table of `schema`, with columns, keys and row counts."""
    found = await conn.fetch(_TABLES, schema)
    tables = {r["oid"]: Table(schema=schema, name=r["name"], columns=[]) for r in found}
    oids = list(tables)
    for r in await conn.fetch(_COLUMNS, oids):
        tables[r["oid"]].columns.append(Column(r["name"], r["type"], r["not_null"]))
    for r in await conn.fetch(_CONSTRAINTS, oids):
        table = tables[r["oid"]]
        if r["kind"] == "p":
            table.primary_key = tuple(r["columns"])
        else:
            table.foreign_keys.append(ForeignKey(r["name"], tuple(r["columns"]), r["ref_schema"], r["ref_table"],
                                                 tuple(r["ref_columns"])))
    for r in found:
        table = tables[r["oid"]]
        if r["estimate"] >= EXACT_COUNT_BELOW:
            table.rows, table.rows_estimated = r["estimate"], True
        else:  # never analysed (-1), or small enough to count
            table.rows = await conn.fetchval(f"SELECT count(*) FROM {table.qualified}")
    return list(tables.values())


async def sample(conn: asyncpg.Connection, table: Table, column: str, size: int = SAMPLE_SIZE) -> list[str]:
    """Up to `size` non-empty values of a column, as text, for pattern checks only."""
    rows = await conn.fetch(
        f"SELECT {quote_ident(column)}::text AS v FROM {table.qualified} "
        f"WHERE {quote_ident(column)} IS NOT NULL LIMIT {int(size)}")
    return [r["v"] for r in rows if r["v"] and r["v"].strip()]
