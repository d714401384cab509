"""What a UK complaint's progress letter says besides its facts (workflows/complaint_progress.py):
the Commissioner, and when we write next; and whether it is still to go at all."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg

from dsrflow.domain.audit import append_event
from policy.model import Policy
from schemas.requests import RequestStatus

# Letters that tell a request's outcome, or close it without one.
_OUTCOMES = ["response", "denial", "closed_unverified", "cancellation"]


async def overtaken(conn: asyncpg.Connection, row: dict[str, Any], letter_key: str) -> bool:
    """A progress letter whose complaint has been answered or closed since it was asked for (its
    step retried through a relay outage, or was under way, as the outcome went): sent then, it
    would follow the outcome saying "we are still looking into it". It does not go, and the trail
    says so."""
    answered = RequestStatus(row["status"]).is_closed or await conn.fetchval(
        "SELECT EXISTS (SELECT FROM sent_letters WHERE request_id = $1 AND purpose = ANY($2::text[]))",
        row["id"], _OUTCOMES)
    if answered:
        await append_event(conn, event_key=f"letter:{letter_key}:overtaken", request_id=str(row["id"]),
                           event_type="letter.overtaken", actor="workflow", data={"purpose": "complaint_progress"})
    return bool(answered)


def progress_context(policy: Policy, regime: str, received: date, params: dict[str, Any],
                     remedies: dict[str, Any]) -> dict[str, Any]:
    """`complaint`: the Commissioner (`remedies`, as a complaint closed undecided names them: the
    letter decides nothing); `next_date`: the day of the next progress letter, should the
    complaint still be undecided then (the n-th goes `n * progress_days` after receipt, unless staff
    sent one by hand: the workflow then says when, counted from that one)."""
    if "next_date" in params:  # counted by the workflow from a letter staff sent by hand (or none)
        given = params["next_date"]
        return {"complaint": remedies, "next_date": date.fromisoformat(given) if given else None}
    every = policy.complaint_progress_days(regime)
    later = received + timedelta(days=every * (params["number"] + 1)) if every else None
    return {"complaint": remedies, "next_date": later}
