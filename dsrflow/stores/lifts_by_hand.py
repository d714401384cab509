"""Lifts staff were told to carry out by hand, and their record once they did.

A held lift (restriction L's lift at system S, held back by another restriction that then never
came into force there) that a person must carry out is handed to staff by the worker's start
sweep (activities/held_lifts.py): one `lift_by_hand` alert, and L's `restriction.lift_released`
at S with status needs_attention. Staff lift S by hand (a processor told by e-mail or phone, a
SaaS's own screen) and record here that they did: `restriction.lifted_by_hand`, with the system,
their note and who, once per request and system. Before, nothing could record it: L's timeline
and evidence pack never said S was un-restricted, and a newer restriction of the subject
(activities/lift_superseded.py) went on telling staff not to lift it, for 90 days.

A lift *task* that needs staff is answered by resolving the task (a workflow update); this is
the sweep's lift, done after L closed, so an audit event beside the request, as a resolution of
a deferred erasure is (dsrflow/stores/deferred_store.py). Allowed on a closed request: L is.
"""

from __future__ import annotations

import re
from typing import Any

from dsrflow.domain.audit import append_event
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import get_request

LIFTED_BY_HAND = "restriction.lifted_by_hand"
# A staff note, as long as any other (dsrflow/stores/team_store.py NOTE_MAX).
LIFT_NOTE_MAX = 4000
# A system as the policy names it (its id): anything else is no system of any request.
_SYSTEM = re.compile(r"[a-z][a-z0-9_]{0,62}")
_BY_HAND = ":lift:by_hand:"


def by_hand_key(lift: str, system: str) -> str:
    """The record's key: once per request and system (`NOT_LIFTED_BY_HAND` builds it in SQL)."""
    return f"{lift}{_BY_HAND}{system}"


def not_lifted_by_hand(request: str, system: str) -> str:
    """An SQL condition: the lift of request `request` at `system` (SQL expressions) is not recorded
    as carried out by hand. For the queries that count a lift handed to staff as still outstanding
    (dsrflow/stores/lifts_outstanding_store.py, activities/lift_superseded.py)."""
    return (f"NOT EXISTS (SELECT FROM audit_events h WHERE h.event_key = "
            f"{request}::text || '{_BY_HAND}' || {system})")


# The request's lifts handed to staff (the sweep's release, needs_attention), not yet recorded as
# carried out by hand: one per system, since when, and the newer restriction of the subject that
# told staff not to carry it out (activities/lift_superseded.py: its `restriction.lift_superseded`
# names this lift there; since when it restricts the system), if one did.
_OUTSTANDING = f"""
    SELECT o.system, o.since, s.request_id::text AS superseded_by, s.data ->> 'since' AS restricted_since FROM (
        SELECT e.data ->> 'system' AS system, min(e.occurred_at) AS since FROM audit_events e
        WHERE e.request_id = $1::uuid AND e.event_type = 'restriction.lift_released'
          AND e.data ->> 'status' = 'needs_attention'
          AND {not_lifted_by_hand("e.request_id", "(e.data ->> 'system')")}
        GROUP BY 1) o
    LEFT JOIN LATERAL (
        SELECT x.request_id, x.data FROM audit_events x
        WHERE x.event_type = 'restriction.lift_superseded' AND x.data ->> 'system' = o.system
          AND x.data -> 'lifts' ? $1::text
        ORDER BY x.occurred_at DESC LIMIT 1) s ON true
    ORDER BY o.since, o.system"""


class LiftByHandRefused(Exception):
    """Why nothing is recorded (`status`: 404, 409 or 422; `field`: the body's field a 422 is about)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field

    def said(self) -> str:
        """The refusal as staff read it (REST's detail, the console's notice): the field first."""
        return f"{self.field}: {self}" if self.field else str(self)


async def lifts_by_hand_outstanding(conn: Any, request_id: str) -> list[dict[str, Any]]:
    """The lifts of request `request_id` staff were told to carry out by hand and have not recorded
    as done: `system`, `since` (when they were handed to staff), oldest first; `superseded_by` and
    `restricted_since` (ISO) where a newer restriction of the subject told staff not to lift it
    (else None): staff must not lift it, and one who already did restricts it again."""
    return [dict(row) for row in await conn.fetch(_OUTSTANDING, request_id)]


def restrict_again(superseded_by: str, system: str) -> str:
    """What staff who lifted a superseded lift are told to do (REST's answer, the console's notice)."""
    return (f"Restrict the subject's data at {system} again: request {short_reference(superseded_by)} restricts it "
            "there since before this lift was carried out, and this lift undid it.")


async def record_lift_by_hand(pool: Any, request_id: str, system: str, note: str, *, actor: str) -> dict[str, Any]:
    """Record that staff lifted `system` by hand for request `request_id`'s restriction, with `note`
    (how: kept in the trail, never logged). Once per request and system. Returns the event's data:
    with `after_restriction` and `restricted_since` where a newer restriction of the subject had
    told staff not to lift it (staff lifted before they were told: still recorded, as it happened)."""
    if not _SYSTEM.fullmatch(system):
        raise LiftByHandRefused(422, "is not a system's id as the policy names it (e.g. email_marketing)", "system")
    text = note.strip()
    if not text or len(text) > LIFT_NOTE_MAX:
        raise LiftByHandRefused(422, f"say how it was lifted, in at most {LIFT_NOTE_MAX} characters", "note")
    row = await get_request(pool, request_id)
    if row is None:
        raise LiftByHandRefused(404, f"There is no request {request_id}.")
    key, data = by_hand_key(str(row["id"]), system), {"system": system, "note": text}
    async with pool.acquire() as conn:
        if await conn.fetchval("SELECT EXISTS (SELECT FROM audit_events WHERE event_key = $1)", key):
            raise LiftByHandRefused(409, f"The lift at {system} is already recorded as carried out by hand for this "
                                         "request: see its timeline.")
        owed = {lift["system"]: lift for lift in await lifts_by_hand_outstanding(conn, str(row["id"]))}
        if system not in owed:
            raise LiftByHandRefused(409, f"No lift by hand is outstanding at {system} for this request: staff are "
                                         "asked to lift a system by hand only where the sweep handed them this "
                                         "request's held lift there (its timeline says 'tell it the restriction "
                                         "has ended').")
        if owed[system]["superseded_by"]:  # carried out after a newer restriction: the record says so
            data |= {"after_restriction": owed[system]["superseded_by"],
                     "restricted_since": owed[system]["restricted_since"]}
        await append_event(conn, event_key=key, event_type=LIFTED_BY_HAND, request_id=str(row["id"]),
                           actor=actor, data=data)
        # Two presses at once: the key takes one; the other is told, not answered as recorded.
        kept = await conn.fetchrow("SELECT actor, data FROM audit_events WHERE event_key = $1", key)
    if (kept["actor"], kept["data"]) != (actor, data):
        raise LiftByHandRefused(409, f"The lift at {system} was recorded as carried out by hand meanwhile, by "
                                     "another press: that record is the one kept, this one was not.")
    return data
