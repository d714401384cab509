"""Lifts of a subject's restriction at a system that a person is still to carry out, for a newer
restriction of the subject there to supersede (activities/lift_superseded.py, and the e-mail a
processor asked by e-mail receives: activities/connectors/manual_email.py)."""

from __future__ import annotations

from typing import Any

from dsrflow.stores.lifts_by_hand import not_lifted_by_hand
from dsrflow.stores.restrictions_store import SAME_SUBJECT, SUBJECT_OF_REQUEST

# Not yet named by another request's `restriction.lift_superseded` at the system: told once.
_NOT_TOLD = """NOT EXISTS (SELECT FROM audit_events x WHERE x.event_type = 'restriction.lift_superseded'
                  AND x.request_id <> $1::uuid AND x.data ->> 'system' = $2 AND x.data -> 'lifts' ? d.id::text)"""

# The subject's lifts at a system (other requests) that a person is told to carry out and has not
# been seen to: `by` staff or the processor `e-mail`. A held lift staff recorded as lifted by hand
# (dsrflow/stores/lifts_by_hand.py) is done: a newer restriction tells nobody not to lift it.
_OUTSTANDING = f"""
    WITH {SUBJECT_OF_REQUEST}
    SELECT d.id::text AS lift, 'staff' AS told, e.occurred_at AS at FROM dsr_requests d JOIN me ON {SAME_SUBJECT}
      JOIN audit_events e ON e.request_id = d.id AND e.event_type = 'restriction.lift_released'
       AND e.data ->> 'system' = $2 AND e.data ->> 'status' = 'needs_attention'
    WHERE d.id <> $1::uuid AND {_NOT_TOLD} AND {not_lifted_by_hand("d.id", "$2")}
    UNION ALL
    SELECT d.id::text, 'staff', t.updated_at FROM dsr_requests d JOIN me ON {SAME_SUBJECT}
      JOIN system_tasks t ON t.request_id = d.id AND t.system = $2 AND t.action = 'lift_restriction'
       AND t.status = 'needs_attention'
    WHERE d.id <> $1::uuid AND {_NOT_TOLD}
    UNION ALL
    SELECT d.id::text, 'e-mail', m.sent_at FROM dsr_requests d JOIN me ON {SAME_SUBJECT}
      JOIN manual_tasks m ON m.request_id = d.id AND m.system = $2 AND m.action = 'lift_restriction'
       AND m.confirmed_at IS NULL
    WHERE d.id <> $1::uuid AND {_NOT_TOLD}
    ORDER BY at"""


async def outstanding_lifts(conn: Any, restriction: str, system: str) -> list[dict[str, Any]]:
    """The lifts of `restriction`'s subject at `system` a person still holds (`lift`, `told`,
    `at`), oldest first, one row per lift and way told."""
    return [dict(row) for row in await conn.fetch(_OUTSTANDING, restriction, system)]


async def lift_emails_superseded(conn: Any, restriction: str, system: str) -> list[dict[str, Any]]:
    """The lift e-mails to `system` (a processor asked by e-mail) of the subject's other requests,
    not confirmed: what `restriction`'s own e-mail supersedes (`lift`, `at`: when it was sent)."""
    return [row for row in await outstanding_lifts(conn, restriction, system) if row["told"] == "e-mail"]


async def lifts_told(conn: Any, request_id: str, system: str, action: str) -> dict[str, Any]:
    """What a restriction's or a lift's e-mail to a processor asked by e-mail says of the other: it
    may act on a lift e-mail and a newer restriction's e-mail of the same person in either order
    (activities/lift_superseded.py). A restriction supersedes the subject's lift e-mails to this
    processor not yet confirmed (`supersedes`: their requests and dates); a lift names the
    restriction it ends (`lifts_restriction_of`: when we asked the processor for it, if by e-mail)."""
    if action == "restrict":
        return {"supersedes": [{"id": row["lift"], "sent_at": row["at"]}
                               for row in await lift_emails_superseded(conn, request_id, system)]}
    if action == "lift_restriction":
        return await _restriction_ended(conn, request_id, system)
    return {}


# The lift e-mails a restriction's e-mail superseded: its `processor.asked` names them, in its order.
_SUPERSEDED_THEN = """
    SELECT m.request_id::text AS id, m.sent_at FROM audit_events e
      CROSS JOIN LATERAL jsonb_array_elements_text(e.data -> 'supersedes') WITH ORDINALITY AS s(lift, n)
      JOIN manual_tasks m ON m.request_id = s.lift::uuid AND m.system = $2 AND m.action = 'lift_restriction'
    WHERE e.request_id = $1::uuid AND e.event_type = 'processor.asked'
      AND e.data ->> 'system' = $2 AND e.data ->> 'action' = 'restrict'
    ORDER BY s.n"""


async def lifts_told_then(conn: Any, request_id: str, system: str, action: str) -> dict[str, Any]:
    """What the task's first e-mail said of the other (`lifts_told` as it was then), for its reminders
    to repeat: the processor acts on the reminder, often late, and must read it there too. A
    restriction's: the lift e-mails its `processor.asked` names (a lift confirmed since is no longer
    outstanding, but the processor was told of it); a lift's: the restriction it ends."""
    if action == "restrict":
        return {"supersedes": [dict(row) for row in await conn.fetch(_SUPERSEDED_THEN, request_id, system)]}
    if action == "lift_restriction":
        return await _restriction_ended(conn, request_id, system)
    return {}


async def _restriction_ended(conn: Any, request_id: str, system: str) -> dict[str, Any]:
    asked = await conn.fetchval("SELECT sent_at FROM manual_tasks WHERE request_id = $1::uuid AND system = $2 "
                                "AND action = 'restrict'", request_id, system)
    return {"lifts_restriction_of": asked}
