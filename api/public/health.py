"""`GET /healthz`: each component answers within a short timeout, or the service is unhealthy.

Anyone may ask whether the service is up (load balancers, uptime monitors): they get `ok` or
`unavailable` and nothing else. Which component fails, and why (host names, driver errors), is
for staff only: a bearer token of any staff role adds the details. The SMTP probe opens a
session with the relay, so its result is kept for `_SMTP_TTL` seconds: polling /healthz cannot
be turned into a stream of connections to the mail relay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated
from weakref import WeakKeyDictionary

import aiosmtplib
import asyncpg
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from activities.mail import relay_options
from api.auth import Staff, staff_from_token
from api.deps import Limiter, State
from api.outages import CONNECTION_ERRORS, unavailable_component
from api.ratelimit import RateLimiter
from api.state import AppState
from dsrflow.infra.migrate import not_migrated, pending_migrations

router = APIRouter()
_TIMEOUT = 3.0
_SMTP_TTL = 30.0


async def _postgres(state: AppState) -> None:
    pool = await state.db()
    if pending := await pending_migrations(pool):  # answering, but without this version's tables
        raise RuntimeError(not_migrated(pending))


async def _temporal(state: AppState) -> None:
    client = await state.temporal()
    await client.service_client.check_health(timeout=timedelta(seconds=_TIMEOUT))


async def _smtp_session(state: AppState) -> None:
    smtp = aiosmtplib.SMTP(**relay_options(state.settings), timeout=_TIMEOUT)
    await smtp.connect()
    await smtp.noop()
    await smtp.quit()


class CachedProbe:
    """One probe's last outcome, reused while fresh; concurrent callers share one probe."""

    def __init__(self, probe: Callable[[AppState], Awaitable[None]], ttl: float) -> None:
        self.probe, self.ttl = probe, ttl
        self._lock = asyncio.Lock()
        self._at = -ttl
        self._error: Exception | None = None

    async def __call__(self, state: AppState) -> None:
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                try:
                    await asyncio.wait_for(self.probe(state), _TIMEOUT + 1)
                    self._error = None
                except Exception as exc:  # noqa: BLE001 - kept and re-raised to every caller
                    self._error = exc
                self._at = time.monotonic()
        if self._error is not None:
            raise self._error


# One SMTP cache per app, since each app has its own relay; it goes with the app's state.
_SMTP_PROBES: WeakKeyDictionary[AppState, CachedProbe] = WeakKeyDictionary()


def _checks(state: AppState) -> dict[str, Callable[[AppState], Awaitable[None]]]:
    smtp = _SMTP_PROBES.get(state)
    if smtp is None:
        smtp = _SMTP_PROBES[state] = CachedProbe(_smtp_session, _SMTP_TTL)
    return {"postgres": _postgres, "temporal": _temporal, "smtp": smtp}


async def _run(name: str, check: Callable[[AppState], Awaitable[None]], state: AppState) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check(state), _TIMEOUT + 1)
        return name, "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means the component is down
        return name, f"unavailable: {type(exc).__name__}: {exc}"[:300]


async def _count(request: Request, limiter: RateLimiter) -> None:
    """Each call probes every component: a client calling in a loop is refused (429) first. The
    counters live in the database health may be reporting down: then health answers unlimited."""
    try:
        await asyncio.wait_for(limiter.hit(request, "health"), _TIMEOUT)
    except asyncpg.UndefinedTableError:
        pass  # a database not migrated yet: health says so (`_postgres`) rather than a 500
    except CONNECTION_ERRORS + (TimeoutError,) as exc:
        if not isinstance(exc, TimeoutError) and unavailable_component(exc) is None:
            raise


@router.get("/healthz", tags=["health"])
async def healthz(
    # First: a wrong token is 401 whatever the health.
    staff: Annotated[Staff | None, Depends(staff_from_token)], request: Request, state: State, limiter: Limiter,
) -> JSONResponse:
    """`ok` (200) or `unavailable` (503). With a staff bearer token: each component's state."""
    await _count(request, limiter)
    results = dict(await asyncio.gather(*(_run(name, check, state) for name, check in _checks(state).items())))
    failing = [name for name, status in results.items() if status != "ok"]
    body: dict = {"status": "ok" if not failing else "unavailable"}
    if staff is not None:
        body["components"] = results
        if failing:
            body["failing"] = failing
    return JSONResponse(body, status_code=503 if failing else 200)
