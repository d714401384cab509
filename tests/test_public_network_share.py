"""One network's share of the unverified requests (DSRFLOW_MAX_UNVERIFIED_PER_NETWORK): an actor
rotating the addresses of one IPv4 /24, or the /64s of one IPv6 /48, used to fill the global
ceiling, after which every subject got 503 for the verification window. Now the flood is refused
(429, nothing stored, nothing mailed) and another network's subject still gets in."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

import httpx

from dsrflow.infra.ports import free_port
from tests.ratelimit_support import PROBLEM, app_clients, assert_limited, stored_for
from tests.support import unique_email, verification_code, wait_for_letter
from workers.dsr_worker import build_worker

WEEK = 7 * 86400  # the policy's verification.expires_after_days


_DRAWN: set[str] = set()


def _unused(draw: Callable[[], str]) -> str:
    """A network no test of this process has drawn yet: the counters are the session's, and one
    drawn twice (once in 16,384 pairs, seen in CI) starts its second test with its share taken."""
    while (network := draw()) in _DRAWN:
        pass
    _DRAWN.add(network)
    return network


def _ipv4_network() -> str:
    # Carrier-grade NAT space, which no other test calls from.
    return _unused(lambda: f"100.{random.randrange(64, 128)}.{random.randrange(256)}")


def _ipv6_network() -> str:
    return _unused(lambda: f"2001:db8:{random.randrange(0x1000, 0xffff):x}")


async def test_one_networks_flood_is_refused_and_another_network_gets_in(settings, pool, dev_server, task_queue):
    network = _ipv4_network()
    async with app_clients(settings, dev_server.client, task_queue, max_unverified_per_network=3) as call_from:
        for host in (1, 2):
            r = await call_from(f"{network}.{host}").post(
                "/v1/public/requests", json={"type": "access", "email": unique_email("share")})
            assert r.status_code == 202, r.text
        page = await call_from(f"{network}.3").post("/portal/requests",
                                                    data={"type": "access", "email": unique_email("share")})
        assert page.status_code == 303, page.text
        email = unique_email("share")

        refused = await call_from(f"{network}.200").post("/v1/public/requests", json={"type": "access", "email": email})
        refused_page = await call_from(f"{network}.201").post("/portal/requests", data={"type": "access", "email": email})

        assert refused.headers["content-type"].startswith(PROBLEM)
        assert assert_limited(refused, WEEK) > WEEK - 60
        assert "too many unconfirmed requests from your network; try again in 7 days" in refused.json()["detail"]
        assert_limited(refused_page, WEEK)
        assert refused_page.headers["content-type"].startswith("text/html")
        # The page says why (not the subject's own tries) and gives the way that is never shut.
        said = " ".join(refused_page.text.split())
        assert "have come from your network" in said and "tried too many times" not in said
        assert "You can also send us your request by e-mail to <a href=\"mailto:privacy@onetagger.com\">" in said
        assert await stored_for(pool, email) == 0  # no request, so no workflow to mail anyone
        # Another /24 is another network, and its subject gets in.
        other = await call_from(f"{_ipv4_network()}.200").post("/v1/public/requests",
                                                               json={"type": "access", "email": email})
        assert other.status_code == 202, other.text
        # The counters hold keyed hashes, never a network.
        buckets = " ".join(await pool.fetchval("SELECT array_agg(bucket) FROM rate_limit_counters"))
        assert network not in buckets


async def test_the_64s_of_one_ipv6_48_share_one_networks_part(settings, pool, dev_server, task_queue):
    network = _ipv6_network()
    async with app_clients(settings, dev_server.client, task_queue, max_unverified_per_network=2) as call_from:
        for subnet in ("1", "ffff"):
            r = await call_from(f"{network}:{subnet}::1").post(
                "/v1/public/requests", json={"type": "access", "email": unique_email("share6")})
            assert r.status_code == 202, r.text
        email = unique_email("share6")

        refused = await call_from(f"{network}:42::1").post("/v1/public/requests", json={"type": "access", "email": email})

        assert_limited(refused, WEEK)
        assert await stored_for(pool, email) == 0
        other = await call_from(f"{_ipv6_network()}:1::1").post("/v1/public/requests",
                                                                json={"type": "access", "email": email})
        assert other.status_code == 202, other.text


async def test_a_request_confirmed_from_its_network_gives_its_share_back(settings, pool, dev_server, mail_sink,
                                                                          task_queue):
    """A subject who confirms from where they asked holds none of the share; one confirmed from
    elsewhere holds it until its window ends (where a request came from is not kept)."""
    home, away = _ipv4_network(), _ipv4_network()
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, max_unverified_per_network=1) as call_from:
        opened = {}
        for network in (home, away):
            first = await call_from(f"{network}.1").post("/v1/public/requests",
                                                         json={"type": "access", "email": unique_email("share")})
            assert first.status_code == 202, first.text
            assert_limited(await call_from(f"{network}.2").post(
                "/v1/public/requests", json={"type": "access", "email": unique_email("share")}), WEEK)
            opened[network] = first.json()["id"]

        for network, confirmed_from in ((home, f"{home}.9"), (away, "192.0.2.7")):
            rid = opened[network]
            code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
            confirmed = await call_from(confirmed_from).post(f"/v1/public/requests/{rid}/verify", json={"code": code})
            assert confirmed.status_code == 200, confirmed.text

        again = {network: await call_from(f"{network}.3").post(
            "/v1/public/requests", json={"type": "access", "email": unique_email("share")}) for network in (home, away)}
        assert again[home].status_code == 202, again[home].text
        assert_limited(again[away], WEEK)


async def _stored_while_the_engine_was_down(settings, task_queue, client: str, body: dict, key: str, *,
                                            share: int) -> httpx.Response:
    """A public submission from `client` answered 503: stored, its workflow not started."""
    nowhere = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with app_clients(nowhere, None, task_queue, max_unverified_per_network=share) as call_from:
        stored = await call_from(client).post("/v1/public/requests", json=body, headers={"Idempotency-Key": key})
    assert stored.status_code == 503 and "same Idempotency-Key" in stored.json()["detail"], stored.text
    return stored


async def test_a_request_stored_while_the_engine_was_down_gives_its_share_back_once_confirmed(
        settings, pool, dev_server, mail_sink, task_queue):
    """A request stored while the workflow engine did not answer (503, "repeat with the same
    Idempotency-Key") holds its share like any other, and gives it back like any other once its
    subject confirms from where they asked."""
    network, key = _ipv4_network(), uuid.uuid4().hex
    body = {"type": "access", "email": unique_email("share")}
    stored = await _stored_while_the_engine_was_down(settings, task_queue, f"{network}.1", body, key, share=2)
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, max_unverified_per_network=2) as call_from:
        started = await call_from(f"{network}.1").post("/v1/public/requests", json=body,
                                                       headers={"Idempotency-Key": key})
        assert started.status_code == 202 and started.json()["id"] == stored.json()["request_id"], started.text
        other = await call_from(f"{network}.2").post("/v1/public/requests",
                                                     json={"type": "access", "email": unique_email("share")})
        assert other.status_code == 202, other.text
        assert_limited(await call_from(f"{network}.3").post(
            "/v1/public/requests", json={"type": "access", "email": unique_email("share")}), WEEK)
        rid = started.json()["id"]
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))

        confirmed = await call_from(f"{network}.9").post(f"/v1/public/requests/{rid}/verify", json={"code": code})

        assert confirmed.status_code == 200, confirmed.text
        again = await call_from(f"{network}.3").post("/v1/public/requests",
                                                     json={"type": "access", "email": unique_email("share")})
        assert again.status_code == 202, again.text


async def test_a_repeat_from_a_network_at_its_share_gets_its_request_started(settings, pool, dev_server, task_queue):
    """The 503 of a request stored while the engine was down says to repeat the call with the
    same Idempotency-Key. A repeat opens nothing, so it is not refused for the network's share nor
    the address's allowance, which the first call took: it gets its request, started. A new
    request from that network is still refused."""
    network, key = _ipv4_network(), uuid.uuid4().hex
    body = {"type": "access", "email": unique_email("share")}
    stored = await _stored_while_the_engine_was_down(settings, task_queue, f"{network}.1", body, key, share=1)
    async with app_clients(settings, dev_server.client, task_queue, max_unverified_per_network=1,
                           rate_mail_per_email="1/day") as call_from:
        again = await call_from(f"{network}.2").post("/v1/public/requests", json=body,
                                                     headers={"Idempotency-Key": key})
        assert again.status_code == 202 and again.json()["id"] == stored.json()["request_id"], again.text
        handle = dev_server.client.get_workflow_handle(f"dsr-{again.json()['id']}")
        assert (await handle.describe()).status is not None  # started by the repeat
        assert_limited(await call_from(f"{network}.3").post(
            "/v1/public/requests", json={"type": "access", "email": unique_email("share")}), WEEK)
