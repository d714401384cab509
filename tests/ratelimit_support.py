"""What the rate-limit tests share: a client address of their own, the real app with chosen
limits, and the check of a 429 (tests/test_ratelimit.py, tests/test_ratelimit_staff.py)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable

import httpx

from tests.apps import lent_app
from tests.pools import session_pool_on

PROBLEM = "application/problem+json"


def unique_ip() -> str:
    # Each test calls from its own documentation-range addresses: the counters are shared by the
    # whole session's database, like they are by every API process in production.
    return f"198.51.{random.randrange(256)}.{random.randrange(1, 255)}"


@contextlib.asynccontextmanager
async def app_clients(settings, client, task_queue, **limits) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """The real app with the given limits; `call_from(ip)` is an HTTP client for that address, and
    `call_from.app` the app (what a process keeps in memory)."""
    opened: list[httpx.AsyncClient] = []
    async with lent_app(settings.model_copy(update={"task_queue": task_queue, **limits}),
                        temporal_client=client, pool=session_pool_on(settings.effective_database_url)) as app:

        def call_from(ip: str) -> httpx.AsyncClient:
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
                                     base_url="http://test", timeout=60)
            opened.append(http)
            return http

        call_from.app = app
        try:
            yield call_from
        finally:
            for http in opened:
                await http.aclose()


def assert_limited(response: httpx.Response, window: int) -> int:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window
    return retry_after


async def stored_for(pool, email: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email)
