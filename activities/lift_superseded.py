"""A newer restriction of a subject at a system where a person is still to carry out an older lift
of the subject's restriction there: that person is told at once not to lift it.

The system's restriction lock (activities/restriction_lock.py) orders what dsrflow itself does at a
system. A lift a person carries out later is outside it: staff alerted to lift a system by hand (a
held lift's release, activities/held_lifts.py `lift-by-hand:<system>`; a lift task the system
answered needs a person: a SaaS without `actions.lift_restriction`, a processor without a
restriction interface) and a processor asked by e-mail to end a restriction
(activities/connectors/manual_email.py). If another request of the same subject restricts the
system after they were told and before they act, their lift undoes the newer restriction, and before
nothing told them not to.

Now each restriction's task at a system (activities/fanout.py, after its result is on record)
asks which lifts of the subject there are still with a person (`outstanding_lifts`):
- told to staff (a held lift's alert; a lift task waiting for staff, not yet resolved): staff are
  alerted once per restriction and system (`lift-superseded:<system>`): "do not lift S for this
  subject: request R restricts it since T; if you lifted it after that, restrict it again", T the
  restriction's plan (it counts from its plan on, as the lift's check does), and the restriction's
  timeline says it (`restriction.lift_superseded`, naming the lifts, after the alert: a try killed
  between them alerts nobody twice, the alert keyed, and records it on its retry);
- e-mailed to a processor and not confirmed: the restriction's own e-mail to that processor says
  that it supersedes that lift request (its reference and date), and its `processor.asked` names
  the lifts; every lift e-mail names the restriction it ends (reference and date) and says that a
  restriction asked under another reference stands.
A lift is no longer outstanding once a newer restriction told about it: the next restriction of the
subject does not alert again about the same lift.

The alerts and records name requests by id and systems by policy id: nothing of the subject.

The race the lock leaves open: a held lift's release checks under the lock and alerts staff after
it; a restriction planned between the two runs its task without seeing the alert. The release
therefore asks again once its alert is on record (`tell_after_release`): either the restriction's
task sees the release's record, or the release sees the restriction's plan.

Not the task's failure: a task whose restriction is done and on record does not fail because the
relay (or the database) is away as it tells staff (eight tries in minutes, then staff asked to
resolve a task that did its job). It logs it, and the worker's start sweep (`tell_untold`, every
five minutes) asks, for each lift handed to staff that no restriction has named yet, which
restriction now holds its system, and has it tell them; so it does for a release killed after its
record and before its second look.
"""

from __future__ import annotations

from datetime import datetime

from activities.context import ActivityContext
from activities.sweep_alerts import sweep_alert
from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.stores.lifts_by_hand import not_lifted_by_hand
from dsrflow.stores.lifts_outstanding_store import outstanding_lifts
from dsrflow.stores.restrictions_store import restricted_elsewhere
from schemas.workflow import LetterJob


def superseded_key(restriction: str, system: str) -> str:
    return f"{restriction}:lift:superseded:{system}"


async def tell_lift_superseded(ctx: ActivityContext, restriction: str, system: str) -> bool:
    """Whoever holds an older lift of the subject at `system` is told that `restriction` now
    restricts it: staff by an alert (once), a processor by the restriction's own e-mail (already
    sent); the timeline says it. Whether anyone was."""
    key = superseded_key(restriction, system)
    if await ctx.pool.fetchval("SELECT EXISTS (SELECT FROM audit_events WHERE event_key = $1)", key):
        return False  # a retry: told, on record
    lifts = await outstanding_lifts(ctx.pool, restriction, system)
    if not lifts:
        return False
    since: datetime = await ctx.pool.fetchval(
        """SELECT coalesce((SELECT occurred_at FROM audit_events WHERE event_key = $1 || ':planned'), now())""",
        restriction)
    by_staff = sorted({row["lift"] for row in lifts if row["told"] == "staff"})
    if by_staff:
        await sweep_alert(ctx, LetterJob(
            request_id=restriction, purpose="staff_alert", key=f"lift-superseded:{system}", to_staff=True,
            params={"kind": "needs_attention", "days_left": None,
                    "facts": {"what": "lift_superseded", "system": system, "lifts": by_staff, "since": since}}))
        failpoint("lift-superseded-alerted", f"{system}:{restriction}")  # told, not yet on record
    async with ctx.pool.acquire() as conn:
        await append_event(conn, event_key=key, event_type="restriction.lift_superseded", request_id=restriction,
                           actor="workflow", data={
                               "system": system, "since": since.isoformat(), "lifts": sorted({r["lift"] for r in lifts}),
                               "staff": by_staff, "emailed": sorted({r["lift"] for r in lifts if r["told"] == "e-mail"})})
    return True


async def tell_after_release(ctx: ActivityContext, lift: str, system: str) -> None:
    """A held lift just handed to staff (activities/held_lifts.py): a restriction of the subject
    planned since its check, whose task may already have run without seeing the alert, tells them."""
    newer = (await restricted_elsewhere(ctx.pool, lift)).get(system)
    if newer is not None:
        await tell_lift_superseded(ctx, newer, system)


# Lifts handed to staff not yet named by a newer restriction (the alert's `_NOT_TOLD`, for any
# subject): a handful, each asked which restriction now holds its system. Bounded: a lift handed
# to staff long ago was carried out or left; a restriction of the subject since told them at once.
# One staff recorded as lifted by hand (dsrflow/stores/lifts_by_hand.py) is nobody's to tell.
_UNTOLD = f"""
    SELECT DISTINCT lift::text, system FROM (
        SELECT e.request_id AS lift, e.data ->> 'system' AS system FROM audit_events e
        WHERE e.event_type = 'restriction.lift_released' AND e.data ->> 'status' = 'needs_attention'
          AND e.occurred_at > now() - interval '90 days'
          AND {not_lifted_by_hand("e.request_id", "(e.data ->> 'system')")}
        UNION ALL
        SELECT t.request_id, t.system FROM system_tasks t
        WHERE t.action = 'lift_restriction' AND t.status = 'needs_attention') held
    WHERE NOT EXISTS (SELECT FROM audit_events x WHERE x.event_type = 'restriction.lift_superseded'
                        AND x.data ->> 'system' = held.system AND x.data -> 'lifts' ? held.lift::text)
    LIMIT 200"""


async def tell_untold(ctx: ActivityContext) -> int:
    """The start sweep's part: a restriction whose task could not tell staff (the relay or the
    database away as it tried: the task stands, `fanout._run` logs it) tells them now. How many
    restrictions told staff this time."""
    told = 0
    for row in await ctx.pool.fetch(_UNTOLD):
        newer = (await restricted_elsewhere(ctx.pool, row["lift"])).get(row["system"])
        if newer is not None and await tell_lift_superseded(ctx, newer, row["system"]):
            told += 1
    return told

