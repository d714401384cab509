"""Deferred erasure: records kept under a hold are erased when the hold ends.

Statutory holds end on a date: the record is erased by key. A legal-claims hold ends when
compliance releases it: the subject's erasure is run again in that system, so whatever still
falls under a statute is minimised and kept, and the rest goes; a processor we cannot ask record
by record is asked to erase, and followed until it confirms (activities/deferred_processors.py).
Holds are re-checked first: a record another active hold still covers stays, and so does a record
whose subject restricted its processing under a ground that keeps it from erasure
(activities/restriction_guard.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from activities.context import ActivityContext
from activities.deferred_processors import Followed, follow_processor_erasure
from activities.fanout import FanoutActivities, open_connector, subject_of
from activities.ledger import erase_records
from activities.restriction_guard import audit_kept_from_deferred, kept_by_restrictions
from dsrflow.infra.failpoints import failpoint
from dsrflow.stores.holds_store import active_holds_for
from dsrflow.stores.requests_store import get_request
from schemas.holds import SweepInput, SweepReport


class DeferredErasureActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx
        self.fanout = FanoutActivities(ctx)

    @activity.defn(name="sweep_deferred_erasures")
    async def sweep(self, sweep: SweepInput) -> SweepReport:
        ctx = self.ctx
        as_of = sweep.as_of or datetime.now(UTC)
        rows = await ctx.pool.fetch(
            """SELECT d.*, h.released_at FROM deferred_erasures d
               LEFT JOIN legal_holds h ON d.hold_kind = 'legal_claims' AND h.id::text = d.hold_ref
               WHERE d.done_at IS NULL AND d.failed_at IS NULL AND ($1::text IS NULL OR d.subject_hash = $1)
               ORDER BY d.id""",
            sweep.subject_hash,
        )
        statutory: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)  # (version, system) -> rows
        released: dict[tuple[str, str, str], list[asyncpg.Record]] = defaultdict(list)  # (version, system, request)
        still_held = 0
        restricted = await kept_by_restrictions(ctx)
        kept: Counter[str] = Counter()  # restriction request -> records it kept today
        for row in rows:
            if row["submitted_at"] is not None:  # a processor asked already: follow its answer
                released[(row["policy_version"], row["system"], str(row["request_id"]))].append(row)
                continue
            policy = (await ctx.policy(row["policy_version"])).policy
            today = as_of.astimezone(ZoneInfo(policy.defaults.timezone)).date()
            holds = await active_holds_for(ctx.pool, row["subject_hash"])
            if any(not h["systems"] or row["system"] in h["systems"] for h in holds):
                still_held += 1  # a legal-claims hold covers it now: not today
            elif row["subject_hash"] in restricted:
                still_held += 1  # the subject restricted it, e.g. needing it for legal claims
                kept.update(restricted[row["subject_hash"]])
            elif row["hold_kind"] == "statutory" and row["erase_after"] <= today:
                statutory[(row["policy_version"], row["system"])].append(row)
            elif row["hold_kind"] == "legal_claims" and row["released_at"] is not None:
                released[(row["policy_version"], row["system"], str(row["request_id"]))].append(row)
            else:
                still_held += 1

        await audit_kept_from_deferred(ctx, kept, as_of)
        per_system: dict[str, int] = defaultdict(int)
        for (version, system), due in statutory.items():
            async with open_connector(ctx, version, system) as connector:
                erased = await erase_records(ctx.pool, connector, due, system=system, version=version,
                                             origin="deferred")
            failpoint("deferred-erased", system)  # committed in the system, and not yet marked done
            await self._done(due)
            per_system[system] += sum(len(v) for v in erased.values())
            activity.heartbeat()
        followed: Counter[Followed] = Counter()
        for (version, system, request_id), due in released.items():
            request = await get_request(ctx.pool, request_id)
            if request is None:
                raise LookupError(f"request {request_id} not found")
            async with open_connector(ctx, version, system) as connector:
                if connector.answers_later:
                    followed[await follow_processor_erasure(ctx, self.fanout, connector, request=request,
                                                            version=version, system=system, due=due)] += 1
                    continue
                # The hold kept the records as they were: erase them as the request would have, so
                # what a statute still requires is minimised and kept, and the rest goes.
                subject = subject_of(request)
                context, _ = await self.fanout.erasure_context_for(version, system, subject)
                outcome = await self.fanout.erase_with_evidence(connector, request_id, system, version, subject,
                                                                context, origin="deferred")
            await self._done(due)  # its evidence kept with the erasure (erase_with_evidence)
            per_system[system] += sum(len(v) for v in outcome.erased.values())
        return SweepReport(erased=sum(per_system.values()), still_held=still_held, systems=dict(per_system),
                           processors_confirmed=followed["done"], processors_waiting=followed["waiting"],
                           processors_failed=followed["failed"])

    async def _done(self, due: list[asyncpg.Record]) -> None:
        """Mark the rows done (erased now, or found already gone by a retry), once the system has
        committed: marked before, a failed commit would leave a record kept for good."""
        await self.ctx.pool.execute("UPDATE deferred_erasures SET done_at = now() WHERE id = ANY($1::bigint[])",
                                    [row["id"] for row in due])
