"""A subject's dispute of the accuracy of their data, recorded against a correction we refused in
whole or in part: the refusal's letter offers it under the request's law (the CCPA's regulations
have us note, on request, that the consumer contests the accuracy, and we keep a statement they
send; PIPEDA has us record the substance of an unresolved challenge; activities/letter_refusals.py
`accuracy_dispute`). Staff record what the subject sends (REST and the console's request page);
it is an audit event of the request, `dispute.recorded`, with the statement, so its timeline and
its evidence pack show it. Staff tell the recipients of the data by hand (the CCPA's regulations:
the dispute noted to any person to whom we disclose, share or sell the information; PIPEDA: made
known to third parties having access to it) and record here that they did, or that none received
the contested data: `dispute.recipients_told`; until then the request page says it is owed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from dsrflow.domain.audit import append_event
from dsrflow.stores.requests_store import get_request

DISPUTED = "dispute.recorded"
TOLD = "dispute.recipients_told"
# A correction decided: refused outright (denied) or answered, in part perhaps (completed). One
# still running has no refusal to dispute yet; one closed unverified or cancelled decided nothing.
_DECIDED = frozenset({"denied", "completed"})


class DisputeRefused(Exception):
    """Why no dispute is recorded on this request (`status`: 404 or 409)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field  # `field`: the body's field a 422 is about


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


async def data_recipients(conn: Any, row: dict[str, Any]) -> dict[str, str]:
    """The recipients that received data of request `row`'s systems, by key, each named as the
    letters name it (who it is, else the kind of provider), by name (jsonb keeps no order): those
    its plan's tasks name (the version it was planned under), else those the systems it reaches
    name in its own version (a correction refused before planning). A provider that only hosts
    our systems is named by none: what is noted on our systems is noted on its machines (the same
    reading as Art. 19's, policy/model.py). Read from the stored version's JSON: the core library
    reads no policy model."""
    plan = await conn.fetchval("SELECT plan FROM request_plans WHERE request_id = $1", row["id"])
    version = (plan or {}).get("policy_version") or row["policy_version"]
    content = await conn.fetchval("SELECT content FROM policy_versions WHERE version = $1", version) or {}
    systems = content.get("systems") or {}
    if plan is not None:
        reached = {task.get("recipient") for task in plan.get("tasks", [])}
    else:
        reach = (row["details"] or {}).get("systems") or list(systems)
        reached = {(systems.get(name) or {}).get("recipient") for name in reach}
    named = {key: recipient.get("identity") or recipient.get("name") or key.replace("_", " ")
             for key, recipient in (content.get("recipients") or {}).items() if key in reached}
    return dict(sorted(named.items(), key=lambda item: item[1].casefold()))


async def record_told(pool: Any, request_id: str, recipients: Sequence[str], *, none_to_tell: bool, note: str,
                      actor: str, once: str | None) -> dict[str, Any]:
    """Record that `recipients` (keys of `data_recipients`) were told of the disputes recorded on
    request `request_id`, or that none received the contested data (`none_to_tell`), and how
    (`note`); once per `once`, as `record_dispute`. Return what the event holds."""
    row = await get_request(pool, request_id)
    if row is None:
        raise DisputeRefused(404, f"There is no request {request_id}.")
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT true FROM audit_events WHERE request_id = $1 AND event_type = $2 LIMIT 1",
                                   row["id"], DISPUTED):
            raise DisputeRefused(409, "No dispute of accuracy is recorded on this request: record the subject's "
                                      "dispute first, then that its recipients were told of it.")
        known = await data_recipients(conn, row)
        for key in recipients:
            if key not in known:
                raise DisputeRefused(422, f"{key!r} is not a recipient that received data of this request's systems "
                                          + (f"(those are: {', '.join(known)})" if known else
                                             "(none did: say none_to_tell)"), field="recipients")
        told = [key for key in known if key in recipients]
        # The names as the policy version gave them: the timeline says whom staff told, in words.
        data = {"recipients": told, "names": [known[key] for key in told], "none_to_tell": none_to_tell,
                "note": note}
        key = f"{row['id']}:dispute_told:{once or uuid.uuid4()}"
        await append_event(conn, event_key=key, request_id=str(row["id"]), event_type=TOLD, actor=actor, data=data)
        kept = await conn.fetchval("SELECT data FROM audit_events WHERE event_key = $1", key)
    if kept != data:
        raise DisputeRefused(409, "This key was used already to record other recipients or another note on this "
                                  "request: that record is the one kept, this one was not.")
    return data
