"""Staff tokens over REST (admin): list, create (the token is shown once), revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Staff, require_role
from api.deps import Pool
from api.problems import Problem
from dsrflow.stores.staff_tokens import LastAdmin, issue_token, list_tokens, revoke_token
from schemas.plain_text import StaffLine

router = APIRouter(prefix="/v1/tokens", tags=["staff tokens"])


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"role": "agent", "label": "Support desk, Ghent"}]})
    role: Literal["agent", "compliance", "admin"]
    label: StaffLine | None = Field(None, min_length=1, max_length=200,
                                     description="who or what the token is for: one line, shown with the "
                                                 "token's role wherever its holder acted")


class TokenView(BaseModel):
    id: str = Field(examples=["5c0e1d2a-7f3b-4c8e-9d1a-2b3c4d5e6f70"])
    role: str = Field(examples=["agent"])
    label: str | None = Field(examples=["Support desk, Ghent"])
    created_at: datetime
    revoked_at: datetime | None


class CreatedToken(TokenView):
    token: str = Field(description="the bearer token; shown only in this response, stored only as a hash",
                       examples=["dsr_Jx8k2v9QmZr4tY6uWb1nC3eF5gH7iK0lM2oP4qR6sT8"])


class TokenList(BaseModel):
    tokens: list[TokenView]


@router.get("", response_model=TokenList)
async def index(
    staff: Annotated[Staff, require_role("admin")],
    pool: Pool,
    include_revoked: Annotated[bool, Query(description="list revoked tokens too")] = False,
) -> TokenList:
    rows = await list_tokens(pool, include_revoked=include_revoked)
    return TokenList(tokens=[TokenView(**row) for row in rows])


@router.post("", status_code=201, response_model=CreatedToken)
async def create(staff: Annotated[Staff, require_role("admin")], body: NewToken, pool: Pool) -> CreatedToken:
    row, token = await issue_token(pool, body.role, body.label, actor=staff.actor)
    return CreatedToken(**row, token=token)


@router.delete("/{token_id}", response_model=TokenView)
async def revoke(staff: Annotated[Staff, require_role("admin")], token_id: str, pool: Pool) -> TokenView:
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
