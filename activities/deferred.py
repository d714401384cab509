"""Deferred erasure: records kept under a hold are erased when the hold ends.

Statutory holds end on a date: the record is erased by key. A legal-claims hold ends when
compliance releases it: the subject's erasure is run again in that system, so whatever still
falls under a statute is minimised and kept, and the rest goes; a processor we cannot ask record
by record is asked to erase, and followed until it confirms (activities/deferred_processors.py).
Holds are re-checked first: a record another active hold still covers stays, and so does a record
whose subject restricted its processing under a ground that keeps it from erasure
(activities/restriction_guard.py). What a legal-claims hold kept from an erasure then withdrawn,
cancelled or denied is called off, not erased (dsrflow/stores/deferred_store.py `call_off_deferred`),
and its restricted mark lifted once the hold is released (activities/called_off_marks.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from activities.called_off_marks import lift_called_off_marks
from activities.connectors.base import PermanentConnectorError
from activities.context import ActivityContext
from activities.deferred_processors import (
    Followed,
    alert_unalerted,
    follow_processor_erasure,
    record_deferred,
    record_failure,
)
from activities.erasure_evidence import ErasureEvidence
from activities.errors import failure_message, is_deterministic
from activities.fanout import open_connector, subject_of
from activities.heartbeat import heartbeating
from activities.hold_cover import any_covers, dataset_categories
from activities.ledger import erase_records
from activities.restriction_guard import audit_kept_from_deferred, kept_by_restrictions
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.logging import get_logger
from dsrflow.infra.writes import Write
from dsrflow.stores.deferred_store import call_off_deferred, requests_to_call_off
from dsrflow.stores.holds_store import active_holds_for
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.sweep_runs import record_sweep_success
from schemas.holds import SweepInput, SweepReport

log = get_logger(__name__)


def _by_request(due: list[asyncpg.Record]) -> dict[str, list[asyncpg.Record]]:
    """Deferred-erasure rows grouped by their request: each request's trail records its own."""
    grouped: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in due:
        grouped[str(row["request_id"])].append(row)
    return grouped


class DeferredErasureActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx
        self.evidence = ErasureEvidence(ctx)

    @activity.defn(name="sweep_deferred_erasures")
    async def sweep(self, sweep: SweepInput) -> SweepReport:
        # Throughout, not between groups: one group (a system's erasure of years of records, a slow
        # processor) can outlast the heartbeat timeout, and Temporal would then start a second
        # attempt beside the first, erasing and recording the same rows at once.
        async with heartbeating():
            report = await self._sweep(sweep)
        if sweep.subject_hash is None:  # everything due, as the schedule's run (not one subject's release)
            await record_sweep_success(self.ctx.pool, "erasure_sweep", report, problems=len(report.unable))
        return report

    async def _sweep(self, sweep: SweepInput) -> SweepReport:
        ctx = self.ctx
        as_of = sweep.as_of or datetime.now(UTC)
        await alert_unalerted(ctx)  # failures on record whose alert an earlier run could not send
        # A request closed unanswered whose close did not call off what a legal-claims hold kept
        # (killed first, or records kept by a try that ended after it): called off before anything
        # is erased, and left below.
        for request_id in await requests_to_call_off(ctx.pool, sweep.subject_hash):
            async with ctx.pool.acquire() as conn:
                await call_off_deferred(conn, request_id, actor="erasure-sweep")
        # What they kept and a released hold had marked restricted goes back to ordinary use.
        _, unable = await lift_called_off_marks(ctx, sweep.subject_hash)
        rows = await ctx.pool.fetch(
            """SELECT d.*, h.released_at FROM deferred_erasures d
               LEFT JOIN legal_holds h ON d.hold_kind = 'legal_claims' AND h.id::text = d.hold_ref
               WHERE d.done_at IS NULL AND d.failed_at IS NULL AND d.called_off_at IS NULL
                 AND ($1::text IS NULL OR d.subject_hash = $1)
               ORDER BY d.id""",
            sweep.subject_hash,
        )
        statutory: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)  # (version, system) -> rows
        released: dict[tuple[str, str, str], list[asyncpg.Record]] = defaultdict(list)  # (version, system, request)
        still_held = 0
        # Rows held again since a run could not reach their system: the count of days unreached
        # starts anew once they are due again, not from before the hold (_unreached_too_long).
        held_again: list[int] = []
        restricted = await kept_by_restrictions(ctx)
        kept: Counter[str] = Counter()  # restriction request -> records it kept today
        for row in rows:
            if row["submitted_at"] is not None:  # a processor asked already: follow its answer
                released[(row["policy_version"], row["system"], str(row["request_id"]))].append(row)
                continue
            policy = (await ctx.policy(row["policy_version"])).policy
            today = as_of.astimezone(ZoneInfo(policy.defaults.timezone)).date()
            holds = await active_holds_for(ctx.pool, row["subject_hash"])
            # As the erasure that kept it judged it: by system and category (a hold over the CRM's
            # marketing data keeps the contacts, not the support requests).
            covered = any_covers(holds, row["system"], dataset_categories(policy, row["system"], row["dataset"]))
            if (covered or row["subject_hash"] in restricted) and row["unreached_since"] is not None:
                held_again.append(row["id"])
            if covered:
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

        if held_again:
            await ctx.pool.execute("UPDATE deferred_erasures SET unreached_since = NULL WHERE id = ANY($1::bigint[])",
                                   held_again)
        await audit_kept_from_deferred(ctx, kept, as_of)
        per_system: dict[str, int] = defaultdict(int)
        # One system that fails must not stop the others, for this subject or any other: a failure
        # retrying cannot cure fails its rows, for compliance to ask again or settle; another
        # leaves them due for the next run.
        for (version, system), due in statutory.items():
            try:
                async with open_connector(ctx, version, system) as connector:
                    erased = await erase_records(ctx.pool, connector, due, system=system, version=version,
                                                 origin="deferred")
                failpoint("deferred-erased", system)  # committed in the system, and not yet marked done
                await self._done(due, system)
                per_system[system] += sum(len(v) for v in erased.values())
            except Exception as exc:  # noqa: BLE001 - judged and recorded by _unable
                unable[system] = await self._unable(due, system, exc, as_of)
        followed: Counter[Followed] = Counter()
        for (version, system, request_id), due in released.items():
            try:
                erased_now = await self._released(version, system, request_id, due, followed)
                per_system[system] += erased_now
            except Exception as exc:  # noqa: BLE001 - judged and recorded by _unable
                unable[system] = await self._unable(due, system, exc, as_of)
        return SweepReport(erased=sum(per_system.values()), still_held=still_held, systems=dict(per_system),
                           processors_confirmed=followed["done"], processors_waiting=followed["waiting"],
                           processors_failed=followed["failed"], unable=unable)

    async def _released(self, version: str, system: str, request_id: str, due: list[asyncpg.Record],
                        followed: Counter[Followed]) -> int:
        """Erase what a released legal-claims hold kept in one system for one request; the
        records erased now (a processor's are counted when it confirms)."""
        request = await get_request(self.ctx.pool, request_id)
        if request is None:
            raise LookupError(f"request {request_id} not found")
        async with open_connector(self.ctx, version, system) as connector:
            if connector.answers_later:
                followed[await follow_processor_erasure(self.ctx, self.evidence, connector, request=request,
                                                        version=version, system=system, due=due)] += 1
                return 0
            # The hold kept the records as they were: erase them as the request would have, so
            # what a statute still requires is minimised and kept, and the rest goes; those
            # records only, not what the subject may have made since (a returning customer).
            subject = subject_of(request)
            context, _ = await self.evidence.erasure_context_for(version, system, subject)
            context = replace(context, released_hold=True)
            # A system kept whole (a SaaS reached by identity: dataset "all") names no records:
            # its erasure runs by identity, as the request's would have.
            if all(row["dataset"] != "all" for row in due):
                kept: dict[str, set[str]] = defaultdict(set)
                for row in due:
                    kept[row["dataset"]].add(row["record_key"])
                context = replace(context, only={dataset: frozenset(keys) for dataset, keys in kept.items()})
            outcome = await self.evidence.erase_with_evidence(connector, request_id, system, version, subject,
                                                            context, origin="deferred")
        failpoint("deferred-erased", system)  # committed in the system, and not yet marked done
        await self._done(due, system)  # its evidence kept with the erasure (erase_with_evidence)
        return sum(len(v) for v in outcome.erased.values())

    async def _unable(self, due: list[asyncpg.Record], system: str, exc: Exception, as_of: datetime) -> str:
        """Why `system` could not erase `due` in this run. A failure that retrying cannot cure (a
        refusal, a schema the policy no longer matches, a request gone) fails the rows with the
        reason, and staff of each request are alerted; any other (the system unreachable) leaves
        them due, and the next run tries again, until the system's `completion_timeout_days` have
        passed since the first run that could not reach them: those rows fail then, as a
        processor's that never confirms do (activities/deferred_processors.py). Before, they were
        tried each day for ever, with only DsrSweepProblems to say so."""
        reason = failure_message(exc)
        if not (is_deterministic(exc) or isinstance(exc, PermanentConnectorError)):
            due, reason = await self._unreached_too_long(due, system, reason, as_of)
            if not due:
                log.warning("deferred erasure: system not reached; tried again next run", system=system,
                            error=type(exc).__name__)
                return f"not reached, tried again next run: {reason}"
        log.error("deferred erasure failed", system=system, error=type(exc).__name__)
        try:
            for request_id, rows in _by_request(due).items():
                await record_failure(self.ctx, request_id, system, rows, reason, asked=False)
        except Exception as recording:  # noqa: BLE001 - the rows stay due: the next run fails them again
            log.error("deferred erasure failure not recorded", system=system, error=type(recording).__name__)
            return f"failed, not yet recorded ({failure_message(recording)}): {reason}"
        return f"failed: {reason}"

    async def _unreached_too_long(self, due: list[asyncpg.Record], system: str, error: str,
                                  as_of: datetime) -> tuple[list[asyncpg.Record], str]:
        """Of `due`, which `system` could not reach in this run, the rows it has not reached for
        its `completion_timeout_days` (none: all wait for the next run), with the failure they
        record: the system, since when, and this run's error. The first run that could not reach
        a row is recorded on it, on the sweep's clock (`as_of`); asking again starts it anew."""
        days = (await self.ctx.policy(due[0]["policy_version"])).policy.systems[system].completion_timeout_days
        since = {row["id"]: row["unreached_since"] for row in await self.ctx.pool.fetch(
            "UPDATE deferred_erasures SET unreached_since = coalesce(unreached_since, $2) "
            "WHERE id = ANY($1::bigint[]) AND done_at IS NULL AND failed_at IS NULL RETURNING id, unreached_since",
            [row["id"] for row in due], as_of)}
        late = [row for row in due if row["id"] in since and as_of - since[row["id"]] >= timedelta(days=days)]
        if not late:
            return [], error
        first = min(since[row["id"]] for row in late)
        return late, (f"{system} not reached for {(as_of - first).days} days, since {first:%Y-%m-%d} "
                      f"(its completion_timeout_days: {days}); last error: {error}")

    async def _done(self, due: list[asyncpg.Record], system: str) -> None:
        """Mark the rows done (erased now, or found already gone by a retry), once the system has
        committed: marked before, a failed commit would leave a record kept for good. With each
        request's `erasure.deferred_erased` event, in the same statement: the end of what a statute
        or a claim kept was only in this table (which anyone with the database can edit) and the
        ledger, not in the request's trail, so its timeline and evidence never said it happened."""
        for request_id, rows in _by_request(due).items():
            ids = [row["id"] for row in rows]
            await record_deferred(
                self.ctx, request_id, system, ids, 1, "erased",
                Write("UPDATE deferred_erasures SET done_at = now() WHERE id = ANY($1::bigint[])", (ids,)),
                {**({"records": len(rows)} if all(row["dataset"] != "all" for row in rows) else {"kept_whole": True}),
                 "kept_by": sorted({row["hold_kind"] for row in rows})})
