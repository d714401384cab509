"""Who is calling: staff by bearer token (API) or by console session cookie, with a role.

`require_role` serves the REST API: no credentials 401, a lower role 403. `require_console_role`
serves HTML pages: a visitor who is not signed in is sent to the sign-in page instead. A request
authenticated by the session cookie must carry the CSRF token when it changes anything; a bearer
token is never sent by a browser on its own, so bearer calls need none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.csrf import SAFE_METHODS, SESSION_COOKIE, csrf_valid, session_binding
from api.deps import State
from api.problems import Problem
from api.ratelimit import RateLimiter
from api.state import AppState
from dsrflow.stores.staff_tokens import (
    NotInForce,
    Staff,
    authenticate,
    create_token,
    session_staff,
)
from schemas.staff_tokens import ROLES

__all__ = ["ROLES", "Staff", "create_token", "require_console_role", "require_role", "staff_from_token",
           "ConsoleSignInRequired", "ConsoleForbidden", "StaffAnswersNotStored"]

SIGN_IN_PATH = "/console/sign-in"
CONSOLE_HOME = "/console/"


class ConsoleSignInRequired(Exception):
    """A console page was asked for without a live session: go to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.location = f"{SIGN_IN_PATH}?next={quote(next_path, safe='/')}"


class ConsoleForbidden(Exception):
    """A console page refused to a signed-in member of staff (role too low, or a stale form)."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title, self.detail = title, detail


def require_role(minimum: str, *, csrf: bool = True):
    """Dependency returning the calling Staff (bearer token or console session).

    `csrf=False` only for endpoints that change nothing even on POST and are called by a
    browser that cannot send our token (the Temporal UI's codec calls)."""
    return Depends(_staff_dependency(minimum, console=False, csrf=csrf))


def require_console_role(minimum: str):
    """Dependency for console pages returning the signed-in Staff; redirects to the sign-in page
    when there is no session and answers an HTML 403 page for a lower role."""
    return Depends(_staff_dependency(minimum, console=True, csrf=True))


def _staff_dependency(minimum: str, *, console: bool, csrf: bool):
    if minimum not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")

    def refuse(title: str, detail: str) -> Exception:
        return ConsoleForbidden(title, detail) if console else Problem(403, title, detail)

    async def dependency(request: Request, state: State) -> Staff:
        staff = await _identify(request, state, console=console)
        if csrf and request.method not in SAFE_METHODS and request.state.session_id:
            if not await csrf_valid(request, state.settings, session_binding(request.state.session_id)):
                raise refuse("CSRF check failed", "the form is missing its csrf_token or it is "
                             "stale; reload the page and try again")
        if not staff.has_role(minimum):
            raise refuse("Forbidden", f"this action needs the {minimum} role; you are {staff.role}")
        request.state.staff = staff
        return staff

    return dependency


async def staff_from_token(request: Request, state: State) -> Staff | None:
    """Dependency returning the staff member whose bearer token the request carries, None when it
    carries none (401 for a wrong one): for public endpoints that tell staff more than they tell
    anyone."""
    if not request.headers.get("authorization"):
        return None
    return await _identify(request, state, console=False)


async def _identify(request: Request, state: AppState, *, console: bool) -> Staff:
    pool = await state.db()
    request.state.session_id = None
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "Authentication required", "send Authorization: Bearer <token>")
        limiter: RateLimiter = request.app.state.rate_limiter
        await limiter.refuse_token_guesser(request)
        found = await authenticate(pool, token.strip())
        if isinstance(found, NotInForce):
            # An expired token is no guess either; its holder is told, to ask for a new one.
            if found.expired_at is not None:
                raise token_expired(found.expired_at)
            # A revoked token is answered alike but not counted: it is no guess, and a forgotten
            # script still sending the token a rotation replaced would otherwise lock its machine's
            # new token out with it.
            if not found.revoked:
                await limiter.count_wrong_token(request)
            raise Problem(401, "Authentication required", "the token is unknown or revoked")
        # A page fetched with a bearer token (a script saving the evidence pack, say) still
        # renders its forms; their CSRF token is bound to the token id, which no session accepts.
        request.state.csrf_binding = f"bearer:{found.token_id}"
        return found
    session_id = request.cookies.get(SESSION_COOKIE)
    # htmx's own GETs are the page polling its live parts: reading, not someone using it.
    used = not (request.method in SAFE_METHODS and request.headers.get("hx-request"))
    staff = await session_staff(pool, session_id, used=used) if session_id else None
    if staff is None:
        if console:
            # After signing in the browser comes back here with a GET: a form's target would
            # answer 405, so a refused POST returns to the console's start page.
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise ConsoleSignInRequired(path if request.method in SAFE_METHODS else CONSOLE_HOME)
        raise Problem(401, "Authentication required",
                      "send Authorization: Bearer <token>, or sign in to the console"
                      + (" again: the session has ended" if session_id else ""))
    request.state.session_id = session_id
    return staff


def token_expired(expired: datetime) -> Problem:
    """401 for a token past its expiry: when, and whom to ask."""
    return Problem(401, "Token expired",
                   f"the token expired on {expired.astimezone(UTC):%Y-%m-%d %H:%M} UTC; ask an admin for a new "
                   "one (the console's Tokens page, or dsrflow token create)",
                   expired_at=expired.astimezone(UTC).isoformat())


# What staff reach: every answer names subjects, staff or the state of their requests.
_STAFF_PATHS = ("/v1/", "/console/", "/codec/", "/metrics")
_NOT_STAFF = ("/v1/public/", "/v1/callbacks/")


class StaffAnswersNotStored:
    """`Cache-Control: no-store` on every answer of a staff route that does not say otherwise.

    The console's pages said so (api/pages.py), but the staff API's JSON did not: a request, its
    subject's address and name, its evidence pack or the token list fetched with the console's
    cookie (or through a caching proxy) could be kept in the browser's disk cache or the proxy's,
    for the next user of a shared machine. Problems (404, 403) and redirects too: they name ids."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(_STAFF_PATHS) or path.startswith(_NOT_STAFF):
            await self.app(scope, receive, send)
            return

        async def send_unstored(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_unstored)
