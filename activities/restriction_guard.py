"""What an active restriction keeps from the controller's own erasures (Art. 18(1)(c), and (b) by
default: policy `restriction.keeps_from_erasure`): the retention sweep and deferred erasure leave
the restricted subject's records where they are until the restriction is lifted, and say so in
the restriction's request's audit trail (`restriction.kept_from_erasure`). An erasure the subject
asks for is theirs to ask: it is not held back here.

A restriction keeps the subject's records in every system, not only those its fan-out found
records in: records that turn up later are the subject's too."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from activities.connectors.sql_queries import Query
from activities.context import ActivityContext
from activities.retention_plan import current_policy, cutoff_for, expired_rows, sql_connector
from dsrflow.crypto.hashing import subject_hash
from dsrflow.domain.audit import append_event
from dsrflow.stores.restrictions_store import keeping_from_erasure
from policy.keeping import RetentionRule
from policy.model import LoadedPolicy


async def audit_kept_from_retention(ctx: ActivityContext, loaded: LoadedPolicy, rule: RetentionRule,
                                    as_of: datetime) -> None:
    """For each restriction that kept expired records from this rule's run: how many, on its
    request's audit trail (counts only, no record keys)."""
    restrictions = await keeping_from_erasure(ctx.pool, loaded.policy.restriction.keeps_from_erasure)
    if not restrictions:
        return
    async with sql_connector(ctx, loaded, rule.system) as connector:
        dataset = connector.plan.datasets[rule.dataset]
        kept = {}
        for r in restrictions:
            q = Query()
            identities = ([r["email"]] if r["email"] else [], [r["customer_id"]] if r["customer_id"] else [])
            sql = expired_rows(connector.plan, rule, cutoff_for(rule, as_of), identities, ["count(*)"], q)
            async with connector._connection() as conn:
                with connector._mapped(dataset.name):
                    count = await conn.fetchval(sql + " WHERE t0.held", *q.args)
            if count:
                kept[str(r["request_id"])] = count
    for request_id, records in kept.items():
        await _audit(ctx, request_id, f"retention:{rule.name}:{as_of.isoformat()}",
                     {"by": f"retention rule {rule.name}", "rule": rule.name, "system": rule.system,
                      "dataset": rule.dataset, "records": records, "as_of": as_of.isoformat()})


async def kept_by_restrictions(ctx: ActivityContext) -> dict[str, list[str]]:
    """subject hash -> the restriction requests that keep that subject's records."""
    kept: dict[str, list[str]] = {}
    for r in await keeping_from_erasure(ctx.pool, current_policy(ctx).policy.restriction.keeps_from_erasure):
        who = r["subject_hash"] or subject_hash(ctx.secret, r["email"])
        kept.setdefault(who, []).append(str(r["request_id"]))
    return kept


async def audit_kept_from_deferred(ctx: ActivityContext, kept: Counter[str], as_of: datetime) -> None:
    """`kept`: restriction request -> deferred erasures it held back in this sweep."""
    for request_id, records in kept.items():
        await _audit(ctx, request_id, f"deferred:{as_of.isoformat()}",
                     {"by": "deferred erasure", "records": records, "as_of": as_of.isoformat()})


async def _audit(ctx: ActivityContext, request_id: str, key: str, data: dict[str, Any]) -> None:
    async with ctx.pool.acquire() as conn:
        await append_event(conn, event_key=f"{request_id}:restriction:kept:{key}", request_id=request_id,
                           event_type="restriction.kept_from_erasure", actor="workflow", data=data)
