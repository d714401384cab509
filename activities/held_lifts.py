"""Lifts held by a restriction that then never came into force, carried out once it ended.

A lift of restriction L leaves a system S restricted while another restriction R of the same
subject holds S (activities/restrictions.py `lift_held_by`, `restriction.lift_held` naming R), and
R counts from its plan on, before it ever restricted S. L's task there ends `done`; R's own lift
was to un-restrict S later. If R ends without restricting S (cancelled, denied, withdrawn, its
task at S failed for good, the request completed or closed before reaching S) it has no lift that
reaches S, and before this S stayed restricted for ever with no restriction in force.

The worker's start sweep (activities/request_start_sweep.py, every five minutes) carries out such
a lift: a sweep rather than a step of R's closing, because R ends in many ways (a status, a record
of what it reached, nothing at all when it reached no system) and a step there changes the
request workflow's commands for each; here nothing of a workflow changes, and one check covers
every ending. It is L's own lift, done late: the same connector call under the same lock
(activities/restriction_lock.py), after the same check that nothing else holds S now.

Carried out here where the lift completes within its call: a database's UPDATE, and a SaaS API's
requests (the `http` kind, whose configuration has `actions.lift_restriction`). The http run keeps
no journal (activities/connectors/http_journal.py), whose rows are keyed by a task's run (request,
system, action, attempt): this is no task's run. Keyed as L's lift task, its writes would be
refused (that task ended, done, when the lift was held), and L's request has closed by its lift in
any case (completed, or closed part-way with the restriction in force), so a journal would keep
nothing. A sweep killed part-way lifts again, whole, at its next run.

A system whose lift a person carries out is not asked here (a processor by e-mail or API through
staff: its answer would come later, to a task of L that no longer waits), nor is one that answers
that it needs a person (a SaaS whose configuration has no requests for the lift): staff are alerted
(once) and shown it on L's timeline, to tell it by hand. A system that holds nothing of the subject
answers not_found: nothing to lift, on record as such (before, a database answering so failed the
sweep at every run). Any other answer or error (a database or SaaS down, a SaaS over its quota or
throttling) is not put on record: the piece fails as a plain error (`LiftNotCarriedOut`; a SaaS's
own error may ask Temporal to wait a quota day, which would hold the whole sweep back), the
worker logs "held lift not carried out this run" with the request and the system, the sweep's
other parts run and the run is tried again within a minute; meanwhile the sweep has no success, and
alert DsrSweepStale fires after two missed runs (25 minutes). The first such failure is on L's
timeline (`restriction.lift_release_failing`, once per lift and system). A system still failing
`GIVE_UP_AFTER` (a day: a SaaS's daily quota renews within it) after that first failure is handed
to staff as one that needs a person (alerted once, on record as needs_attention with the error's
type): before, a system gone for good (an account closed, its credentials revoked) failed every
run for ever, the sweep never again succeeded, and nothing told anyone which lift to carry out.

Exactly once in effect: the call is idempotent (un-restricting unrestricted rows or records changes
nothing) and the record (`restriction.lift_released`, keyed per lift and system) ends the search; a
sweep killed between the two lifts again, changing nothing, and records it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from temporalio import activity

from activities.connectors.base import ActionOutcome, Subject
from activities.context import ActivityContext
from activities.fanout import open_connector, subject_of
from activities.heartbeat import heartbeating
from activities.lift_superseded import tell_after_release
from activities.restriction_lock import acted, restriction_lock
from activities.sweep_alerts import sweep_alert
from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.pieces import Pieces
from dsrflow.stores.deferred_store import kept_records
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.restrictions_store import restricted_elsewhere
from schemas.workflow import LetterJob

# Held lifts whose holder has closed (completed, denied, cancelled, closed unverified: its tasks
# settled) without coming into force at the system: no task of it restricted the system there,
# and no record of it names the system. Not yet released.
_RELEASABLE = """
    SELECT e.request_id::text AS lift, e.data ->> 'system' AS system, e.data ->> 'by' AS holder
    FROM audit_events e JOIN dsr_requests h ON h.id = (e.data ->> 'by')::uuid
    WHERE e.event_type = 'restriction.lift_held'
      AND h.status IN ('completed', 'denied', 'cancelled', 'closed_unverified')
      AND NOT EXISTS (SELECT FROM system_tasks t WHERE t.request_id = h.id AND t.system = e.data ->> 'system'
                      AND t.action = 'restrict' AND t.status = 'done')
      AND NOT EXISTS (SELECT FROM restrictions r WHERE r.request_id = h.id AND e.data ->> 'system' = ANY (r.systems))
      AND NOT EXISTS (SELECT FROM audit_events x
                      WHERE x.event_key = e.request_id::text || $1 || (e.data ->> 'system'))
    ORDER BY e.seq LIMIT 200"""


# Connector kinds whose lift completes within its call (a database's UPDATE, a SaaS's requests):
# carried out here. The others answer later (a processor's job, an e-mail's link) to a task of L
# that no longer waits.
CARRIED_OUT_HERE = frozenset({"sql", "http"})
# A system's answers to the lift that end the search: lifted, nothing of the subject's there, or a
# person needed (staff are alerted). Any other (pending) is asked again at the next run.
_SETTLED = frozenset({"done", "not_found", "needs_attention"})


class LiftNotCarriedOut(RuntimeError):
    """The system did not carry the held lift out this run (`why`: its answer, or its error's type):
    a plain, retryable error, whatever the connector raised."""

    def __init__(self, system: str, why: str) -> None:
        super().__init__(f"system {system}: the held lift was not carried out this run ({why}); the next run asks again")
        self.why = why


# A release's record is keyed per lift and system: `released_key`, which _RELEASABLE builds in SQL.
_RELEASED = ":lift:released:"
# How long a system may keep failing the lift, from its first failure, before staff are asked.
GIVE_UP_AFTER = timedelta(days=1)
# How long one system's lift may take in a run (the sweep's whole activity has five minutes).
LIFT_SECONDS = 40.0


def released_key(lift: str, system: str) -> str:
    return f"{lift}{_RELEASED}{system}"


async def release_held_lifts(ctx: ActivityContext) -> int:
    """Carry out every held lift whose holder ended without coming into force at its system, where
    nothing else holds the system now (one that does is left to it, and looked at again next run).
    How many systems were lifted (or, asked of a person, shown to staff) this time."""
    released, pieces = 0, Pieces(_piece_failed)
    for row in await ctx.pool.fetch(_RELEASABLE, _RELEASED):
        with pieces.piece(row["system"], row["lift"]):  # one system away holds back no other
            released += await release_held_lift(ctx, row["lift"], row["system"], row["holder"])
        if activity.in_activity():  # the sweep's; a test calls this alone too
            activity.heartbeat(released)
    pieces.settle()
    return released


def _piece_failed(system: str, request_id: str | None, exc: Exception) -> None:
    # No message: a system's error may quote what it was sent. The request and system for staff.
    why = exc.why if isinstance(exc, LiftNotCarriedOut) else type(exc).__name__
    activity.logger.error("held lift not carried out this run; the next run tries again",
                          extra={"request_id": request_id, "system": system, "error": why})


async def release_held_lift(ctx: ActivityContext, lift: str, system: str, holder: str) -> bool:
    request = await get_request(ctx.pool, lift)
    if request is None:
        return False
    subject = subject_of(request)
    kind = (await ctx.policy(request["policy_version"])).policy.systems[system].connector
    data: dict[str, Any] = {"system": system, "by": holder}
    async with restriction_lock(ctx, subject, system, "lift_restriction"):
        if (await restricted_elsewhere(ctx.pool, lift)).get(system) is not None:
            return False  # held again (another restriction in force or under way): its lift lifts
        if kind in CARRIED_OUT_HERE:
            try:
                outcome = await _lifted(ctx, request["policy_version"], system, subject)
            except LiftNotCarriedOut as failed:
                if not await _failing_too_long(ctx, lift, system, failed.why):
                    raise
                data |= {"status": "needs_attention", "failed": failed.why}
            else:
                data |= {"status": outcome.status} | ({} if outcome.status == "needs_attention"
                                                      else {"changed": outcome.changed})
        else:  # a person carries it out: nothing is sent to the system, staff are told
            data |= {"status": "needs_attention"}
        acted(system, "lift_restriction", lift)  # lifted, not yet on record, the lock held
        if data["status"] != "needs_attention":
            # On record before the lock is given back: a restriction of the subject waiting on it
            # restricts, and records that, after (activities/restriction_lock.py).
            await _record_release(ctx, lift, system, data)
    if data["status"] == "needs_attention":
        # The alert first (keyed: it goes once), then the record that ends the search: a sweep that
        # dies in between alerts nobody twice, and records it on the next run. Before, only L's
        # timeline said so, and nobody opens a closed request's page.
        await sweep_alert(ctx, LetterJob(
            request_id=lift, purpose="staff_alert", key=f"lift-by-hand:{system}", to_staff=True,
            params={"kind": "needs_attention", "days_left": None,
                    "facts": {"what": "lift_by_hand", "system": system, "holder": holder,
                              **({"failed": data["failed"]} if "failed" in data else {})}}))
        failpoint("lift-by-hand-alerted", f"{system}:{lift}")  # staff told, the release not yet on record
        # Outside the lock (the alert may wait on the relay): nothing was changed in the system here
        # (a person carries the lift out, or the system kept failing it).
        await _record_release(ctx, lift, system, data)
        # A restriction of the subject planned since the check may have run its task there before
        # this record, not seeing it: staff are told now not to lift (activities/lift_superseded.py).
        await tell_after_release(ctx, lift, system)
    activity.logger.warning("held lift carried out: its holder ended without coming into force",
                            extra={"request_id": lift, "system": system, "status": data["status"]})
    return True


async def _record_release(ctx: ActivityContext, lift: str, system: str, data: dict[str, Any]) -> None:
    async with ctx.pool.acquire() as conn:
        await append_event(conn, event_key=released_key(lift, system), event_type="restriction.lift_released",
                           request_id=lift, actor="sweep", data=data)


async def _lifted(ctx: ActivityContext, policy_version: str, system: str, subject: Subject) -> ActionOutcome:
    """The system's answer to the lift, if it ends the search (`_SETTLED`); else LiftNotCarriedOut,
    and nothing goes on record: the next run asks again."""
    try:
        # Bounded, and beating: a system that hangs (a SaaS's 30 s per request, tried four times)
        # would outlast the sweep's heartbeat timeout (a minute), the activity cancelled with no
        # failure of the lift's own on record, and so never handed to staff (`_failing_too_long`).
        # What a hold keeps since an erasure stays restricted, as a task's lift leaves it (activities/fanout.py).
        held = await kept_records(ctx.pool, system=(system, policy_version))
        async with heartbeating(), asyncio.timeout(LIFT_SECONDS), open_connector(ctx, policy_version, system) as connector:
            outcome = await connector.lift_late(replace(subject, held=held))
    except Exception as exc:
        # Not the connector's own error: a quota's `next_retry_delay` (or a non-retryable one)
        # would hold back the whole sweep, every part of it, until the system's next day.
        raise LiftNotCarriedOut(system, type(exc).__name__) from exc
    if outcome.status not in _SETTLED:
        raise LiftNotCarriedOut(system, f"answered {outcome.status}")
    return outcome


async def _failing_too_long(ctx: ActivityContext, lift: str, system: str, why: str) -> bool:
    """Whether the system has failed the lift for `GIVE_UP_AFTER` since its first failure, which
    is put on L's timeline once (with its error's type, not its message, which may quote what was
    sent), its time the one counted from."""
    async with ctx.pool.acquire() as conn:
        key = f"{released_key(lift, system)}:failing"
        await append_event(conn, event_key=key, event_type="restriction.lift_release_failing",
                           request_id=lift, actor="sweep", data={"system": system, "error": why})
        since = await conn.fetchval("SELECT now() - occurred_at FROM audit_events WHERE event_key = $1", key)
    return bool(since >= GIVE_UP_AFTER)
