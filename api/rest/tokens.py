"""Staff tokens over REST (admin): list, create (the token is shown once, living no longer than
the token that creates it), revoke (with the tokens it created, if asked)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.auth import Staff, require_role
from api.deps import Pool, State
from api.problems import Problem
from api.staff_writes import TOKEN_ROLE, NewToken, last_admin_words, outlives_words
from dsrflow.stores.staff_tokens import (
    CreatorNotInForce,
    LastAdmin,
    OutlivesCreator,
    issue_token,
    list_tokens,
    revoke_token,
)

router = APIRouter(prefix="/v1/tokens", tags=["staff tokens"])


class TokenView(BaseModel):
    id: str = Field(examples=["5c0e1d2a-7f3b-4c8e-9d1a-2b3c4d5e6f70"])
    role: str = Field(examples=["agent"])
    label: str | None = Field(examples=["Support desk, Ghent"])
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = Field(description="when it stops working; null: never (a token issued before "
                                                    "tokens expired, to replace)")
    created_by: str | None = Field(None, description="the id of the token that created it; null: made at the server "
                                                     "(dsrflow token create), or before creators were recorded")


class CreatedToken(TokenView):
    token: str = Field(description="the bearer token; shown only in this response, stored only as a hash",
                       examples=["dsr_Jx8k2v9QmZr4tY6uWb1nC3eF5gH7iK0lM2oP4qR6sT8"])


class ListedToken(TokenView):
    descendants: int = Field(description="tokens not revoked that it created, they created, and so on: those "
                                         "DELETE ...?with_descendants=true revokes with it")


class TokenList(BaseModel):
    tokens: list[ListedToken]


class RevokedToken(TokenView):
    descendants_revoked: list[TokenView] = Field(description="the tokens revoked with it (with_descendants)")


@router.get("", response_model=TokenList)
async def index(
    staff: Annotated[Staff, require_role(TOKEN_ROLE)],
    pool: Pool,
    include_revoked: Annotated[bool, Query(description="list revoked tokens too")] = False,
) -> TokenList:
    rows = await list_tokens(pool, include_revoked=include_revoked)
    return TokenList(tokens=[ListedToken(**row) for row in rows])


@router.post("", status_code=201, response_model=CreatedToken)
async def create(staff: Annotated[Staff, require_role(TOKEN_ROLE)], body: NewToken, pool: Pool,
                 state: State) -> CreatedToken:
    """The new token lives no longer than the caller's: `expires_in_days` past its expiry is
    refused (422, saying when it expires); left out, DSRFLOW_TOKEN_DAYS or until then, the sooner."""
    try:
        row, token = await issue_token(pool, body.role, body.label, actor=staff.actor,
                                       lifetime=body.lifetime(state.settings.token_days), created_by=staff.token_id,
                                       asked=body.expires_in_days is not None)
    except OutlivesCreator as refused:
        words = outlives_words(refused)
        raise Problem(422, "Lifetime beyond the creator's", words,
                      errors=[{"field": "expires_in_days", "message": words}],
                      creator_expires_at=refused.expires_at.isoformat(), max_days=refused.days) from None
    except CreatorNotInForce:
        raise Problem(401, "Token not in force", "your token was revoked or expired meanwhile: nothing was "
                                                 "created") from None
    return CreatedToken(**row, token=token)


@router.delete("/{token_id}", response_model=RevokedToken)
async def revoke(
    staff: Annotated[Staff, require_role(TOKEN_ROLE)], token_id: str, pool: Pool,
    with_descendants: Annotated[bool, Query(description="revoke every token it created (they created, and so "
                                                        "on) with it, in one transaction")] = False,
) -> RevokedToken:
    """Revoke a token at once; the console sessions signed in with it end too. The last admin
    token in force is not revoked here (409, naming the admin tokens it would take): create
    another first."""
    try:
        row = await revoke_token(pool, token_id, actor=staff.actor, keep_an_admin=True,
                                 with_descendants=with_descendants)
    except LastAdmin as refused:
        raise Problem(409, "Last admin token",
                      last_admin_words(token_id, refused, with_descendants=with_descendants),
                      admin_tokens=refused.admins) from None
    if row is None:
        raise Problem(404, "Not found", f"no staff token {token_id}")
    return RevokedToken(**{**row, "descendants_revoked": [TokenView(**d) for d in row["descendants_revoked"]]})
