"""A share of a service's daily quota (activities/connectors/http_quota.py) is taken before each
request, and given back when the request never went: its connection never made, or the try
stopped before it (asyncio cancellation: a worker shutting down, an attempt cancelled or timed
out). Before, a network outage's tries used up the day's quota the service never saw, and the
erasures then waited for the next quota day. In-process, on the session's database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import httpx
import pytest

from activities.connectors.http_auth import Credentials
from activities.connectors.http_client import HttpExchange, HttpSystemUnavailable
from activities.connectors.http_quota import QuotaLedger, ServiceClock
from devstack.processes import free_port
from policy.http_model import BearerAuth, HttpConfig, Limits, RequestSpec, Retry
from tests.saas_runs_support import newsletter
from tests.saas_support import http_policy


def _config(tmp_path, per_second: float | None) -> HttpConfig:
    """The shipped Mailchimp configuration, sent where nobody listens, under a daily quota."""
    shipped = http_policy(tmp_path, {"newsletter": newsletter()}).policy.systems["newsletter"].http_config()
    return shipped.model_copy(update={
        "base_url": f"http://127.0.0.1:{free_port()}",
        "auth": BearerAuth(type="bearer", token_env="STAND_IN_TOKEN"),
        "limits": Limits(per_day=10, per_second=per_second, key=f"given-back-{uuid.uuid4().hex}"),
        "retry": Retry(attempts=3, backoff_seconds=0)})


async def _no_wait(_: float) -> None:
    return None


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def _exchange(pool, http, config: HttpConfig) -> tuple[HttpExchange, QuotaLedger]:
    assert config.limits.key is not None
    ledger = QuotaLedger(pool, config.limits.key, config.limits, ServiceClock())
    credentials = Credentials("standin", config.service, config.auth, {"STAND_IN_TOKEN": "t"}, http)
    return HttpExchange("standin", config, credentials, http, ledger, sleep=_no_wait), ledger


async def test_tries_whose_connection_was_never_made_use_none_of_the_days_quota(pool, http, tmp_path):
    exchange, ledger = _exchange(pool, http, _config(tmp_path, per_second=None))
    spec = RequestSpec(method="DELETE", path="/members/1")
    with pytest.raises(HttpSystemUnavailable, match="failed"):
        await exchange.send(spec, "erase", f"{exchange.base_url}/members/1", {}, None)
    assert exchange.requests_started == 3  # three tries, none reaching the service
    assert await ledger.used_today() == 0


async def test_a_try_stopped_while_it_waits_for_its_slot_gives_its_share_back(pool, http, tmp_path):
    """One request a minute: the second waits for its slot, and is stopped there."""
    exchange, ledger = _exchange(pool, http, _config(tmp_path, per_second=1 / 60))
    await ledger.acquire()  # the slot of this minute, taken by another request that went
    waiting = asyncio.ensure_future(exchange.send(RequestSpec(method="DELETE", path="/members/1"), "erase",
                                                  f"{exchange.base_url}/members/1", {}, None))
    for _ in range(500):
        if await ledger.used_today() == 2:
            break
        await asyncio.sleep(0.01)
    assert await ledger.used_today() == 2  # its share taken, its slot a minute away
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (exchange.requests_started, await ledger.used_today()) == (0, 1)


async def test_a_share_given_back_never_takes_the_day_below_nothing(pool):
    limits = Limits(per_day=3, key=f"given-back-{uuid.uuid4().hex}")
    assert limits.key is not None
    ledger = QuotaLedger(pool, limits.key, limits, ServiceClock())
    day = await ledger.acquire()
    assert isinstance(day, date)
    for _ in range(2):
        await ledger.give_back(day)
    assert await ledger.used_today() == 0
