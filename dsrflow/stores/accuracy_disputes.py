"""A subject's dispute of the accuracy of their data, recorded against a correction we refused in
whole or in part: the refusal's letter offers it under the request's law (the CCPA's regulations
have us note, on request, that the consumer contests the accuracy, and we keep a statement they
send; PIPEDA has us record the substance of an unresolved challenge; activities/letter_refusals.py
`accuracy_dispute`). Staff record what the subject sends (REST and the console's request page);
it is an audit event of the request, `dispute.recorded`, with the statement, so its timeline and
its evidence pack show it. Telling the recipients of the data is done by hand: nothing here
records that it was."""

from __future__ import annotations

import uuid
from typing import Any

from dsrflow.domain.audit import append_event
from dsrflow.stores.requests_store import get_request

DISPUTED = "dispute.recorded"
# A correction decided: refused outright (denied) or answered, in part perhaps (completed). One
# still running has no refusal to dispute yet; one closed unverified or cancelled decided nothing.
_DECIDED = frozenset({"denied", "completed"})


class DisputeRefused(Exception):
    """Why no dispute is recorded on this request (`status`: 404 or 409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def record_dispute(pool: Any, request_id: str, statement: str, *, actor: str, once: str | None) -> str:
    """Record `statement` against request `request_id`, once per `once` (a form's submission or an
    Idempotency-Key: the same key again records nothing more); return the event's hash."""
    row = await get_request(pool, request_id)
    if row is None:
        raise DisputeRefused(404, f"There is no request {request_id}.")
    if row["request_type"] != "rectification":
        raise DisputeRefused(409, "A dispute of accuracy is recorded against a correction (rectification) "
                                  f"request; this is a request of type {row['request_type']}.")
    if row["status"] not in _DECIDED:
        raise DisputeRefused(409, "A dispute of accuracy is recorded once the correction is decided (denied or "
                                  f"answered); this request is {row['status']}.")
    key = f"{row['id']}:dispute:{once or uuid.uuid4()}"
    async with pool.acquire() as conn:
        recorded = await append_event(conn, event_key=key, request_id=str(row["id"]), event_type=DISPUTED,
                                      actor=actor, data={"statement": statement})
        # The same key again records nothing more: said so where it came with other words, rather
        # than answered as if those were recorded.
        kept = await conn.fetchval("SELECT data->>'statement' FROM audit_events WHERE event_key = $1", key)
    if kept != statement:
        raise DisputeRefused(409, "This key was used already for another statement on this request: that statement "
                                  "is the one recorded, this one was not.")
    return recorded
