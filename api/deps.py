"""What routes need, as FastAPI dependencies: the shared resources (api/state.py), the policy in
force, the controller's today and the rate limiter. Routes declare them as parameters
(`state: State`, `pool: Pool`) instead of reaching into `request.app.state`; this module is the
one that reads it (api/app.py sets it).

Order matters: FastAPI resolves a route's dependencies in the order its parameters declare them
(those of the decorator's `dependencies=[...]` first). The staff dependency or the rate-limit
count comes first, so that a caller who is refused is refused before anything touches the
database. `State`, `PolicyInForce`, `Today` and `Limiter` connect to nothing; `Pool` connects on
first use. The workflow engine is reached through `State` (`await state.temporal()`) only when a
route gets that far, so that it answers what it can while the engine is down: 404 for a request
that does not exist, or 503 naming a request stored whose workflow could not start.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import Depends, Request

from api.ratelimit import RateLimiter
from api.state import AppState
from policy.model import LoadedPolicy


def app_state(request: Request) -> AppState:
    """The app's shared resources. Also called directly by the pages' template context
    (api/pages.py), which renders outside any route's dependencies too: the exception handlers'
    pages."""
    return request.app.state.dsr


# The dependencies below are coroutines though none awaits: FastAPI runs a plain function
# dependency in a worker thread, a thread hop on every call for a lookup of nanoseconds.
async def _app_state(request: Request) -> AppState:
    return app_state(request)


State = Annotated[AppState, Depends(_app_state)]


async def db_pool(state: State) -> asyncpg.Pool:
    return await state.db()


async def loaded_policy(state: State) -> LoadedPolicy:
    return state.policy


async def controller_today(state: State) -> date:
    """Today in the controller's timezone: the day a request's due date is judged against."""
    return datetime.now(ZoneInfo(state.policy.policy.defaults.timezone)).date()


async def rate_limiter(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


Pool = Annotated[asyncpg.Pool, Depends(db_pool)]
PolicyInForce = Annotated[LoadedPolicy, Depends(loaded_policy)]
Today = Annotated[date, Depends(controller_today)]
Limiter = Annotated[RateLimiter, Depends(rate_limiter)]


def counted(action: str) -> Any:
    """For a route's `dependencies=[counted("lookup")]`: one `action` from this client counted
    (api/ratelimit.py) before the route's parameters are resolved, so a client over its limit
    (429) is refused before anything is looked up."""

    async def count(request: Request, limiter: Limiter) -> None:
        await limiter.hit(request, action)

    return Depends(count)
