"""The console's "Tokens" page (admin): every staff token in force or expired, with its expiry
(those that expire within EXPIRES_SOON first, and flagged; those that never expire with a warning,
to replace), which of them were refused requests past their bound lately (api/staff_opens.py), and
the form that issues a new one (living no longer than the signed-in admin's token), shown once on
the page that answers it, and a Revoke button on each row (as `DELETE /v1/tokens/{id}`: the last
admin token in force is refused), with a second one for a token that created others, revoking them
with it."""

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
from api.staff_writes import TOKEN_ROLE, NewToken, outlives_words
from dsrflow.stores.staff_tokens import (
    CreatorNotInForce,
    LastAdmin,
    OutlivesCreator,
    days_within,
    issue_token,
    list_tokens,
    revoke_token,
    token_state,
)
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


async def _page(request: Request, state: Any, pool: asyncpg.Pool, staff: Staff, *, expiring: bool = False,
                status_code: int = 200, **context: Any) -> HTMLResponse:
    now = datetime.now(UTC)
    # A token created here lives no longer than the signed-in admin's: the form offers no more.
    max_days = days_within(staff.expires_at, now)
    default_days = min(state.settings.token_days, max_days)
    rows = [{**row, "state": token_state(row, now)} for row in await list_tokens(pool)]
    # Those expiring soon first (soonest first), then the rest as issued: what needs doing on top.
    rows.sort(key=lambda r: (0, r["expires_at"]) if r["state"] == "expires soon" else (1, now))
    soon = sum(1 for r in rows if r["state"] == "expires soon")
    if expiring:
        rows = [r for r in rows if r["state"] == "expires soon"]
    return render(request, "console/tokens.html", {
        "tokens": rows, "expiring": expiring, "soon": soon, "soon_days": EXPIRES_SOON.days,
        # The days filled in say what a token gets unless the admin chooses: never more than fit.
        "limit_hits": await _limit_hits(pool), "roles": ROLES, "default_days": default_days,
        "max_days": max_days, "own_expiry": staff.expires_at,
        "values": {"role": "agent", "expires_in_days": default_days},
        "errors": {}, "created": None, "revoked": None, "refused": None, "refused_admins": [],
        "refused_with": False, **context}, status_code=status_code)


@router.get("/tokens", response_class=HTMLResponse)
async def tokens_page(staff: Annotated[Staff, require_console_role(TOKEN_ROLE)], request: Request, state: State,
                      pool: Pool, expiring: Annotated[int | None, Query(ge=1, le=365)] = None) -> Response:
    """`?expiring=14`: only the tokens that expire within 14 days (the page's flag says how many)."""
    return await _page(request, state, pool, staff, expiring=expiring is not None)


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
        return await _page(request, state, pool, staff, status_code=422, values=values, errors=errors)
    try:
        row, token = await issue_token(pool, body.role, body.label, actor=staff.actor,
                                       lifetime=body.lifetime(state.settings.token_days), created_by=staff.token_id,
                                       asked=body.expires_in_days is not None)
    except OutlivesCreator as refused:
        words = outlives_words(refused)
        return await _page(request, state, pool, staff, status_code=422, values=values,
                           errors={"expires_in_days": f"{words[0].upper()}{words[1:]}."})
    except CreatorNotInForce:  # revoked while this was sent: the next page is the sign-in
        return RedirectResponse(SIGN_IN_PATH, status_code=303)
    return await _page(request, state, pool, staff, created={**row, "token": token})


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke(staff: Annotated[Staff, require_console_role(TOKEN_ROLE)], token_id: str, request: Request,
                 state: State, pool: Pool) -> Response:
    """Revoke the token of a row: it opens nothing more, and its sessions end at once (a stolen
    token is taken away from the console, not only at the server). The last admin token in force
    is refused (409), as over REST. An admin who revokes their own token is signed out by it: the
    answer is the sign-in page. `descendants=yes` (the row's second button): the tokens it created,
    they created and so on go with it."""
    with_descendants = (await read_form(request)).get("descendants") == "yes"
    try:
        row = await revoke_token(pool, token_id, actor=staff.actor, keep_an_admin=True,
                                 with_descendants=with_descendants)
    except LastAdmin as refused:
        return await _page(request, state, pool, staff, status_code=409, refused=token_id,
                           refused_admins=refused.admins, refused_with=with_descendants)
    if row is None:
        raise Problem(404, "Token not found", f"There is no staff token {token_id}.")
    if staff.token_id in {row["id"], *(d["id"] for d in row["descendants_revoked"])}:
        return RedirectResponse(SIGN_IN_PATH, status_code=303)
    return await _page(request, state, pool, staff, revoked=row)


def _message(field: str, message: str) -> str:
    if field == "expires_in_days":
        return f"Enter a whole number of days, 1 to {LONGEST_LIFETIME.days}."
    if field == "role":
        return f"Choose one of {', '.join(ROLES)}."
    return f"The label {message.removeprefix('Value error, ')}."
