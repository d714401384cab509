"""Do a subject's identities agree on whose rows they are, in one sql system?

Rows are the subject's when any identity matches (activities/connectors/sql_queries.match): an
e-mail plus another person's customer id would reach both people. Before a connector acts on a
subject it counts, per dataset found by two or more of the identities given, the rows one of
them finds while another contradicts it (a different, non-null value; a value already erased to
its digest contradicts nothing). Messages name the system, the dataset and the kinds of identity,
never their values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from activities.connectors.base import PermanentConnectorError, Subject
from activities.connectors.sql_queries import (
    STRONG_IDENTITIES,
    Query,
    ident,
    identity_clauses,
)
from policy.systems import Dataset


def conflict_query(dataset: Dataset, subject: Subject) -> tuple[str, list[Any]] | None:
    """The count of contradicted rows, or None where fewer than two identities find rows here."""
    q = Query()
    clauses = identity_clauses(dataset, subject, q, "r")
    if len(clauses) < 2:
        return None
    contradicted = " OR ".join(
        f"(r.{ident(column)} IS NOT NULL AND r.{ident(column)}::text !~ '^[0-9a-f]{{64}}$' AND NOT ({equal}))"
        for column, equal in clauses)
    found = " OR ".join(equal for _, equal in clauses)
    return f"SELECT count(*) FROM {ident(dataset.table)} AS r WHERE ({found}) AND ({contradicted})", q.args


async def check_identities(conn: asyncpg.Connection, system: str, datasets: Sequence[Dataset],
                           subject: Subject) -> None:
    """PermanentConnectorError (the task needs attention) where the identities disagree."""
    for dataset in datasets:
        if (query := conflict_query(dataset, subject)) is None:
            continue
        if await conn.fetchval(query[0], *query[1]):
            raise PermanentConnectorError(
                f"system {system!r}, dataset {dataset.name!r}: the identities given "
                f"({', '.join(i for i in STRONG_IDENTITIES if i in dataset.identify)}) point at "
                f"different records, so this request reads and changes nothing until staff check "
                f"them with the subject (cancel it and open a new one with the right identities)")
