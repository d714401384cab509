"""Suppression checks for importers: before (re-)importing contacts into a marketing system, ask
which addresses objected to direct marketing. Only keyed hashes are stored and compared."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.auth import Staff, require_role
from api.deps import Pool, State
from dsrflow.crypto.hashing import suppression_hash
from dsrflow.crypto.keys import load_secret_key

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
