"""Anonymisation in a `sql` system: a dataset's field rules (`hash`, `null`, a value) applied to
rows that stay, by an erasure (`anonymise`), a hold's end and a retention rule's clearing.

`hash` writes keyed_hash(secret, system, dataset, column, value), computed here: the secret never
goes to the database, so the rows are read by key, a page at a time, and updated one by one. A
value that already is such a digest (64 hex characters) is left alone, so running an erasure again
changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from activities.connectors.base import Subject
from activities.connectors.sql_queries import (
    Plan,
    erased_rules,
    select_keys_page,
    split_rules,
    still_to_clear,
    update_by_key,
)
from dsrflow.crypto.hashing import keyed_hash
from policy.systems import Dataset, FieldRule

_DIGEST = re.compile(r"[0-9a-f]{64}")
# Rows per page when an erasure hashes the subject's values.
PAGE = 500

# The subject's rows of a dataset set to constant values in one statement: counts of found and changed.
SetValues = Callable[[asyncpg.Connection, Dataset, Subject, Mapping[str, Any]], Awaitable[dict[str, int]]]


@dataclass(frozen=True)
class Anonymiser:
    secret: bytes
    system: str
    plan: Plan

    async def subject_rows(self, conn: asyncpg.Connection, dataset: Dataset, subject: Subject,
                           types: Mapping[str, str], set_values: SetValues) -> dict[str, int]:
        """The dataset's erasure rules applied to the subject's rows: counts of found, changed
        and anonymised."""
        hashed, values = split_rules(erased_rules(dataset))
        if not hashed:
            if not values:  # every field kept: nothing to change, but say what was found
                sql, args = select_keys_page(self.plan, dataset, subject, [], None, 2**31 - 1)
                return {"found": len(await conn.fetch(sql, *args)), "changed": 0, "anonymised": 0}
            counts = await set_values(conn, dataset, subject, values)
            return {**counts, "anonymised": counts["changed"]}
        update_sql, constant_args = update_by_key(dataset, hashed, values, types)
        found, after = 0, None
        while True:
            sql, args = select_keys_page(self.plan, dataset, subject, hashed, after, PAGE)
            rows = await conn.fetch(sql, *args)
            if not rows:
                break
            await conn.executemany(update_sql, self._hashed(dataset, hashed, rows, constant_args))
            found += len(rows)
            after = rows[-1][0]
        return {"found": found, "changed": found, "anonymised": found}

    async def by_key(self, conn: asyncpg.Connection, dataset: Dataset, keys: Sequence[str],
                     rules: Mapping[str, FieldRule], types: Mapping[str, str]) -> list[str]:
        """`rules` applied to the rows with these keys that they would still change: the keys of
        those rows."""
        hashed, values = split_rules(rules)
        select_sql, select_args = still_to_clear(dataset, hashed, values, types)
        rows = await conn.fetch(select_sql, list(keys), *select_args)
        update_sql, constant_args = update_by_key(dataset, hashed, values, types)
        await conn.executemany(update_sql, self._hashed(dataset, hashed, rows, constant_args))
        return [str(row[0]) for row in rows]

    def _hashed(self, dataset: Dataset, hashed: list[str], rows: Sequence[asyncpg.Record],
                constant_args: list[Any]) -> list[tuple[Any, ...]]:
        """update_by_key's arguments for each row read as (key, *hashed columns)."""
        return [(row[0], *(self.digest(dataset, c, row[i + 1]) for i, c in enumerate(hashed)), *constant_args)
                for row in rows]

    def digest(self, dataset: Dataset, column: str, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if _DIGEST.fullmatch(text):
            return text
        return keyed_hash(self.secret, self.system, dataset.name, column, text)
