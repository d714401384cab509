"""A processor's erasure once the legal-claims hold that kept it has ended.

A processor we cannot ask record by record (OpenDSR, e-mail) kept everything it holds under the
hold, in one deferred-erasure row (activities/fanout.py). When the hold ends it is asked to erase,
and the row is done only once it confirms: asked is not erased. The sweep follows the job on each
run (the daily schedule; a callback or a confirmation page runs it for the subject at once), and a
processor that cancels or refuses is an alert to staff and a failure on the request's evidence,
never a silent success.

Each step survives a crash on either side of it: the job's id is on the rows before the processor
is asked (so an answer that beats the record finds them), asking again is harmless (the job's id
and the e-mail's key are derived from the request), and the rows change in the statement that
audits the change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from activities.connectors.base import ActionOutcome, Connector, PermanentConnectorError
from activities.context import ActivityContext
from activities.erasure_evidence import ErasureEvidence
from activities.fanout import subject_of
from activities.sweep_alerts import sweep_alert
from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.logging import get_logger
from dsrflow.infra.writes import Write
from dsrflow.stores.deferred_store import alert_key
from schemas.workflow import LetterJob

Followed = Literal["done", "waiting", "failed"]
log = get_logger(__name__)


# The rows a sweep read are still as it read them ($2: their attempt): not done, not failed, and
# not asked again by staff since. A sweep's result is written only to such rows.
_STILL_OPEN = "attempt = $2 AND done_at IS NULL AND failed_at IS NULL"


async def follow_processor_erasure(ctx: ActivityContext, evidence: ErasureEvidence, connector: Connector, *,
                                   request: dict[str, Any], version: str, system: str,
                                   due: list[asyncpg.Record]) -> Followed:
    """Ask the processor to erase (first run), or ask how its erasure went (later runs). A
    processor that cannot be reached is asked again on the next run, and one that refuses, or
    has not confirmed within its system's `completion_timeout_days` of the hold's end, fails:
    either way the sweep goes on with every other erasure due."""
    ids = [row["id"] for row in due]
    attempt = max(row["attempt"] for row in due)  # 2, 3, ...: asked again by staff (dsrflow/stores/deferred_store.py)
    try:
        outcome = await _ask_or_follow(ctx, evidence, connector, request=request, version=version, system=system,
                                       due=due, ids=ids, attempt=attempt)
    except PermanentConnectorError as exc:
        outcome = ActionOutcome(status="needs_attention", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - unreachable today: asked again next run, or timed out below
        log.warning("deferred erasure: processor not reached", system=system, error=type(exc).__name__)
        outcome = None
    unconfirmed: dict[str, Any] = {}  # the alert's facts when the processor never confirmed
    if outcome is None or outcome.status == "pending":
        days = (await ctx.policy(version)).policy.systems[system].completion_timeout_days
        # Counted from the last time it was asked (or asked again by staff), else the hold's end.
        asked_or_released = [at for row in due
                             if (at := row["submitted_at"] or row["retried_at"] or row["released_at"]) is not None]
        if not asked_or_released or datetime.now(UTC) - min(asked_or_released) < timedelta(days=days):
            return "waiting"
        outcome = ActionOutcome(status="needs_attention",
                                message=f"no confirmation within {days} days of "
                                        + ("being asked again" if attempt > 1 else "the hold's end"))
        unconfirmed = {"unconfirmed_days": days, "asked_again": attempt > 1}
    if outcome.status in ("done", "not_found"):
        await record_deferred(ctx, str(request["id"]), system, ids, attempt, "confirmed", Write(
            f"UPDATE deferred_erasures SET done_at = now() WHERE id = ANY($1::bigint[]) AND {_STILL_OPEN}",
            (ids, attempt)),
            {"job": outcome.external_id, "erased": outcome.changed})
        return "done"
    await record_failure(ctx, str(request["id"]), system, due,
                         outcome.message or "the processor did not carry out the erasure",
                         asked=True, job=outcome.external_id, unconfirmed=unconfirmed)
    return "failed"


async def record_failure(ctx: ActivityContext, request_id: str, system: str, due: list[asyncpg.Record],
                         reason: str, *, asked: bool, job: str | None = None,
                         unconfirmed: dict[str, Any] | None = None) -> None:
    """The rows failed, with the reason: the sweep stops trying them until compliance asks again
    or records them erased by other means (dsrflow/stores/deferred_store.py), and staff are
    alerted, once per request, system and attempt (the alert's key). The failure is on record
    first, the alert's facts in its event, so the alert never says what the rows do not: before,
    a sweep that died once the alert was out left the rows due, the panel offered neither answer
    the alert named, and the next run could erase them after all. A run that dies before the
    alert went, or a relay that refuses it, leaves it to the next run (`alert_unalerted`).
    `asked`: a processor was asked and did not erase; otherwise the system itself could not
    (activities/deferred.py). `unconfirmed`: the processor never confirmed, for how many days
    (the alert says so in the staff language, where `reason` is the record's)."""
    ids, attempt = [row["id"] for row in due], max(row["attempt"] for row in due)
    if not await ctx.pool.fetchval(
            f"SELECT count(*) FROM deferred_erasures WHERE id = ANY($1::bigint[]) AND {_STILL_OPEN}", ids, attempt):
        # Settled by staff, or confirmed on the processor's link, while this sweep was asking: the
        # erasure is done, and neither the alert nor the failure would be true any more.
        return
    facts = {"what": "deferred_failed", "system": system, "asked": asked, **(unconfirmed or {"message": reason})}
    await record_deferred(ctx, request_id, system, ids, attempt, "failed", Write(
        f"UPDATE deferred_erasures SET failed_at = now(), failure = $3 WHERE id = ANY($1::bigint[]) AND {_STILL_OPEN}",
        (ids, attempt, reason[:500])), {**({"job": job} if asked else {"reason": reason[:500]}), _FACTS: facts})
    await _alert_failures(ctx, request_id, system, attempt)


# The key of a failure's event data holding its staff alert's facts (`record_failure`).
_FACTS = "alert"


async def _alert_failures(ctx: ActivityContext, request_id: str, system: str, attempt: int) -> None:
    """The staff alert of each failure on record of the request's rows in `system` at `attempt`,
    one per failure (`alert_key`), in the order they failed: rows held under statutes that end
    years apart fail apart, and a later failure said nothing when the alert was one per attempt.
    One that cannot go now (the relay away, the database went) is left to the next run, which
    finds it unsent (`alert_unalerted`); one the relay refuses for good is recorded so and not
    tried again (`sweep_alert`); one sent already is not sent again (its letter's key)."""
    failures = await ctx.pool.fetch(
        "SELECT data->$4 AS facts FROM audit_events WHERE request_id = $1 AND event_type = 'erasure.deferred_failed' "
        "AND data->>'system' = $2 AND coalesce((data->>'attempt')::int, 1) = $3 AND data ? $4 ORDER BY chain_pos",
        request_id, system, attempt, _FACTS)  # failed before the facts were kept: their alert went first then
    for failure, row in enumerate(failures, 1):
        try:
            await sweep_alert(ctx, LetterJob(request_id=request_id, purpose="staff_alert",
                                             key=alert_key(system, attempt, failure), to_staff=True,
                                             params={"kind": "needs_attention", "days_left": None,
                                                     "facts": row["facts"]}))
        except Exception as exc:  # noqa: BLE001 - the failure stands on record; its alert is retried next run
            log.error("deferred erasure failure on record, its staff alert not sent", system=system,
                      error=type(exc).__name__)


async def alert_unalerted(ctx: ActivityContext) -> None:
    """Send the alert of each failure on record that has none sent yet: its sweep died before it
    went, or the relay could not take it. Its letter's key makes a repeat a no-op, and one a dead
    sender had handed to the relay is recorded, not sent again (activities/outbox.py)."""
    for row in await ctx.pool.fetch("SELECT DISTINCT request_id, system, attempt FROM deferred_erasures "
                                    "WHERE failed_at IS NOT NULL AND done_at IS NULL"):
        await _alert_failures(ctx, str(row["request_id"]), row["system"], row["attempt"])


async def _ask_or_follow(ctx: ActivityContext, evidence: ErasureEvidence, connector: Connector, *,
                         request: dict[str, Any], version: str, system: str,
                         due: list[asyncpg.Record], ids: list[int], attempt: int) -> ActionOutcome:
    """The processor's answer: to being asked (first run, the request on record once it is
    pending), or to how its job stands (later runs)."""
    subject = replace(subject_of(request), attempt=attempt)  # a new job per attempt, as a task's retry is
    external_id = next((row["external_id"] for row in due if row["external_id"]), None)
    asked = any(row["submitted_at"] for row in due)
    if asked and not connector.carries_on_erasing(external_id or ""):
        outcome = await connector.status(subject, external_id or "")
    else:
        if not asked:
            external_id = external_id or connector.job_id(subject, "erase")
            if external_id is not None:
                await ctx.pool.execute("UPDATE deferred_erasures SET external_id = $2 WHERE id = ANY($1::bigint[])",
                                       ids, external_id)
        # Asked before, and held back by a SaaS quota's day: it carries on as erasing does.
        context, _ = await evidence.erasure_context_for(version, system, subject)
        outcome = await connector.erase(subject, replace(context, after_close=True))
        failpoint("deferred-processor-asked", system)  # asked, and not yet on record as asked
    outcome.external_id = outcome.external_id or external_id
    if not asked and outcome.status == "pending" and not outcome.unsent:  # unsent: asked on the next run
        await record_deferred(ctx, str(request["id"]), system, ids, attempt, "submitted", Write(
            "UPDATE deferred_erasures SET external_id = $2, submitted_at = now() WHERE id = ANY($1::bigint[])",
            (ids, outcome.external_id)), {"job": outcome.external_id})
    return outcome


async def record_deferred(ctx: ActivityContext, request_id: str, system: str, ids: list[int], attempt: int,
                  what: str, change: Write, data: dict[str, Any]) -> None:
    """The rows' change and its audit event (`erasure.deferred_<what>`) in one statement, once per
    step and rows (a rerun after a crash finds the event and writes nothing again)."""
    async with ctx.pool.acquire() as conn:
        await append_event(
            conn, event_key=f"{request_id}:deferred:{system}:{','.join(map(str, sorted(ids)))}:{what}"
            + (f":{attempt}" if attempt > 1 else ""),
            request_id=request_id, event_type=f"erasure.deferred_{what}", actor="erasure-sweep",
            data={"system": system, **data, **({"attempt": attempt} if attempt > 1 else {})}, along=[change])
