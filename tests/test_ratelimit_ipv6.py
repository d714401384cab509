"""IPv6 delegations: a subscriber is often delegated a /56 or a /48, not a /64, and counted per
/64 it held 256 or 65,536 clients' worth of every limit. An IPv6 client's /48 is counted too, at
`DSRFLOW_RATE_IPV6_48_MULTIPLE` times the limit (docs/rate-limits.md): the real app counting in
PostgreSQL, a client per address."""

from __future__ import annotations

import random

import pytest

from dsrflow.settings import SettingsError, load_settings
from tests.ratelimit_support import app_clients, assert_limited, stored_for
from tests.support import unique_email


def _delegation() -> str:
    """A /48 of the documentation prefix (2001:db8::/32) of this test's own."""
    return f"2001:db8:{random.randrange(1, 0xffff):x}"


async def _submit(call_from, host: str, email: str | None = None):
    return await call_from(host).post("/v1/public/requests",
                                      json={"type": "access", "email": email or unique_email("v6-48")})


async def test_a_delegation_rotating_through_its_64s_is_refused_after_the_multiple(settings, pool, dev_server,
                                                                                   task_queue):
    """With one submission an hour per client and a /48 allowed three times that, a subscriber
    rotating through the /64s of their /48 gets three requests in, not one per /64; another /48
    is not held back. A /64 over its own limit spends none of its /48's allowance, so one noisy
    subscriber does not starve the others a carrier puts in the same /48."""
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="1/hour",
                           rate_ipv6_48_multiple=3) as call_from:
        rotating = _delegation()
        for subnet in range(1, 4):
            served = await _submit(call_from, f"{rotating}:{subnet:x}::1")
            assert served.status_code == 202, served.text
        email = unique_email("v6-48")
        for subnet in range(4, 8):
            assert_limited(await _submit(call_from, f"{rotating}:{subnet:x}::1", email), 3600)
        assert await stored_for(pool, email) == 0
        assert (await _submit(call_from, f"{_delegation()}:1::1", email)).status_code == 202

        shared = _delegation()
        assert (await _submit(call_from, f"{shared}:1::1")).status_code == 202
        for _ in range(5):  # the noisy subscriber, refused by its /64's limit
            assert_limited(await _submit(call_from, f"{shared}:1::2"), 3600)
        for subnet in (2, 3):  # its neighbours in the /48 still have the rest of the /48's allowance
            served = await _submit(call_from, f"{shared}:{subnet:x}::1")
            assert served.status_code == 202, served.text


@pytest.mark.parametrize(("value", "says"), [
    ("0", "greater than or equal to 1"), ("many", "a valid integer"), ("65537", "less than or equal to 65536")])
def test_a_bad_multiple_is_refused_by_name(monkeypatch, value: str, says: str):
    monkeypatch.setenv("DSRFLOW_RATE_IPV6_48_MULTIPLE", value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert f"DSRFLOW_RATE_IPV6_48_MULTIPLE: expected {says}" in str(refused.value)
    assert "TCP port" not in str(refused.value)
