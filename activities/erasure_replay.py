"""Re-erasure after a backup restore: everything the ledger says was erased since a date, that a
restore has brought back, is erased again (by record key, as the policy version of the original
erasure describes the system): deleted records are deleted again, anonymised ones anonymised
again, children first, so that a restored child row no longer holds its parent back. A system
that fails is reported and the others still run."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

import asyncpg

from activities.context import ActivityContext
from activities.fanout import open_connector
from activities.ledger import erase_records


@dataclass
class Replayed:
    again: dict[str, int] = field(default_factory=dict)  # system -> records erased again
    failed: dict[str, str] = field(default_factory=dict)  # system -> why it could not be


async def replay_erasures(ctx: ActivityContext, since: date) -> Replayed:
    """Erase again what came back. A row already anonymised (not brought back) is left as it is
    and not counted (activities/connectors/sql_queries.py `still_to_clear`)."""
    rows = await ctx.pool.fetch(
        """SELECT DISTINCT ON (system, dataset, record_key) policy_version, system, dataset,
                  record_key, subject_hash, request_id
           FROM erasure_ledger WHERE erased_at >= $1
           ORDER BY system, dataset, record_key, erased_at DESC""",
        since,
    )
    groups: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        groups[(row["policy_version"], row["system"])].append(row)
    replayed = Replayed(again=defaultdict(int))
    for (version, system), entries in groups.items():
        try:
            async with open_connector(ctx, version, system) as connector:
                erased = await erase_records(ctx.pool, connector, entries, system=system, version=version,
                                             origin="replay")
        except Exception as exc:  # noqa: BLE001 - reported per system; the others still run
            replayed.failed[system] = str(exc) or type(exc).__name__
            continue
        replayed.again[system] += sum(len(pairs) for pairs in erased.values())
    replayed.again = dict(replayed.again)
    return replayed
