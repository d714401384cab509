"""`GET /v1/requests/{id}/events`: a request's audit trail, oldest first, with its hashes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Staff, require_role
from api.deps import Pool
from api.problems import Problem
from api.read_models.cursors import decode_cursor, encode_cursor
from api.read_models.staff_reach import READABLE_BY, TIMELINE
from dsrflow.domain.audit import request_events
from dsrflow.stores.requests_store import get_request

router = APIRouter(prefix="/v1/requests", tags=["audit"])


class AuditEvent(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "seq": 1207, "event_key": "3f2a9c1e-8b7d-4e21-9a55-0c6d2b9e4f10:extended",
        "event_type": "deadline.extended", "actor": "compliance:5c0e1d2a",
        "data": {"from": "2026-12-21", "to": "2027-02-22", "reason": "Six systems and nine years of records"},
        "occurred_at": "2026-12-02T10:15:00.123456Z",
        "chain_id": "3f2a9c1e-8b7d-4e21-9a55-0c6d2b9e4f10", "chain_pos": 7,
        "prev_hash": "9b74c9897bac770ffc029102a200c5de0e4e1b5d8a8f9e7c3a2b1d0c9e8f7a6b",
        "hash": "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce"}]})

    seq: int = Field(description="order of appending across all chains (the cursor)")
    event_key: str = Field(description="unique key; part of what is hashed")
    event_type: str = Field(examples=["deadline.extended"])
    actor: str = Field(examples=["compliance:3f2a9c1e"])
    data: dict[str, Any]
    occurred_at: datetime
    chain_id: str = Field(description="the hash chain: the request's id, or `legacy` for events "
                          "written before per-request chains")
    chain_pos: int = Field(description="position in that chain, from 1")
    prev_hash: str = Field(description="hash of the chain's previous event (64 zeros for the first)")
    hash: str = Field(description="sha256 of prev_hash followed by the canonical JSON (sorted keys, "
                      "no spaces) of event_key, request_id, event_type, actor, data, occurred_at "
                      "(UTC, microseconds), chain_id and chain_pos (the last two not for `legacy`)")


class EventPage(BaseModel):
    request_id: str
    events: list[AuditEvent]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


@router.get("/{request_id}/events", response_model=EventPage)
async def events(
    staff: Annotated[Staff, require_role(READABLE_BY[TIMELINE])],
    request_id: str,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=500, description="events per page")] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
) -> EventPage:
    """The request's events, oldest first. Each request has its own hash chain, anchored
    periodically in the global anchor chain; `dsrflow audit verify` checks them all."""
    (after,) = decode_cursor(cursor, int) if cursor is not None else (0,)
    if await get_request(pool, request_id) is None:
        raise Problem(404, "Not found", f"no request {request_id}")
    rows = await request_events(pool, request_id, after_seq=after, limit=limit + 1)
    page = [AuditEvent(**row) for row in rows[:limit]]
    return EventPage(request_id=request_id, events=page,
                     next_cursor=encode_cursor(page[-1].seq) if len(rows) > limit else None)
