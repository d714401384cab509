"""SQL for the `sql` connector, built only from the validated policy.

Identifiers (tables, columns) come from the policy and are quoted by `ident`; every value the
subject or a correction brings is a query parameter. Each query names its tables with aliases
(t1, t2, ...) and qualifies every column, so a column missing from a parent table is an error
rather than a silent reference to the outer query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from activities.connectors.base import Subject
from policy.disclosure import Origin
from policy.systems import Dataset, FieldRule, System

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Identities that single a person out; a name alone does not (many people share one).
STRONG_IDENTITIES: tuple[Literal["email", "customer_id"], ...] = ("email", "customer_id")


def ident(name: str) -> str:
    """Quote an identifier from the policy; refuse anything the policy model would refuse."""
    if not _IDENT.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain identifier")
    return f'"{name}"'


def as_text(value: Any) -> str | None:
    """A value as the text PostgreSQL parses for the column's type (see `Query.value`)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def plain(value: Any) -> Any:
    """A column value as JSON-friendly data for the access package: dates and times as ISO 8601
    (fractions of a second without trailing zeros), decimals as exact strings, addresses and
    other types as their text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, time)) and value.microsecond:
        # As PostgreSQL writes it in JSON (sql_export.py copies that): no trailing zeros.
        head, _, rest = value.isoformat().partition(".")
        return f"{head}.{rest[:6].rstrip('0')}{rest[6:]}"
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


class Query:
    """Collects parameters and table aliases while one statement is built."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self._aliases = 0

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def value(self, value: Any, pg_type: str) -> str:
        """A parameter converted to the column's type by PostgreSQL, whatever its Python type:
        corrections arrive as strings, policy values as YAML scalars."""
        return f"CAST({self.arg(as_text(value))}::text AS {pg_type})"

    def alias(self) -> str:
        self._aliases += 1
        return f"t{self._aliases}"


class Plan:
    """A sql system's datasets in dependency order, and how erasure treats each."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.datasets = {d.name: d for d in system.datasets}
        self.children: dict[str, list[Dataset]] = {name: [] for name in self.datasets}
        for dataset in system.datasets:
            if dataset.via:
                self.children[dataset.via.dataset].append(dataset)
        ordered: list[Dataset] = []

        def visit(dataset: Dataset, path: tuple[str, ...]) -> None:
            if any(done.name == dataset.name for done in ordered):
                return
            if dataset.name in path:
                raise ValueError(f"datasets refer to each other in a cycle: {' -> '.join(path)}")
            if dataset.via:
                visit(self.datasets[dataset.via.dataset], (*path, dataset.name))
            ordered.append(dataset)

        for dataset in system.datasets:
            visit(dataset, ())
        self.parents_first: list[Dataset] = ordered
        self.children_first: list[Dataset] = ordered[::-1]
        self.erasure = self._erasure_modes()

    def _erasure_modes(self) -> dict[str, Literal["delete", "anonymise"]]:
        """A parent cannot be deleted while an anonymised child keeps pointing at it: such a
        parent is anonymised instead. A child that nulls its link column frees its parent."""
        modes = {d.name: d.erasure for d in self.parents_first}
        for dataset in self.children_first:  # every child is decided before its parent
            for child in self.children[dataset.name]:
                assert child.via is not None
                link = child.fields.get(child.via.column)
                keeps_link = link is None or link.erase != "null"
                if modes[child.name] == "anonymise" and keeps_link:
                    modes[dataset.name] = "anonymise"
        return modes

    def columns_used(self, dataset: Dataset) -> dict[str, set[str]]:
        """Every (table -> columns) this dataset's queries touch, for checking the schema."""
        used = {dataset.key, *dataset.identify.values(), *dataset.fields}
        if dataset.restricted_column:
            used.add(dataset.restricted_column)
        for updates in dataset.objection_updates.values():
            used.update(updates)
        tables = {dataset.table: used}
        if dataset.via:
            used.add(dataset.via.column)
            parent = self.datasets[dataset.via.dataset]
            tables.setdefault(parent.table, set()).add(dataset.via.parent_column or parent.key)
        return tables


# The values of a child's link column that point at the subject's rows of its parent, read
# beforehand as text (`linked_values`), and the link column's type.
Linked = tuple[list[str], str]


def match(plan: Plan, dataset: Dataset, subject: Subject, q: Query, alias: str, linked: Linked | None = None) -> str:
    """A condition on `alias` (a row of `dataset`) that holds for the subject's rows: an identity
    column matches, or the row points at one of the subject's rows in the parent dataset (given
    as `linked` values, or found by a subquery)."""
    def col(name: str) -> str:
        return f"{alias}.{ident(name)}"

    clauses: list[str] = [equal for _, equal in identity_clauses(dataset, subject, q, alias)]
    name_column = dataset.identify.get("name")
    if name_column and subject.name and not any(i in dataset.identify for i in STRONG_IDENTITIES):
        clauses.append(f"{col(name_column)}::text = {q.arg(subject.name)}::text")
    if dataset.via and linked is not None:
        # As values, the planner knows how many rows they match: a subject holding most of a table
        # is read in key order, not found through an index and sorted.
        values, pg_type = linked
        clauses.append(f"{col(dataset.via.column)} = ANY(CAST({q.arg(values)}::text[] AS {pg_type}[]))")
    elif dataset.via:
        parent = plan.datasets[dataset.via.dataset]
        parent_alias = q.alias()
        parent_column = dataset.via.parent_column or parent.key
        clauses.append(
            f"{col(dataset.via.column)} IN (SELECT {parent_alias}.{ident(parent_column)} "
            f"FROM {ident(parent.table)} AS {parent_alias} "
            f"WHERE {match(plan, parent, subject, q, parent_alias)})"
        )
    return "(" + " OR ".join(clauses) + ")" if clauses else "FALSE"


def linked_values(plan: Plan, dataset: Dataset, subject: Subject) -> tuple[str, list[Any]]:
    """The query for the values of `dataset`'s link column that point at the subject's rows of
    its parent (`Linked`), as text."""
    assert dataset.via is not None
    parent = plan.datasets[dataset.via.dataset]
    column = ident(dataset.via.parent_column or parent.key)
    q = Query()
    where = match(plan, parent, subject, q, "t0")
    return (f"SELECT DISTINCT t0.{column}::text FROM {ident(parent.table)} AS t0 "
            f"WHERE {where} AND t0.{column} IS NOT NULL"), q.args


def identity_clauses(dataset: Dataset, subject: Subject, q: Query, alias: str) -> list[tuple[str, str]]:
    """(column, "the row's column holds the subject's value") per strong identity the subject
    has and the dataset identifies by; e-mail compares case-insensitively."""
    identities = {"email": subject.email, "customer_id": subject.customer_id}
    clauses = []
    for identity in STRONG_IDENTITIES:
        column, value = dataset.identify.get(identity), identities[identity]
        if column and value:
            cell = f"{alias}.{ident(column)}::text"
            clauses.append((column, f"lower({cell}) = lower({q.arg(value)}::text)" if identity == "email"
                            else f"{cell} = {q.arg(value)}::text"))
    return clauses


def category_groups(dataset: Dataset) -> list[tuple[str, dict[str, Origin]]]:
    """(category, {column: origin}) for each category the dataset's fields fall in."""
    groups: dict[str, dict[str, Origin]] = {}
    for column, rule in dataset.fields.items():
        groups.setdefault(rule.category, {})[column] = dataset.origin_of(column)
    return list(groups.items())


def select_fields(plan: Plan, dataset: Dataset, subject: Subject, held_keys: Any = None,
                  columns: Sequence[str] | None = None,
                  expression: Callable[[str, str], str] | None = None,
                  linked: Linked | None = None) -> tuple[str, list[Any]]:
    """The subject's rows, plus rows kept under a hold (by key: minimised, they no longer carry
    the identities that `match` looks for): `columns` (default: the dataset's fields), each as
    `expression(column, reference)` when given (named after its column)."""
    q, alias = Query(), "t0"
    refs = [(c, f"{alias}.{ident(c)}") for c in (dataset.fields if columns is None else columns)]
    select = ", ".join(f"{expression(c, ref)} AS {ident(c)}" if expression else ref for c, ref in refs)
    where = match(plan, dataset, subject, q, alias, linked)
    if held_keys:
        where = f"({where} OR {alias}.{ident(dataset.key)}::text = ANY({q.arg(list(held_keys))}::text[]))"
    sql = (f"SELECT {select} FROM {ident(dataset.table)} AS {alias} WHERE {where} "
           f"ORDER BY {alias}.{ident(dataset.key)}")
    return sql, q.args


def update_rows(
    plan: Plan, dataset: Dataset, subject: Subject, values: Mapping[str, Any], types: Mapping[str, str],
    leave: Sequence[str] = (),
) -> tuple[str, list[Any]]:
    """Set `values` on the subject's rows; the statement returns (found, changed, left): rows
    already holding every value count as found but not changed, which keeps repeated actions
    honest. Rows whose key is in `leave` are left as they are, and counted apart."""
    q, alias = Query(), "t0"
    where = match(plan, dataset, subject, q, alias)
    key, table = ident(dataset.key), ident(dataset.table)
    # The subject's rows are matched once; each says whether it is one to leave.
    left = f"{alias}.{key}::text = ANY({q.arg(list(leave))}::text[])" if leave else "false"
    assignments, differs = [], []
    for column, value in values.items():
        expr = "NULL" if value is None else q.value(value, types[column])
        assignments.append(f"{ident(column)} = {expr}")
        differs.append(f"u.{ident(column)} IS DISTINCT FROM {expr}")
    sql = (
        f"WITH found AS (SELECT {alias}.{key} AS k, {left} AS left_as_is FROM {table} AS {alias} WHERE {where}), "
        f"changed AS (UPDATE {table} AS u SET {', '.join(assignments)} FROM found "
        f"WHERE u.{key} = found.k AND NOT found.left_as_is AND ({' OR '.join(differs)}) RETURNING 1) "
        f"SELECT (SELECT count(*) FROM found WHERE NOT left_as_is) AS found, "
        f"(SELECT count(*) FROM changed) AS changed, (SELECT count(*) FROM found WHERE left_as_is) AS left"
    )
    return sql, q.args


def select_keys_page(
    plan: Plan, dataset: Dataset, subject: Subject, columns: list[str], after: Any, limit: int
) -> tuple[str, list[Any]]:
    """One page (keyset pagination) of the subject's rows: key plus `columns`."""
    q, alias = Query(), "t0"
    where = match(plan, dataset, subject, q, alias)
    key = f"{alias}.{ident(dataset.key)}"
    if after is not None:
        where += f" AND {key} > {q.arg(after)}"
    selected = ", ".join([key, *(f"{alias}.{ident(c)}" for c in columns)])
    sql = (f"SELECT {selected} FROM {ident(dataset.table)} AS {alias} WHERE {where} "
           f"ORDER BY {key} LIMIT {int(limit)}")
    return sql, q.args


def update_by_key(
    dataset: Dataset, hashed: list[str], values: Mapping[str, Any], types: Mapping[str, str]
) -> tuple[str, list[Any]]:
    """UPDATE one row, for executemany: $1 is the key, $2.. the hashed columns' new values, then
    the constant `values` (null / fixed), returned as the arguments to append to every row's."""
    q = Query()
    for _ in range(1 + len(hashed)):
        q.arg(None)
    assignments = [f"{ident(c)} = ${i + 2}" for i, c in enumerate(hashed)]
    for column, value in values.items():
        expr = "NULL" if value is None else q.value(value, types[column])
        assignments.append(f"{ident(column)} = {expr}")
    sql = f"UPDATE {ident(dataset.table)} SET {', '.join(assignments)} WHERE {ident(dataset.key)} = $1"
    return sql, q.args[1 + len(hashed):]


SCHEMA_QUERY = """
SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
WHERE c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'f')
  AND pg_catalog.pg_table_is_visible(c.oid) AND a.attnum > 0 AND NOT a.attisdropped
"""
TEXT_TYPES = ("text", "character varying", "character", "citext")


def erased_rules(dataset: Dataset) -> dict[str, FieldRule]:
    return {c: r for c, r in dataset.fields.items() if r.erase != "keep"}


def still_to_clear(dataset: Dataset, hashed: list[str], values: Mapping[str, Any],
                   types: Mapping[str, str]) -> tuple[str, list[Any]]:
    """SELECT the key and the `hashed` columns of the rows keyed by $1 (text[]) that the rules
    would still change: a row whose constant columns already hold their values was cleared
    before (a retry, a replay after a restore that did not bring it back) and is left as it is.
    Where a column is hashed that cannot be told, and every row is taken."""
    q = Query()
    q.arg(None)
    differs = [] if hashed else [
        f"{ident(c)} IS NOT NULL" if v is None else f"{ident(c)} IS DISTINCT FROM {q.value(v, types[c])}"
        for c, v in values.items()]
    selected = ", ".join([ident(dataset.key), *(ident(c) for c in hashed)])
    where = f"{ident(dataset.key)}::text = ANY($1::text[])" + (f" AND ({' OR '.join(differs)})" if differs else "")
    return f"SELECT {selected} FROM {ident(dataset.table)} WHERE {where}", q.args[1:]


def split_rules(rules: Mapping[str, FieldRule]) -> tuple[list[str], dict[str, Any]]:
    """The columns whose values are hashed here (the secret never goes to the database), and the
    constant each other column is set to."""
    hashed = [c for c, r in rules.items() if r.erase == "hash"]
    values = {c: (None if r.erase == "null" else r.value) for c, r in rules.items() if r.erase != "hash"}
    return hashed, values
