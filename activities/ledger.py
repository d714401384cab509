"""The erasure ledger and erasure by record key, shared by the request fan-out, the deferred
sweep, the retention sweep and the replay after a backup restore.

A ledger row says which record of which system was erased (deleted or anonymised), when and on
whose behalf, keyed by a keyed hash of the subject: after a restore it tells what to erase again,
without keeping who the subject was."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from activities.connectors.base import Connector, Erased, ErasedHook
from dsrflow.infra.writes import Write, columns

# (subject_hash, system, dataset, record_key, action, policy_version, request_id, origin)
LedgerRow = tuple[str, str, str, str, str, str, Any, str]


def ledger_write(rows: Iterable[LedgerRow]) -> Write | None:
    """Once per record and request: a step retried after its first attempt kept the evidence and
    died before the system committed writes the same rows again (migration 0021)."""
    rows = list(rows)
    if not rows:
        return None
    return Write(
        """INSERT INTO erasure_ledger (subject_hash, system, dataset, record_key, action,
                                       policy_version, request_id, origin)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                $6::text[], $7::uuid[], $8::text[])
           ON CONFLICT DO NOTHING""",
        columns(rows),
    )


async def write_ledger(conn: asyncpg.Connection | asyncpg.Pool, rows: Iterable[LedgerRow]) -> None:
    if (write := ledger_write(rows)) is not None:
        await write.execute(conn)


async def erase_keys_with_evidence(connector: Connector, keys: Mapping[str, Sequence[str]],
                                   keep: ErasedHook) -> Erased:
    """Erase records by key, keeping the evidence (`keep`) before the system commits where it
    can (a sql system: inside its transaction), otherwise right after. A process that dies between
    the system's commit and the evidence would leave records erased with no ledger row: the retry
    finds them gone and erases, and so ledgers, nothing, and a backup restore would bring them back
    for good (activities/erasure_replay.py reads only the ledger)."""
    kept = False

    async def before_commit(erased: Erased) -> None:
        nonlocal kept
        await keep(erased)
        kept = True

    erased = await connector.erase_keys(keys, before_commit=before_commit)
    if not kept:
        await keep(erased)
    return erased


async def erase_records(pool: asyncpg.Pool, connector: Connector, records: Iterable[Mapping[str, Any]], *,
                        system: str, version: str, origin: str) -> Erased:
    """Erase records named by `dataset` and `record_key` (ledger or deferred-erasure rows, each
    with its `subject_hash` and `request_id`), and ledger what went under `origin`, the evidence
    kept as `erase_keys_with_evidence` does; returns (key, action) per dataset for those found."""
    records = list(records)
    keys: dict[str, list[str]] = defaultdict(list)
    for record in records:
        keys[record["dataset"]].append(record["record_key"])

    async def keep(erased: Erased) -> None:
        actions = {(dataset, key): action for dataset, pairs in erased.items() for key, action in pairs}
        await write_ledger(pool, [
            (r["subject_hash"], system, r["dataset"], r["record_key"], actions[(r["dataset"], r["record_key"])],
             version, r["request_id"], origin)
            for r in records if (r["dataset"], r["record_key"]) in actions])

    return await erase_keys_with_evidence(connector, keys, keep)
