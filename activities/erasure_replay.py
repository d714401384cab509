"""Re-erasure after a backup restore: everything the ledger says was erased since a date, that a
restore has brought back, is erased again (by record key, as the policy version of the original
erasure describes the system)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import asyncpg

from activities.context import ActivityContext
from activities.fanout import open_connector
from activities.ledger import erase_records


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
        async with open_connector(ctx, version, system) as connector:
            erased = await erase_records(ctx.pool, connector, entries, system=system, version=version,
                                         origin="replay")
        again[system] += sum(len(pairs) for pairs in erased.values())
    return dict(again)
