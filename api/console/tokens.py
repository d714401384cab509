"""The console's "Tokens" page (admin): every staff token in force or expired, with its expiry
(those that expire within EXPIRES_SOON first, and flagged; those that never expire with a warning,
to replace), which of them were refused requests past their bound lately (api/staff_opens.py), and
the form that issues a new one, shown once on the page that answers it, and a Revoke button on
each row (as `DELETE /v1/tokens/{id}`: the last admin token in force is refused)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.auth import SIGN_IN_PATH, Staff, require_console_role
from api.deps import Pool, State
from api.forms import read_form
from api.pages import problem_pages, render
from api.problems import Problem
from api.staff_writes import TOKEN_ROLE, NewToken
from dsrflow.stores.staff_tokens import LastAdmin, issue_token, list_tokens, revoke_token, token_state
from schemas.staff_tokens import EXPIRES_SOON, LIMIT_EVENT, LONGEST_LIFETIME, ROLES

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))

PAGE = "/console/tokens"
# How far back the page shows a token's refusals past its bound of requests opened.
_LIMIT_HITS_SHOWN = timedelta(days=7)
_FIELDS = {"role": "role", "label": "label", "expires_in_days": "expires_in_days"}


async def _limit_hits(pool: asyncpg.Pool) -> dict[str, datetime]:
    """Each token's latest refusal past its bound of requests opened, within _LIMIT_HITS_SHOWN."""
    # The event's type written out, not a parameter: a generic plan could not use its partial
    # index (migration 0048), and would read the whole audit trail.
    rows = await pool.fetch(
        "SELECT data->>'token_id' AS token_id, max(occurred_at) AS at FROM audit_events "
        f"WHERE event_type = '{LIMIT_EVENT}' AND occurred_at > now() - $1::interval GROUP BY 1", _LIMIT_HITS_SHOWN)
    return {row["token_id"]: row["at"] for row in rows}


async def _page(request: Request, state: Any, pool: asyncpg.Pool, *, expiring: bool = False,
                status_code: int = 200, **context: Any) -> HTMLResponse:
    now = datetime.now(UTC)
    rows = [{**row, "state": token_state(row, now)} for row in await list_tokens(pool)]
    # Those expiring soon first (soonest first), then the rest as issued: what needs doing on top.
    rows.sort(key=lambda r: (0, r["expires_at"]) if r["state"] == "expires soon" else (1, now))
    soon = sum(1 for r in rows if r["state"] == "expires soon")
    if expiring:
        rows = [r for r in rows if r["state"] == "expires soon"]
    return render(request, "console/tokens.html", {
        "tokens": rows, "expiring": expiring, "soon": soon, "soon_days": EXPIRES_SOON.days,
        "limit_hits": await _limit_hits(pool), "roles": ROLES, "default_days": state.settings.token_days,
        "max_days": LONGEST_LIFETIME.days, "values": {"role": "agent", "expires_in_days": state.settings.token_days},
        "errors": {}, "created": None, "revoked": None, "refused": None, **context}, status_code=status_code)


@router.get("/tokens", response_class=HTMLResponse)
async def tokens_page(staff: Annotated[Staff, require_console_role(TOKEN_ROLE)], request: Request, state: State,
                      pool: Pool, expiring: Annotated[int | None, Query(ge=1, le=365)] = None) -> Response:
    """`?expiring=14`: only the tokens that expire within 14 days (the page's flag says how many)."""
    return await _page(request, state, pool, expiring=expiring is not None)


@router.post("/tokens", response_class=HTMLResponse)
async def create(staff: Annotated[Staff, require_console_role(TOKEN_ROLE)], request: Request, state: State,
                 pool: Pool) -> Response:
    """A new token, shown once on the page that answers (never in an address, never stored but as
    its hash); a form refused comes back with a message beside each field."""
    form = await read_form(request)
    values = {name: str(form.get(name, "")).strip() for name in _FIELDS}
    try:
        body = NewToken.model_validate({"role": values["role"], "label": values["label"] or None,
                                        "expires_in_days": values["expires_in_days"] or None})
    except ValidationError as exc:
        errors = {str(e["loc"][0]): _message(str(e["loc"][0]), e["msg"]) for e in exc.errors()}
        return await _page(request, state, pool, status_code=422, values=values, errors=errors)
    row, token = await issue_token(pool, body.role, body.label, actor=staff.actor,
                                     lifetime=body.lifetime(state.settings.token_days))
    return await _page(request, state, pool, created={**row, "token": token})


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke(staff: Annotated[Staff, require_console_role(TOKEN_ROLE)], token_id: str, request: Request,
                 state: State, pool: Pool) -> Response:
    """Revoke the token of a row: it opens nothing more, and its sessions end at once (a stolen
    token is taken away from the console, not only at the server). The last admin token in force
    is refused (409), as over REST. An admin who revokes their own token is signed out by it: the
    answer is the sign-in page."""
    try:
        row = await revoke_token(pool, token_id, actor=staff.actor, keep_an_admin=True)
    except LastAdmin:
        return await _page(request, state, pool, status_code=409, refused=token_id)
    if row is None:
        raise Problem(404, "Token not found", f"There is no staff token {token_id}.")
    if row["id"] == staff.token_id:
        return RedirectResponse(SIGN_IN_PATH, status_code=303)
    return await _page(request, state, pool, revoked=row)


def _message(field: str, message: str) -> str:
    if field == "expires_in_days":
        return f"Enter a whole number of days, 1 to {LONGEST_LIFETIME.days}."
    if field == "role":
        return f"Choose one of {', '.join(ROLES)}."
    return f"The label {message.removeprefix('Value error, ')}."
