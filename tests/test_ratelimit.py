"""Rate limits on submitting and verifying, per client IP and per e-mail address, through the
public API and the portal: 429 with `Retry-After`, nothing stored, and service again once the
window has passed. Counters hold hashes only."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable

import httpx

from api.app import create_app
from tests.support import unique_email
from workers.dsr_worker import build_worker

PROBLEM = "application/problem+json"


def unique_ip() -> str:
    # Each test calls from its own documentation-range addresses: the counters are shared by the
    # whole session's database, like they are by every API process in production.
    return f"198.51.{random.randrange(256)}.{random.randrange(1, 255)}"


@contextlib.asynccontextmanager
async def app_clients(settings, client, task_queue, **limits) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """The real app with the given limits; `call_from(ip)` is an HTTP client for that address."""
    app = create_app(settings.model_copy(update={"task_queue": task_queue, **limits}),
                     temporal_client=client)
    opened: list[httpx.AsyncClient] = []

    def call_from(ip: str) -> httpx.AsyncClient:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
                                 base_url="http://test", timeout=60)
        opened.append(http)
        return http

    try:
        yield call_from
    finally:
        for http in opened:
            await http.aclose()
        await app.state.dsr.close()


async def stored_for(pool, email: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email)


def assert_limited(response: httpx.Response, window: int) -> int:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window
    return retry_after


async def test_submit_per_ip_answers_429_and_recovers(settings, pool, dev_server, task_queue):
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="2/3s") as call_from:
        http = call_from(unique_ip())
        emails = [unique_email("ip") for _ in range(3)]
        for email in emails[:2]:
            assert (await http.post("/v1/public/requests", json={"type": "access", "email": email})).status_code == 202

        refused = await http.post("/v1/public/requests", json={"type": "access", "email": emails[2]})

        retry_after = assert_limited(refused, 3)
        assert refused.headers["content-type"].startswith(PROBLEM)
        assert refused.json()["status"] == 429 and refused.json()["retry_after"] == retry_after
        assert await stored_for(pool, emails[2]) == 0
        # Another client is not held back by this one.
        other = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "access", "email": emails[2]})
        assert other.status_code == 202, other.text

        await asyncio.sleep(retry_after + 0.2)
        again = await http.post("/v1/public/requests", json={"type": "access", "email": unique_email("ip")})
        assert again.status_code == 202, again.text


async def test_submit_per_email_counts_across_addresses_and_stores_hashes_only(settings, pool, dev_server, task_queue):
    email = unique_email("Per.Email")
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_email="2/hour") as call_from:
        ips = [unique_ip() for _ in range(3)]
        for ip, spelled in zip(ips[:2], (email, email.upper())):
            r = await call_from(ip).post("/v1/public/requests", json={"type": "erasure", "email": spelled})
            assert r.status_code == 202, r.text

        refused = await call_from(ips[2]).post("/v1/public/requests", json={"type": "erasure", "email": email})

        assert_limited(refused, 3600)
        assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE lower(subject_email) = lower($1)", email) == 2
        buckets = " ".join(await pool.fetchval("SELECT array_agg(bucket) FROM rate_limit_counters"))
        for clear in (email.lower(), email, *ips):
            assert clear not in buckets


async def test_portal_submit_limit_is_a_page(settings, pool, dev_server, task_queue):
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="1/hour") as call_from:
        http = call_from(unique_ip())
        first = await http.post("/portal/requests", data={"type": "access", "email": unique_email("page")})
        assert first.status_code == 303, first.text
        email = unique_email("page")

        refused = await http.post("/portal/requests", data={"type": "access", "email": email})

        assert_limited(refused, 3600)
        assert refused.headers["content-type"].startswith("text/html")
        assert "Too many requests" in refused.text and "then try again" in refused.text
        assert await stored_for(pool, email) == 0


async def test_verify_per_ip_counts_before_anything_else(settings, dev_server, task_queue):
    async with app_clients(settings, dev_server.client, task_queue, rate_verify_per_ip="2/3s") as call_from:
        http = call_from(unique_ip())
        unknown = f"/v1/public/requests/{uuid.uuid4()}/verify"
        for _ in range(2):
            assert (await http.post(unknown, json={"code": "123456"})).status_code == 404

        retry_after = assert_limited(await http.post(unknown, json={"code": "123456"}), 3)

        await asyncio.sleep(retry_after + 0.2)
        assert (await http.post(unknown, json={"code": "123456"})).status_code == 404


async def test_verify_per_email_across_clients_and_forms(settings, pool, dev_server, task_queue):
    email = unique_email("verify")
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_verify_per_email="2/hour") as call_from:
        created = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "access", "email": email})
        rid = created.json()["id"]
        api_try = await call_from(unique_ip()).post(f"/v1/public/requests/{rid}/verify", json={"code": "000001"})
        assert api_try.status_code in (400, 409), api_try.text  # a wrong code (or not issued yet)
        page_try = await call_from(unique_ip()).post(f"/portal/requests/{rid}/verify", data={"code": "000002"})
        assert page_try.status_code in (400, 409), page_try.text

        refused = await call_from(unique_ip()).post(f"/portal/requests/{rid}/verify", data={"code": "000003"})

        assert_limited(refused, 3600)
        assert refused.headers["content-type"].startswith("text/html")

