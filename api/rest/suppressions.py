"""Suppression checks for importers: before (re-)importing contacts into a marketing system, ask
which addresses objected to direct marketing. Only keyed hashes are stored and compared. And the
way back: a subject who objected and later consents to marketing again is taken off the list by
compliance, on record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.auth import Staff, require_role
from api.deps import Pool, State
from api.problems import Problem
from dsrflow.crypto.hashing import suppression_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.infra.writes import Write
from schemas.plain_text import StaffText

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"])


class CheckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emails: list[EmailStr] = Field(min_length=1, max_length=1000)


@router.post("/check")
async def check(staff: Annotated[Staff, require_role("agent")], body: CheckBody, state: State, pool: Pool) -> dict:
    """Which of these addresses must not receive direct marketing (Art. 21(3) GDPR)."""
    secret = load_secret_key(state.settings)
    hashes = {suppression_hash(secret, str(e)): str(e) for e in body.emails}
    rows = await pool.fetch(
        "SELECT identifier_hash FROM suppressions WHERE scope = 'direct_marketing' AND identifier_hash = ANY($1)",
        list(hashes),
    )
    return {"suppressed": sorted(hashes[r["identifier_hash"]] for r in rows)}


class LiftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    consent: StaffText = Field(min_length=10, max_length=2000, description=(
        "how and when the subject consented to direct marketing again: kept in the audit trail"),
        examples=["Subscribed again through the newsletter form on 3 December 2026 (double opt-in confirmed)"])


@router.post("/lift", responses={404: {"description": "The address is not on the list"}})
async def lift(staff: Annotated[Staff, require_role("compliance")], body: LiftBody, state: State,
               pool: Pool) -> dict:
    """Take an address off the direct-marketing list: the subject who objected (Art. 21(3) GDPR)
    has consented to marketing again (Art. 6(1)(a)). Audited as `suppression.lifted`, with the
    consent as staff describe it, in the trail of the objection that put it there. Without this,
    an address stayed refused for good, whatever the subject asked for later."""
    identifier = suppression_hash(load_secret_key(state.settings), str(body.email))
    row = await pool.fetchrow("SELECT request_id, created_at FROM suppressions "
                              "WHERE identifier_hash = $1 AND scope = 'direct_marketing'", identifier)
    if row is None:
        raise Problem(404, "Not suppressed", "this address is not on the direct-marketing suppression list")
    request_id = str(row["request_id"]) if row["request_id"] else None
    # One event per suppression (a later objection puts the address back under its own request),
    # and the row's removal with it: two lifts at once record one.
    async with pool.acquire() as conn:
        await append_event(
            conn, event_key=f"suppression:{request_id}:{row['created_at'].timestamp()}:lifted",
            event_type="suppression.lifted", actor=staff.actor, request_id=request_id,
            data={"scope": "direct_marketing", "consent": body.consent},
            along=[Write("DELETE FROM suppressions WHERE identifier_hash = $1 AND scope = 'direct_marketing'",
                         (identifier,))])
    return {"lifted": True, "objection_request": request_id}
