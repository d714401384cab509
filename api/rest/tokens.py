"""Staff tokens over REST (admin): list, create (the token is shown once), revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.auth import Staff, require_role
from api.deps import Pool, State
from api.problems import Problem
from api.staff_writes import TOKEN_ROLE, NewToken
from dsrflow.stores.staff_tokens import LastAdmin, issue_token, list_tokens, revoke_token

router = APIRouter(prefix="/v1/tokens", tags=["staff tokens"])


class TokenView(BaseModel):
    id: str = Field(examples=["5c0e1d2a-7f3b-4c8e-9d1a-2b3c4d5e6f70"])
    role: str = Field(examples=["agent"])
    label: str | None = Field(examples=["Support desk, Ghent"])
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = Field(description="when it stops working; null: never (a token issued before "
                                                    "tokens expired, to replace)")


class CreatedToken(TokenView):
    token: str = Field(description="the bearer token; shown only in this response, stored only as a hash",
                       examples=["dsr_Jx8k2v9QmZr4tY6uWb1nC3eF5gH7iK0lM2oP4qR6sT8"])


class TokenList(BaseModel):
    tokens: list[TokenView]


@router.get("", response_model=TokenList)
async def index(
    staff: Annotated[Staff, require_role(TOKEN_ROLE)],
    pool: Pool,
    include_revoked: Annotated[bool, Query(description="list revoked tokens too")] = False,
) -> TokenList:
    rows = await list_tokens(pool, include_revoked=include_revoked)
    return TokenList(tokens=[TokenView(**row) for row in rows])


@router.post("", status_code=201, response_model=CreatedToken)
async def create(staff: Annotated[Staff, require_role(TOKEN_ROLE)], body: NewToken, pool: Pool,
                 state: State) -> CreatedToken:
    row, token = await issue_token(pool, body.role, body.label, actor=staff.actor,
                                     lifetime=body.lifetime(state.settings.token_days))
    return CreatedToken(**row, token=token)


@router.delete("/{token_id}", response_model=TokenView)
async def revoke(staff: Annotated[Staff, require_role(TOKEN_ROLE)], token_id: str, pool: Pool) -> TokenView:
    """Revoke a token at once; the console sessions signed in with it end too. The last admin
    token in force is not revoked here (409): create another first."""
    try:
        row = await revoke_token(pool, token_id, actor=staff.actor, keep_an_admin=True)
    except LastAdmin:
        raise Problem(409, "Last admin token",
                      f"token {token_id} is the last admin token in force: revoked, no one could manage staff "
                      "tokens over the API. Create another admin token first (POST /v1/tokens), or revoke "
                      "it on the server with dsrflow token revoke") from None
    if row is None:
        raise Problem(404, "Not found", f"no staff token {token_id}")
    return TokenView(**row)
