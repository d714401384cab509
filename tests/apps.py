"""The app a test serves, built once per process and shape and lent to each test with resources of
its own (docs/testing.md#how-the-suite-is-kept-fast).

FastAPI builds each route's dependency tree on an app's first requests, about 50 ms of CPU (a
few ms when a test's requests reach only the first routers): an app built per test paid it again
every time. What tells two built apps apart is `build_app`'s argument and whether tracing is on
(api/app.py); all the rest, settings with the test's task queue, policy, pool and engine, is the
resources `serve_with` gives it. A test gets an app no other block is using, with a new
`AppState` and rate limiter (and so fresh in-memory counts and caches); one it changed (a route,
a middleware, a dependency override added) is not lent again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI
from starlette.datastructures import State
from temporalio.client import Client

from api.app import build_app, serve_with
from api.state import AppState
from dsrflow.infra.production import codec_cors_origins
from dsrflow.infra.tracing import tracing_enabled
from dsrflow.settings import Settings
from policy.model import LoadedPolicy

# Built apps no block is using, by `build_app`'s argument.
_IDLE: dict[tuple[str, ...], list[FastAPI]] = {}


def _shape(app: FastAPI) -> tuple[int, int, int]:
    """What a test could add to an app: routes, middleware, exception handlers."""
    return len(app.router.routes), len(app.user_middleware), len(app.exception_handlers)


@contextlib.asynccontextmanager
async def lent_app(settings: Settings, *, temporal_client: Client | None = None,
                   policy: LoadedPolicy | None = None, pool: asyncpg.Pool | None = None) -> AsyncIterator[FastAPI]:
    """`create_app(settings, ...)`'s app for the block, its resources closed after it."""
    origins = tuple(codec_cors_origins(settings))
    # A traced app's spans go to the provider of its build: tests/test_tracing.py's own.
    idle = _IDLE.setdefault(origins, []) if not tracing_enabled() else []
    app = idle.pop() if idle else build_app(list(origins))
    built = _shape(app)
    serve_with(app, AppState(settings, temporal_client, policy, pool))
    try:
        yield app
    finally:
        state: AppState = app.state.dsr
        app.state = State()  # nothing of this block's left for the next
        if built == _shape(app) and not app.dependency_overrides and not tracing_enabled():
            idle.append(app)
        await state.close()
