"""`GET /healthz`: each component answers within a short timeout, or the service is unhealthy."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from collections.abc import Awaitable, Callable

import aiosmtplib
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.outages import CONNECTION_ERRORS, unavailable_component
from api.ratelimit import limiter
from api.state import AppState

router = APIRouter()
_TIMEOUT = 3.0


async def _postgres(state: AppState) -> None:
    pool = await state.db()
    await pool.fetchval("SELECT 1")


async def _temporal(state: AppState) -> None:
    client = await state.temporal()
    await client.service_client.check_health(timeout=timedelta(seconds=_TIMEOUT))


async def _smtp(state: AppState) -> None:
    s = state.settings
    smtp = aiosmtplib.SMTP(hostname=s.effective_smtp_host, port=s.smtp_port, timeout=_TIMEOUT, start_tls=False)
    await smtp.connect()
    await smtp.noop()
    await smtp.quit()


CHECKS: dict[str, Callable[[AppState], Awaitable[None]]] = {
    "postgres": _postgres,
    "temporal": _temporal,
    "smtp": _smtp,
}


async def _run(name: str, state: AppState) -> tuple[str, str]:
    try:
        await asyncio.wait_for(CHECKS[name](state), _TIMEOUT + 1)
        return name, "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means the component is down
        return name, f"unavailable: {type(exc).__name__}: {exc}"[:300]


async def _count(request: Request) -> None:
    """Each call probes every component: a client calling in a loop is refused (429) first. The
    counters live in the database health may be reporting down: then health answers unlimited."""
    try:
        await asyncio.wait_for(limiter(request).hit(request, "health"), _TIMEOUT)
    except (*CONNECTION_ERRORS, TimeoutError) as exc:
        if not isinstance(exc, TimeoutError) and unavailable_component(exc) is None:
            raise


@router.get("/healthz", tags=["health"])
async def healthz(request: Request) -> JSONResponse:
    state: AppState = request.app.state.dsr
    await _count(request)
    results = dict(await asyncio.gather(*(_run(name, state) for name in CHECKS)))
    failing = [name for name, status in results.items() if status != "ok"]
    body = {"status": "ok" if not failing else "unavailable", "components": results}
    if failing:
        body["failing"] = failing
    return JSONResponse(body, status_code=503 if failing else 200)
