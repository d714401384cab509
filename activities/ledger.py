"""The erasure ledger and erasure by record key, shared by the request fan-out, the deferred
sweep, the retention sweep and the replay after a backup restore.

A ledger row says which record of which system was erased (deleted or anonymised), when and on
whose behalf, keyed by a keyed hash of the subject: after a restore it tells what to erase again,
without keeping who the subject was."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from activities.connectors.base import Connector

# (subject_hash, system, dataset, record_key, action, policy_version, request_id, origin)
LedgerRow = tuple[str, str, str, str, str, str, Any, str]


async def write_ledger(conn: asyncpg.Connection | asyncpg.Pool, rows: Iterable[LedgerRow]) -> None:
    # Once per record and request: a step retried after its first attempt kept the evidence and
    # died before the system committed writes the same rows again (migration 0021).
    rows = list(rows)
    if not rows:  # asyncpg would still prepare the statement: a round trip for nothing
        return
    await conn.executemany(
        """INSERT INTO erasure_ledger (subject_hash, system, dataset, record_key, action,
                                       policy_version, request_id, origin)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT DO NOTHING""",
        rows,
    )


async def erase_records(connector: Connector,
                        records: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Erase records named by `dataset` and `record_key` (ledger or deferred-erasure rows);
    returns (key, action) per dataset for those found."""
    keys: dict[str, list[str]] = defaultdict(list)
    for record in records:
        keys[record["dataset"]].append(record["record_key"])
    return await connector.erase_keys(keys)
