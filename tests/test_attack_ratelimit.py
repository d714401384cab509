"""Rate-limit bypasses the attacker audit of 2026-12-04 found beyond tests/test_ratelimit.py: the
real app counting in PostgreSQL, a request per address of the client (docs/security.md, "Rate
limits and lock-outs")."""

from __future__ import annotations

import ipaddress
import random
import uuid

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


async def test_a_language_chosen_on_a_refused_form_is_no_submission_and_buys_none(settings, pool, dev_server,
                                                                                    task_queue):
    """A subject's form refused, they read it in four languages (each a button posting the form back
    with `retype`), then send it right: it is accepted. Before, each language counted as a
    submission against the client's hourly limit, and the request they sent was refused 429. An
    attacker gains nothing by it: a post with `retype` stores nothing however whole its form, and
    a real submission counts whatever language it names, `retype` as a form field included."""
    email = unique_email("retype")
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="2/hour") as call_from:
        subject = call_from(unique_ip())
        form = {"type": "restriction", "email": email, "language": "en", "submission": uuid.uuid4().hex}
        assert (await subject.post("/portal/requests", data=form)).status_code == 422  # no ground ticked
        for lang in ("fr", "nl", "de", "en", "fr"):
            again = await subject.post(f"/portal/requests?retype=1&lang={lang}", data=form)
            assert again.status_code == 422 and f'<html lang="{lang}"' in again.text, again.text[:300]
        complaint = await subject.post("/portal/complaints?retype=1&lang=de", data={"email": email})
        assert complaint.status_code == 422, complaint.text[:300]
        sent = await subject.post("/portal/requests?lang=fr", data={**form, "restriction_grounds": "accuracy_contested"})
        assert sent.status_code == 303, sent.text[:300]
        assert await stored_for(pool, email) == 1

        # Its two submissions spent, the client's whole forms sent with `retype` open nothing,
        # however many; a real one is refused whatever it adds.
        whole = {**form, "type": "access", "email": unique_email("retype"), "submission": uuid.uuid4().hex}
        for lang in ("de", "nl", "en"):
            shown = await subject.post(f"/portal/requests?retype=1&lang={lang}", data=whole)
            assert shown.status_code == 200 and 'id="request-form"' in shown.text
        assert await stored_for(pool, whole["email"]) == 0
        for query, extra in (("?lang=de", {"language": "de"}), ("", {"retype": "1"}), ("?Retype=1", {})):
            assert_limited(await subject.post(f"/portal/requests{query}", data={**whole, **extra}), 3600)
        assert await stored_for(pool, whole["email"]) == 0
