"""Re-erasure after a backup restore: everything the ledger says was erased since a date, that a
restore has brought back, is erased again (by record key, as the policy version of the original
erasure describes the system)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import asyncpg

from activities.context import ActivityContext
from activities.fanout import open_connector
from activities.ledger import Erased, erase_records, write_ledger


async def replay_erasures(ctx: ActivityContext, since: date) -> dict[str, int]:
    """Erase again what came back; returns records re-erased per system."""
    rows = await ctx.pool.fetch(
        """SELECT DISTINCT ON (system, dataset, record_key) policy_version, system, dataset,
                  record_key, subject_hash, request_id
           FROM erasure_ledger WHERE erased_at >= $1 AND action = 'deleted'
           ORDER BY system, dataset, record_key, erased_at DESC""",
        since,
    )
    groups: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        groups[(row["policy_version"], row["system"])].append(row)
    again: dict[str, int] = defaultdict(int)
    for (version, system), entries in groups.items():
        by_key = {(e["dataset"], e["record_key"]): e for e in entries}

        async def keep(erased: Erased, system: str = system, version: str = version,
                       by_key: dict = by_key) -> None:
            await write_ledger(ctx.pool, [
                (by_key[(dataset, key)]["subject_hash"], system, dataset, key, action, version,
                 by_key[(dataset, key)]["request_id"], "replay")
                for dataset, pairs in erased.items() for key, action in pairs])

        async with open_connector(ctx, version, system) as connector:
            erased = await erase_records(connector, entries, keep)
        again[system] += sum(len(pairs) for pairs in erased.values())
    return dict(again)
