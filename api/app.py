"""The FastAPI application: REST under /v1, health, the Temporal UI codec endpoint."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from temporalio.client import Client

from api import api_docs, callbacks, console, missing_pages, outages, problems, public, rest
from api.body_limits import BodyLimitMiddleware
from api.console import session
from api.ratelimit import RateLimiter
from api.request_ids import CanonicalRequestIds
from api.rest import codec_endpoint
from api.state import AppState
from dsrflow.infra.production import codec_cors_origins
from dsrflow.infra.tracing import instrument_app
from dsrflow.settings import Settings
from policy.model import LoadedPolicy


def create_app(settings: Settings, *, temporal_client: Client | None = None,
               policy: LoadedPolicy | None = None, pool: asyncpg.Pool | None = None) -> FastAPI:
    """The app; tests pass the client of their Temporal test environment, and may pass a pool of
    their own on the settings' database (not closed with the app). `policy`: the policy file in
    force as `dsrflow api` read it already (read here otherwise)."""
    app = build_app(codec_cors_origins(settings))
    serve_with(app, AppState(settings, temporal_client, policy, pool))
    return app


def build_app(codec_origins: list[str]) -> FastAPI:
    """Everything of the app but the resources it serves with (`serve_with`): its routes,
    middleware and error pages, which read settings, policy, pool and engine only from those at
    each request (api/deps.py). So the one argument here (and whether tracing is on) is all that
    tells two built apps apart, and one built app can serve with other resources: FastAPI builds
    each route's dependency tree on an app's first requests (about 50 ms of CPU), which the tests,
    building an app per test, paid again each time (tests/apps.py)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await app.state.dsr.close()

    app = FastAPI(
        title="dsrflow",
        summary="Data-subject requests run to their statutory deadline, with evidence.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # api/api_docs.py serves it without a CDN
        redoc_url=None,
    )
    # The Temporal Web UI calls the codec endpoint from the browser, on another origin.
    app.add_middleware(codec_endpoint.CodecCORSMiddleware, origins=codec_origins)
    app.add_middleware(CanonicalRequestIds)
    # Added last, so outermost: no body reaches a route (or the CORS layer) uncapped.
    app.add_middleware(BodyLimitMiddleware)
    problems.install(app)
    missing_pages.install(app)
    outages.install(app)
    session.install(app)
    app.include_router(public.router)
    app.include_router(rest.router)
    app.include_router(callbacks.router)
    app.include_router(console.router)
    api_docs.install(app)
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")
    instrument_app(app)  # server spans, when tracing is on (docs/observability.md)
    return app


def serve_with(app: FastAPI, state: AppState) -> None:
    """The resources `app` serves with from now on, and a rate limiter of their own: it keeps in
    memory who sent wrong tokens (api/ratelimit.py), which belongs to these resources' process."""
    app.state.dsr = state
    app.state.rate_limiter = RateLimiter(state)
