"""Rate-limit bypasses the attacker audit of 2026-12-04 found beyond tests/test_ratelimit.py: the
real app counting in PostgreSQL, a request per address of the client (docs/security.md, "Rate
limits and lock-outs")."""

from __future__ import annotations

import ipaddress
import random

from tests.ratelimit_support import app_clients, assert_limited, stored_for, unique_ip
from tests.support import unique_email


def _six_to_four(ipv4: str, subnet: int) -> str:
    """An address of one of the 65,536 /64s of the 6to4 prefix (2002:<IPv4>::/48) an IPv4 host owns."""
    high, low = divmod(int(ipaddress.IPv4Address(ipv4)), 1 << 16)
    return f"2002:{high:x}:{low:x}:{subnet:x}::1"


def _teredo(ipv4: str) -> str:
    """A Teredo address (2001:0::/32) of a client behind `ipv4`, which it carries inverted."""
    server = int(ipaddress.IPv4Address("192.0.2.45"))
    client = int(ipaddress.IPv4Address(ipv4)) ^ 0xFFFFFFFF
    port = random.randrange(1 << 16)
    return str(ipaddress.IPv6Address((0x20010000 << 96) | (server << 64) | (port << 32) | client))


async def test_6to4_and_teredo_addresses_count_as_the_ipv4_client_they_carry(settings, pool, dev_server, task_queue):
    """One IPv4 host owns a whole 6to4 /48 (65,536 /64s) and may open Teredo addresses at will;
    each /64 counted as a client of its own, so every per-client limit multiplied by 65,536 for
    whoever used them. They now count as the IPv4 address in them."""
    ipv4 = unique_ip()
    assert ipaddress.ip_address(_six_to_four(ipv4, 1)).sixtofour == ipaddress.ip_address(ipv4)
    assert ipaddress.ip_address(_teredo(ipv4)).teredo[1] == ipaddress.ip_address(ipv4)
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="2/hour") as call_from:
        for host in (_six_to_four(ipv4, 1), _teredo(ipv4)):
            r = await call_from(host).post("/v1/public/requests", json={"type": "access", "email": unique_email("6to4")})
            assert r.status_code == 202, r.text
        email = unique_email("6to4")
        for host in (_six_to_four(ipv4, 2), ipv4):
            assert_limited(await call_from(host).post("/v1/public/requests", json={"type": "access", "email": email}),
                           3600)
        assert await stored_for(pool, email) == 0
        # Another IPv4 host's 6to4 prefix is another client.
        other = await call_from(_six_to_four(unique_ip(), 1)).post("/v1/public/requests",
                                                                   json={"type": "access", "email": email})
        assert other.status_code == 202, other.text
