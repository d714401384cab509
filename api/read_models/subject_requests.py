"""The subject's other requests, for the request page: those whose subject has the same e-mail
address or customer number, found through the keyed hashes of migrations/0025 (the indexes that
serve the queue's search serve this too)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import asyncpg
from pydantic import BaseModel

from dsrflow.stores.request_lookup import lookup_keys
from schemas.requests import RequestStatus, RequestType

LIMIT = 50  # the most recent; the queue's search lists them all


class OtherRequest(BaseModel):
    id: str
    type: RequestType
    regime: str  # its type is named as its law names it (`kind_word`)
    status: RequestStatus
    received_at: datetime
    current_due_date: date | None
    closed_at: datetime | None
    matched_by: str  # "e-mail", "customer number" or both


async def other_requests(pool: asyncpg.Pool | asyncpg.Connection, request_id: str, email: str,
                         customer_id: str | None, secret: bytes) -> list[OtherRequest]:
    """The most recent requests other than `request_id` of the subject with these identities,
    newest first."""
    email_key, customer_key = lookup_keys(secret, email, customer_id)
    rows = await pool.fetch(
        """SELECT id, request_type, regime, status, received_at, current_due_date, closed_at,
                  subject_email_key = $2 AS by_email, coalesce(customer_id_key = $3, false) AS by_customer
           FROM dsr_requests
           WHERE id <> $1 AND (subject_email_key = $2 OR customer_id_key = $3)
           ORDER BY received_at DESC, id LIMIT $4""",
        uuid.UUID(request_id), email_key, customer_key, LIMIT)
    return [OtherRequest(
        id=str(r["id"]), type=RequestType(r["request_type"]), regime=r["regime"], status=RequestStatus(r["status"]),
        received_at=r["received_at"], current_due_date=r["current_due_date"], closed_at=r["closed_at"],
        matched_by=" and ".join(m for m, hit in (("e-mail", r["by_email"]), ("customer number", r["by_customer"]))
                                if hit),
    ) for r in rows]
