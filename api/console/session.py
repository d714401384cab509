"""Console sign-in and sign-out with a staff token; the session lives server-side in Postgres.

The cookie is HttpOnly and SameSite=Strict (Secure over https) and holds a random session id;
only its sha256 is stored. Revoking the token ends its sessions. See api/csrf.py for the forms'
CSRF tokens and api/auth.py for the dependencies that read the session.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import (
    CONSOLE_HOME,
    SIGN_IN_PATH,
    ConsoleForbidden,
    ConsoleSignInRequired,
    Staff,
    StaffAnswersNotStored,
    require_console_role,
)
from api.csrf import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    cookie_secure,
    csrf_token,
    csrf_valid,
    sign_in_binding,
)
from api.deps import Limiter, Pool, State
from api.pages import render
from api.problems import Problem
from dsrflow.settings import Settings
from dsrflow.stores.staff_tokens import (
    SESSION_IDLE,
    SESSION_LIFETIME,
    NotInForce,
    authenticate,
    end_session,
    session_staff,
    start_session,
)

__all__ = ["csrf_token", "install", "router"]

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)
_SIGN_IN_MAX_AGE = 3600


def _safe_next(value: str | None) -> str:
    """Only a path on this site: `next` must not send a fresh session to another host."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value and len(value) < 2000:
        return value
    return CONSOLE_HOME


def _sign_in_page(request: Request, settings: Settings, next_path: str, *, error: str | None = None,
                  status_code: int = 200) -> HTMLResponse:
    nonce = secrets.token_urlsafe(24)
    request.state.csrf_binding = sign_in_binding(nonce)
    response = render(request, "console/sign_in.html",
                      {"next": next_path, "error": error, "hours": int(SESSION_LIFETIME.total_seconds() // 3600),
                       "idle_minutes": int(SESSION_IDLE.total_seconds() // 60)},
                      status_code=status_code)
    response.set_cookie(SIGN_IN_COOKIE, nonce, max_age=_SIGN_IN_MAX_AGE, path=SIGN_IN_PATH,
                        httponly=True, samesite="strict", secure=cookie_secure(request, settings))
    return response


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_form(request: Request, state: State, next: Annotated[str | None, Query()] = None) -> Response:
    next_path = _safe_next(next)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id and await session_staff(await state.db(), session_id):
        return RedirectResponse(next_path, status_code=303)
    return _sign_in_page(request, state.settings, next_path)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(
    request: Request,
    state: State,
    limiter: Limiter,
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str | None, Form()] = None,
) -> Response:
    next_path = _safe_next(next)
    try:
        # Before the token is looked up: guessing tokens costs a client its allowance first.
        await limiter.hit(request, "signin")
    except Problem as refused:
        page = _sign_in_page(request, state.settings, next_path, status_code=429, error=refused.detail)
        page.headers["Retry-After"] = str(refused.extra["retry_after"])
        return page
    nonce = request.cookies.get(SIGN_IN_COOKIE)
    if not nonce or not await csrf_valid(request, state.settings, sign_in_binding(nonce)):
        return _sign_in_page(request, state.settings, next_path, status_code=403,
                             error="This sign-in form has expired. Please enter your token again.")
    pool = await state.db()
    staff = await authenticate(pool, token.strip()) if token.strip() else NotInForce()
    if isinstance(staff, NotInForce):
        expired = staff.expired_at
        return _sign_in_page(request, state.settings, next_path, status_code=401, error=(
            f"That token expired on {expired.astimezone(UTC):%Y-%m-%d %H:%M} UTC: ask an admin for a new one."
            if expired else "That token is unknown or has been revoked."))
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        await end_session(pool, previous)
    session_id, ends = await start_session(pool, staff)  # at the token's expiry at the latest
    response = RedirectResponse(next_path, status_code=303)
    lasts = max(int((ends - datetime.now(UTC)).total_seconds()), 1)
    response.set_cookie(SESSION_COOKIE, session_id, max_age=lasts, path="/",
                        httponly=True, samesite="strict", secure=cookie_secure(request, state.settings))
    response.delete_cookie(SIGN_IN_COOKIE, path=SIGN_IN_PATH)
    return response


@router.post("/sign-out")
async def sign_out(staff: Annotated[Staff, require_console_role("agent")], request: Request, state: State,
                   pool: Pool) -> Response:
    if request.state.session_id:
        await end_session(pool, request.state.session_id)
    response = RedirectResponse(SIGN_IN_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=cookie_secure(request, state.settings))
    return response


def install(app: FastAPI) -> None:
    """The sign-in routes, the console's answers to a missing session or a refusal, and no staff
    answer (console or API) kept by a browser's or a proxy's cache."""
    app.add_middleware(StaffAnswersNotStored)
    app.include_router(router)

    @app.exception_handler(ConsoleSignInRequired)
    async def _sign_in_required(request: Request, exc: ConsoleSignInRequired) -> Response:
        if request.headers.get("hx-request"):
            # htmx follows HX-Redirect with a full page load instead of swapping in a redirect.
            return Response(status_code=401, headers={"HX-Redirect": exc.location})
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(ConsoleForbidden)
    async def _forbidden(request: Request, exc: ConsoleForbidden) -> Response:
        # A form refused on a request's page (a stale CSRF token, a role's forged action) leads back
        # to that request too: "reload the page and try again" is about the page it came from.
        on_request = _REQUEST_FORM.match(request.url.path) if request.method == "POST" else None
        return render(request, "console/refused.html", {
            "title": exc.title, "detail": exc.detail,
            "request_page": f"/console/requests/{on_request.group(1)}" if on_request else None}, status_code=403)


_REQUEST_FORM = re.compile(r"^/console/requests/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/")
