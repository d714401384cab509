"""Answers while a component the API needs is down: 503 with `Retry-After`, naming the component
(`database`, `workflow engine`), instead of a bare 500. Endpoints do not catch these errors: one
handler in the app turns every connection-class error into this answer (problem+json for an API
client; a page saying to try again shortly for a browser or a console page's htmx), and lets
anything else through as the bug it is.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import asyncpg
import temporalio
from fastapi import FastAPI, Request
from fastapi.responses import Response
from temporalio.service import RPCError, RPCStatusCode

from api.pages import prefers_html, render
from api.problems import Problem, problem_response
from dsrflow.infra.logging import get_logger

log = get_logger("dsrflow.api.outages")

RETRY_AFTER = 5  # seconds: a restart of either component takes about that long
DATABASE, WORKFLOW_ENGINE = "database", "workflow engine"

# PostgreSQL refusing or dropping connections (class 08; shutting down or starting up; full).
_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
# The types to hand to `unavailable_component`: it decides which of them are an outage.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (*_DATABASE_ERRORS, asyncpg.InterfaceError, asyncpg.InternalClientError,
                                                   RPCError, OSError, RuntimeError)
_LIBRARIES = {Path(asyncpg.__file__).parent: DATABASE, Path(temporalio.__file__).parent: WORKFLOW_ENGINE}


def _raised_in(exc: BaseException) -> str | None:
    """The component whose client library raised `exc` (its innermost frame in one)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        for library, component in _LIBRARIES.items():
            if Path(frame.filename).is_relative_to(library):
                return component
    return None


def unavailable_component(exc: BaseException) -> str | None:
    """The component `exc` says is unreachable, or None when it is no outage (a bug, bad input)."""
    if isinstance(exc, _DATABASE_ERRORS):
        return DATABASE
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return DATABASE  # a pooled connection the server dropped (restart), met on its next use
    if isinstance(exc, asyncpg.InternalClientError):
        # How asyncpg reports a connection whose server vanished in mid-protocol; seen when a
        # restart terminates the backend under a query.
        return DATABASE
    if isinstance(exc, RPCError):
        # The client has retried UNAVAILABLE for a while before giving up; DEADLINE_EXCEEDED is an
        # engine that took the connection but did not answer in time (restarting, overloaded).
        return WORKFLOW_ENGINE if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED) else None
    if isinstance(exc, OSError):
        # Refused or reset connections and timeouts (a pool's acquire, a connect): whose?
        return _raised_in(exc)
    if isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect"):
        return _raised_in(exc)  # the Temporal client's own words for a server it cannot reach
    return None


def route_of(request: Request) -> str:
    """The route template the request matched (`/v1/public/packages/{token}`), for a log line:
    a path can carry a link's secret. A path no route matched is logged as it is (the redactor
    masks a link's token anywhere, dsrflow/infra/logging.py)."""
    template = getattr(request.scope.get("route"), "path", None)
    return template if isinstance(template, str) else request.url.path


def outage_problem(component: str) -> Problem:
    return Problem(503, "Service briefly unavailable",
                   f"The {component} is not answering at the moment; try again in {RETRY_AFTER} seconds.",
                   component=component, retry_after=RETRY_AFTER)


def install(app: FastAPI) -> None:
    async def _unavailable(request: Request, exc: Exception) -> Response:
        component = unavailable_component(exc)
        if component is None:
            raise exc
        log.warning("component unavailable", component=component, path=route_of(request),
                    error=f"{type(exc).__name__}: {exc}"[:300])
        problem = outage_problem(component)
        if request.headers.get("hx-request") or prefers_html(request.headers.get("accept")):
            return render(request, "unavailable.html", {"problem": problem}, status_code=503,
                          headers={"Retry-After": str(RETRY_AFTER)})
        return problem_response(problem.status, problem.title, problem.detail, **problem.extra)

    for error in CONNECTION_ERRORS:
        app.add_exception_handler(error, _unavailable)
