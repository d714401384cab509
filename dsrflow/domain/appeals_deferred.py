"""Appeals (UK complaints) closed for another of the same refusal that then ended without a
decision. One decision per refusal (activities/appeal_claims.py) closes a later appeal, its letter
promising that the other's decision "answers this appeal too"; if the subject then withdraws that
other one, staff cancel it, or it is closed (or denied) because the subject could not be identified,
that promise is never kept: the refusal was not reconsidered, and the subject may appeal again (the
intake takes a new appeal then: `_DECIDED` in dsrflow/domain/appeals.py counts none of these). The
letter closing the other, the closed appeal's portal page and its evidence pack say so."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

# How an appeal ended without a decision on the merits, from its closing event (the one its status
# names, written with it: `set_status`): withdrawn by its subject or cancelled by staff (both
# `cancelled`), closed unverified, or denied because we could not tell it came from the subject.
_ENDING = """SELECT a.status, e.data FROM dsr_requests a
               JOIN audit_events e ON e.request_id = a.id AND e.event_type = 'status.' || a.status
              WHERE a.id = $1 AND a.status IN ('cancelled', 'closed_unverified', 'denied')
              ORDER BY e.seq LIMIT 1"""

# The ids of the appeals closed for the request of row `r` (their `status.cancelled` carries
# `decided_as`), oldest first, as a JSON list: an SQL expression a letter reads with its request
# (activities/letters.py `_LETTER_FACTS`), in its one round trip. Only an appeal's row looks.
CLOSED_FOR = """(CASE WHEN r.details ? 'appeal_of' THEN
                  (SELECT coalesce(jsonb_agg(e.request_id ORDER BY a.received_at, a.id), '[]')
                     FROM dsr_requests a
                     JOIN audit_events e ON e.request_id = a.id AND e.event_type = 'status.cancelled'
                    WHERE a.details->>'appeal_of' = r.details->>'appeal_of' AND e.data->>'decided_as' = r.id::text)
                 ELSE '[]' END)"""

UNDECIDED_ENDINGS = ("withdrawn", "cancelled", "closed_unverified", "denied_unverified")


def undecided_ending(status: str, data: dict[str, Any] | None) -> str | None:
    """One of UNDECIDED_ENDINGS for an appeal closed with `status` and its closing event's `data`;
    None for one decided (a denial on the merits) or still open. A cancelled appeal that was itself
    closed for another (`decided_as`) is not one that was to decide anything."""
    data = data or {}
    if status == "cancelled" and not data.get("decided_as"):
        return "withdrawn" if data.get("withdrawn_by_subject") else "cancelled"
    if status == "closed_unverified":
        return "closed_unverified"
    if status == "denied" and data.get("reason_code") == "identity_not_established":
        return "denied_unverified"
    return None


async def ended_undecided(conn: asyncpg.Connection | asyncpg.Pool, appeal_id: str) -> str | None:
    """How appeal `appeal_id` ended without a decision (`undecided_ending`); None if it did not."""
    row = await conn.fetchrow(_ENDING, uuid.UUID(str(appeal_id)))
    return undecided_ending(row["status"], row["data"]) if row else None

