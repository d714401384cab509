"""Activities of a restriction's lifecycle (Art. 18 GDPR), as the request's workflow runs it
(workflows/restriction_lifecycle.py): record it in force, announce its lift, record it lifted.
Each is idempotent (a retry finds its row and its audit event already there)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity

from activities.citations import IN_BRACKETS, CitedLabel, cited_label
from activities.context import ActivityContext
from activities.letter_systems import system_where
from activities.recipients_told import recipients_named
from dsrflow.crypto.hashing import subject_hash
from dsrflow.domain.audit import append_event
from dsrflow.domain.references import short_reference
from dsrflow.i18n import ENGLISH, N_, Translator
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.writes import Write
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.restrictions_store import restricted_elsewhere, restriction_as_told
from policy.model import Policy
from schemas.restrictions import (
    LiftAnnounced,
    LiftCarriedOut,
    LiftSchedule,
    RestrictionInForce,
)

# Each completes "... because ..." in the lift letter, citing Art. 18(1) in the regime's law
# (activities/citations.py).
GROUND_LABELS: dict[str, CitedLabel] = {
    "accuracy_contested": (N_("you contested the accuracy of your personal data%(citation)s"), "18(1)(a)",
                           IN_BRACKETS),
    "unlawful_processing": (N_("the processing was unlawful and you opposed the erasure of your data%(citation)s"),
                            "18(1)(b)", IN_BRACKETS),
    "needed_for_legal_claims": (N_("you needed the data for the establishment, exercise or defence of "
                                   "legal claims%(citation)s"), "18(1)(c)", IN_BRACKETS),
    "objection_pending": (N_("you objected to the processing and we were verifying whether our "
                             "legitimate grounds override yours%(citation)s"), "18(1)(d)", IN_BRACKETS),
}


async def lift_letter_context(ctx: ActivityContext, row: dict[str, Any], policy: Policy,
                              t: Translator = ENGLISH) -> dict[str, Any]:
    """What the lift letter says besides the workflow's params: since when the restriction has
    been in force, on which grounds, and which Art. 19 recipients will be told of its end."""
    restriction = await restriction_as_told(ctx.pool, str(row["id"]), policy.restriction.lift_notice_days)
    if restriction is None:
        raise LookupError(f"no restriction recorded for request {row['id']}")
    held: dict[str, str] = restriction["held"]
    told = [policy.recipients[recipient] for s in restriction["systems"]
            if s in policy.systems and s not in held and (recipient := policy.systems[s].recipient) is not None
            and recipient in policy.recipients]
    # Named as the response to the restriction named them, with the offer to name on request
    # those named by their kind (Art. 19, second sentence).
    recipients, by_kind = recipients_named(told)
    # A holder in force keeps the data restricted until its own lift (told before it comes); one
    # still under way may yet end without coming into force, and then the held lift is carried out
    # after all (activities/held_lifts.py): the letter must not promise it the other's lift.
    in_force = set(restriction["held_in_force"])
    context: dict[str, Any] = {"restriction": {
        "since": controller_date(restriction["since"], policy),
        "grounds": [cited_label(GROUND_LABELS[g], row["regime"], t) for g in restriction["grounds"]],
        "recipients": recipients, "recipients_by_kind": by_kind,
        # Where another of the subject's restrictions keeps the data restricted, the lift leaves it.
        # Named after a verb ("your personal data in our CRM and at our ... provider"), each its own way.
        "still_restricted": [{"reference": short_reference(other), "in_force": other in in_force, "systems": [
            policy.system_label(s) for s in sorted(held) if held[s] == other], "where": [
            system_where(policy, s, t) for s in sorted(held) if held[s] == other]}
            for other in sorted(set(held.values()))]}}
    if restriction["lift_effective_on"] is not None:
        # The moment the lift takes effect, on record (restarted while the letter has not gone),
        # as a date where the controller acts, as every date in a letter is.
        context["lift_on"] = controller_date(restriction["lift_effective_on"], policy)
    return context


async def lift_held_by(pool: Any, request_id: str, system: str, *, lifted_before: bool = False) -> str | None:
    """The subject's other restriction that keeps `system` restricted when this one's lift reaches
    it (dsrflow/stores/restrictions_store.py `restricted_elsewhere`): the lift leaves the system as
    it is. On record with the answer (`restriction.lift_held`), which a retry gives again: a retry
    after the other restriction was lifted meanwhile must not report a lift that did not happen.
    Asked under the system's restriction lock (activities/restriction_lock.py). `lifted_before`: an
    earlier try of this lift, killed before it answered, got as far as lifting the system; the other
    restriction started after its check, waited for that try's lock and restricted the system
    again, which the record says."""
    key = f"{request_id}:lift:held:{system}"
    async with pool.acquire() as conn, conn.transaction():
        data = await conn.fetchval("SELECT data FROM audit_events WHERE event_key = $1", key)
        if data is not None:
            return str(data["by"])
        other = (await restricted_elsewhere(conn, request_id)).get(system)
        if other is not None:
            await append_event(conn, event_key=key, event_type="restriction.lift_held", request_id=request_id,
                               actor="workflow", data={"system": system, "by": other,
                                                       **({"lifted_before": True} if lifted_before else {})})
    failpoint("lift-held", system)  # on record, and the task's result not yet kept
    return other


def held_message(other: str, lifted_before: bool = False) -> str:
    """A lift task's words for staff where the subject's other restriction keeps the system restricted."""
    if lifted_before:
        return (f"lifted here by an earlier try that stopped before it answered; restricted again by the "
                f"subject's restriction {short_reference(other)}, which started while this lift ran")
    return f"not lifted here: the subject's restriction {short_reference(other)} is still in force here"


def controller_date(moment: datetime, policy: Policy) -> date:
    """The date of `moment` in the controller's timezone (policy `defaults.timezone`)."""
    return moment.astimezone(ZoneInfo(policy.defaults.timezone)).date()


class RestrictionActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="record_restriction")
    async def record_restriction(self, restriction: RestrictionInForce) -> None:
        """The restriction is in force: its grounds (from the request), the systems it reached and
        whether, under the request's policy version, it keeps the records from every erasure. Asked
        again, once on record (a task left running at a part-way close restricted since), the
        systems not on record yet are added, each with its event."""
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            row = await get_request(conn, restriction.request_id)
            if row is None:
                raise LookupError(f"request {restriction.request_id} not found")
            on_record = await conn.fetchval("SELECT systems FROM restrictions WHERE request_id = $1 FOR UPDATE",
                                            row["id"])
            if on_record is not None:
                await self._reached_late(conn, restriction, [s for s in restriction.systems if s not in on_record])
                return
            policy = (await self.ctx.policy(row["policy_version"])).policy
            grounds = list((row["details"] or {}).get("restriction_grounds") or [])
            keeps = bool(set(grounds) & set(policy.restriction.keeps_from_erasure))
            await conn.execute(
                """INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING""",
                row["id"], subject_hash(self.ctx.secret, row["subject_email"]), grounds,
                restriction.systems, keeps)
            await append_event(
                conn, event_key=f"{restriction.request_id}:restriction:in_force", request_id=restriction.request_id,
                event_type="restriction.in_force", actor="workflow",
                data={"grounds": grounds, "systems": restriction.systems, "keeps_from_erasure": keeps})

    @staticmethod
    async def _reached_late(conn: Any, restriction: RestrictionInForce, systems: list[str]) -> None:
        for system in systems:
            await append_event(
                conn, event_key=f"{restriction.request_id}:restriction:reached:{system}",
                request_id=restriction.request_id, event_type="restriction.reached", actor="workflow",
                data={"system": system}, along=[Write(
                    "UPDATE restrictions SET systems = array_append(systems, $2) WHERE request_id = $1::uuid "
                    "AND NOT $2 = ANY(systems)", (restriction.request_id, system))])

    @activity.defn(name="announce_restriction_lift")
    async def announce_lift(self, lift: LiftAnnounced) -> LiftSchedule:
        """Compliance decided to lift it: record who and why, and when it takes effect (after the
        policy's notice period from now, when the letter goes out)."""
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            row = await get_request(conn, lift.request_id)
            if row is None:
                raise LookupError(f"request {lift.request_id} not found")
            days = (await self.ctx.policy(row["policy_version"])).policy.restriction.lift_notice_days
            effective = datetime.now(UTC) + timedelta(days=days)
            await conn.execute(
                """UPDATE restrictions SET lift_reason = $2, lift_requested_by = $3, lift_requested_at = now(),
                                           lift_effective_on = $4
                   WHERE request_id = $1 AND lift_requested_at IS NULL""",
                row["id"], lift.reason, lift.actor, effective)
            await append_event(
                conn, event_key=f"{lift.request_id}:restriction:lift_requested", request_id=lift.request_id,
                event_type="restriction.lift_requested", actor=lift.actor,
                data={"reason": lift.reason, "notice_days": days})
        return LiftSchedule(notice_days=days)

    @activity.defn(name="record_restriction_lifted")
    async def record_lifted(self, lift: LiftCarriedOut) -> None:
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            # A system the subject's other restriction kept restricted was not lifted: its recipient
            # is not told of an end (unless a system lifted shares it).
            held = {r["data"]["system"] for r in await conn.fetch(
                "SELECT data FROM audit_events WHERE request_id = $1::uuid AND event_type = 'restriction.lift_held'",
                lift.request_id)}
            row = await get_request(conn, lift.request_id)
            if row is None:
                raise LookupError(f"request {lift.request_id} not found")
            policy = (await self.ctx.policy(row["policy_version"])).policy
            lifted_to = {spec.recipient for s, spec in policy.systems.items() if s in lift.systems and s not in held}
            recipients = [r for r in lift.recipients if r in lifted_to]
            await conn.execute("UPDATE restrictions SET lifted_at = now() WHERE request_id = $1::uuid "
                               "AND lifted_at IS NULL", lift.request_id)
            await append_event(
                conn, event_key=f"{lift.request_id}:restriction:lifted", request_id=lift.request_id,
                event_type="restriction.lifted", actor=lift.actor,
                data={"systems": lift.systems, "recipients": recipients, "held": sorted(held)})
