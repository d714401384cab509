"""The FastAPI application: REST under /v1, health, the Temporal UI codec endpoint."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from temporalio.client import Client

from api import (
    callbacks,
    codec,
    console,
    console_request,
    dashboard,
    events,
    evidence,
    health,
    home,
    legal_holds,
    listing,
    manual_confirm,
    outages,
    portal,
    problems,
    public,
    requests,
    restrictions,
    session,
    suppressions,
    tokens,
)
from api.body_limits import BodyLimitMiddleware
from api.ratelimit import RateLimiter
from api.state import AppState
from dsrflow.production import codec_cors_origins
from dsrflow.settings import Settings


def create_app(settings: Settings, *, temporal_client: Client | None = None) -> FastAPI:
    """The app; tests pass the client of their Temporal test environment."""
    state = AppState(settings, temporal_client)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await state.close()

    app = FastAPI(
        title="dsrflow",
        summary="Data-subject requests run to their statutory deadline, with evidence.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.dsr = state
    app.state.rate_limiter = RateLimiter()
    # The Temporal Web UI calls the codec endpoint from the browser, on another origin.
    app.add_middleware(codec.CodecCORSMiddleware, origins=codec_cors_origins(settings))
    # Added last, so outermost: no body reaches a route (or the CORS layer) uncapped.
    app.add_middleware(BodyLimitMiddleware)
    problems.install(app)
    outages.install(app)
    session.install(app)
    app.include_router(home.router)
    app.include_router(health.router)
    app.include_router(codec.router)
    app.include_router(listing.router)
    app.include_router(requests.router)
    app.include_router(events.router)
    app.include_router(tokens.router)
    app.include_router(public.router)
    app.include_router(callbacks.router)
    app.include_router(manual_confirm.router)
    app.include_router(suppressions.router)
    app.include_router(legal_holds.router)
    app.include_router(restrictions.router)
    app.include_router(portal.router)
    app.include_router(evidence.router)
    app.include_router(console.router)  # before console_request: /console/requests/new is no request id
    app.include_router(console_request.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")
    return app
