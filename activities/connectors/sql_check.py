"""`dsrflow policy check`: does each `sql` system of the policy match its database?

For every sql system it connects (as the connector would: `system_database_url` in
activities/connectors/sql_database.py) and names each problem: a table or column the policy names that does not
exist (tables are found on the search_path, as the connector finds them), a column whose type
cannot do what the policy asks of it (an identity compared as text, a hashed column, the
restriction flag, a `via` link whose type differs from the column it points at, an objection's
update), and a dataset that no identity leads to (datasets whose `via` go round in a cycle).
It reads the catalog only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg

from activities.connectors.base import PermanentConnectorError
from activities.connectors.sql_database import system_database_url
from activities.connectors.sql_queries import SCHEMA_QUERY, TEXT_TYPES, Plan
from dsrflow.settings import Settings
from policy.model import Policy
from policy.systems import Dataset, System

_INTEGERS = ("smallint", "integer", "bigint", "numeric")
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Problem:
    system: str
    dataset: str | None
    message: str

    def __str__(self) -> str:
        where = f"system {self.system!r}" + (f", dataset {self.dataset!r}" if self.dataset else "")
        return f"{where}: {self.message}"


def _family(sql_type: str) -> str:
    """Types that compare with each other: text-like, integer-like, else the type itself."""
    base = sql_type.split("(")[0]
    return "text" if base in TEXT_TYPES else "integer" if base in _INTEGERS else base


def _expected(dataset: Dataset) -> dict[str, tuple[tuple[str, ...], str]]:
    """column -> (type families it may have, what the policy does with it)."""
    want: dict[str, tuple[tuple[str, ...], str]] = {}
    for kind, column in dataset.identify.items():
        want[column] = (("text", "integer") if kind == "customer_id" else ("text",), f"identify.{kind}")
    for column, rule in dataset.fields.items():
        if rule.erase == "hash":
            want[column] = (("text",), "erase: hash")
        if rule.identity and column not in want:
            want[column] = (("text", "integer") if rule.identity == "customer_id" else ("text",),
                            f"identity: {rule.identity}")
    if dataset.restricted_column:
        want[dataset.restricted_column] = (("boolean",), "restricted_column")
    for scope, updates in dataset.objection_updates.items():
        for column, value in updates.items():
            family = _value_family(value)
            if family:
                want.setdefault(column, ((family,), f"objection_updates.{scope}"))
    return want


def _value_family(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "text"
    return None  # null fits any nullable column


def _check_dataset(name: str, plan: Plan, dataset: Dataset, types: dict[str, dict[str, str]]) -> list[Problem]:
    problems: list[Problem] = []

    def problem(message: str) -> None:
        problems.append(Problem(name, dataset.name, message))

    for table, columns in plan.columns_used(dataset).items():
        if table not in types:
            problem(f"table {table!r} does not exist")
            continue
        for column in sorted(columns - types[table].keys()):
            problem(f"column {column!r} does not exist in table {table!r}")
    have = types.get(dataset.table, {})
    for column, (families, why) in _expected(dataset).items():
        if column in have and _family(have[column]) not in families:
            problem(f"column {column!r} is {have[column]}, but {why} needs {' or '.join(families)}")
    if dataset.via:
        parent = plan.datasets[dataset.via.dataset]
        parent_column = dataset.via.parent_column or parent.key
        mine, theirs = have.get(dataset.via.column), types.get(parent.table, {}).get(parent_column)
        if mine and theirs and _family(mine) != _family(theirs):
            problem(f"via: column {dataset.via.column!r} is {mine}, but it points at "
                    f"{parent.table}.{parent_column}, which is {theirs}")
    return problems


async def check_system(name: str, system: System, settings: Settings) -> list[Problem]:
    """Every problem of one sql system against its database; [] when it matches."""
    try:
        plan = Plan(system)
    except ValueError as exc:  # a cycle of `via`: no identity leads to those datasets
        return [Problem(name, None, f"{exc}: no subject identity leads to these datasets")]
    try:
        url = system_database_url(name, system, settings)
    except PermanentConnectorError as exc:
        return [Problem(name, None, str(exc).removeprefix(f"system {name!r}: "))]
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return [Problem(name, None, f"cannot connect to its database ({type(exc).__name__}: {exc})")]
    try:
        tables = sorted({t for d in plan.parents_first for t in plan.columns_used(d)})
        types: dict[str, dict[str, str]] = defaultdict(dict)
        for row in await conn.fetch(SCHEMA_QUERY, tables):
            types[row["table"]][row["column"]] = row["type"]
    finally:
        await conn.close()
    return [p for d in plan.parents_first for p in _check_dataset(name, plan, d, dict(types))]


async def check_policy(policy: Policy, settings: Settings) -> tuple[list[str], list[Problem]]:
    """(the sql systems checked, every problem found)."""
    names = [name for name, system in policy.systems.items() if system.connector == "sql"]
    problems: list[Problem] = []
    for name in names:
        problems += await check_system(name, policy.systems[name], settings)
    return names, problems
