"""What routes need, as FastAPI dependencies: the shared resources (api/state.py), the policy in
force, the controller's today and the rate limiter. Routes declare them as parameters
(`pool: Pool`, `temporal: Temporal`) instead of reaching into `request.app.state`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import Depends, Request
from temporalio.client import Client

from api.ratelimit import RateLimiter
from api.state import AppState
from policy.model import LoadedPolicy


def app_state(request: Request) -> AppState:
    return request.app.state.dsr


State = Annotated[AppState, Depends(app_state)]


async def db_pool(state: State) -> asyncpg.Pool:
    return await state.db()


async def temporal_client(state: State) -> Client:
    return await state.temporal()


def loaded_policy(state: State) -> LoadedPolicy:
    return state.policy


def controller_today(state: State) -> date:
    """Today in the controller's timezone: the day a request's due date is judged against."""
    return datetime.now(ZoneInfo(state.policy.policy.defaults.timezone)).date()


def rate_limiter(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


Pool = Annotated[asyncpg.Pool, Depends(db_pool)]
Temporal = Annotated[Client, Depends(temporal_client)]
PolicyInForce = Annotated[LoadedPolicy, Depends(loaded_policy)]
Today = Annotated[date, Depends(controller_today)]
Limiter = Annotated[RateLimiter, Depends(rate_limiter)]
