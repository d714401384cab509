"""Attacks from untrusted input, each against the real API over HTTP (uvicorn, Postgres, Temporal):
oversized bodies, free text and lists past their bounds, and a stranger asking /healthz for the
stack's internals (docs/security.md, "Untrusted input and processors"). Forged, replayed and stale
OpenDSR callbacks and a processor pointing us at another host: tests/test_untrusted_processors.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from urllib.parse import urlencode

import pytest

from api.body_limits import DEFAULT_LIMIT
from tests.fanout_stack import api, fanout_stack
from tests.support import (
    assert_problem,
    live_client,
    staff_headers,
    text_of,
    unique_email,
    wait_for_letter,
)
from tests.untrusted_support import (
    CALLBACK,
    api_over_http,
    processor_policy,
)
from workers.dsr_worker import build_worker


async def _count(pool, sql: str, *args) -> int:
    return await pool.fetchval(sql, *args)


async def _counters(pool) -> dict[str, int]:
    """The rate limiter's live buckets (a new API process sweeps the expired ones, so a sum over
    the table can fall between two readings)."""
    return {r["bucket"]: r["hits"] for r in await pool.fetch(
        "SELECT bucket, hits FROM rate_limit_counters WHERE window_end > now()")}


# -- bodies ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/public/requests", CALLBACK, "/portal/requests"])
@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "chunked"])
async def test_an_oversized_body_is_refused_before_anything_reads_it(settings, pool, dev_server, path, streamed,
                                                                      tmp_path, lifecycle_policy):
    filler = "x" * (DEFAULT_LIMIT + 1024)
    fields = {"type": "access", "email": unique_email("big"), "name": filler}
    form = path.startswith("/portal/")
    body = urlencode(fields).encode() if form else json.dumps(fields).encode()
    content_type = "application/x-www-form-urlencoded" if form else "application/json"

    async def chunks():
        for start in range(0, len(body), 16 * 1024):
            yield body[start:start + 16 * 1024]

    requests = await _count(pool, "SELECT count(*) FROM dsr_requests")
    counters = await _counters(pool)
    # The processor's address is never fetched: the body is refused before its signature is checked.
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": "http://127.0.0.1:9/opendsr"})
    async with api_over_http(settings, dev_server.client, policy_path=policy) as url, \
            live_client(base_url=url) as http:
        response = await http.post(path, content=chunks() if streamed else body,
                                   headers={"Content-Type": content_type})
    problem = assert_problem(response, 413)
    assert problem["title"] == "Request body too large"
    # Nothing stored. A declared length is refused before the route runs; a chunked body is
    # refused as it is read, and every one of these routes counts its client before reading it
    # (the rate limit comes before any parsing), so that one hit is all the route did.
    assert await _count(pool, "SELECT count(*) FROM dsr_requests") == requests
    after = await _counters(pool)
    counted = [bucket for bucket, hits in after.items() if hits > counters.get(bucket, 0)]
    # The callback and the portal's form read their own body; the public API's JSON route is
    # counted before FastAPI reads it (api/public/intake.py `CountedFirst`).
    assert len(counted) == (1 if streamed else 0), counted


async def test_a_manual_confirmation_reads_no_more_than_its_form(postgres, settings, pool, dev_server, mail_sink,
                                                                 tmp_path, monkeypatch):
    """The manual processors' route is left to cap its own bodies (uploads are large): its plain
    confirmation form must still not read an unbounded body."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",)) as stack, \
            build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        created = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "identity_attested": True, "type": "erasure", "subject": {"email": "grace@example.com"}})
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        letter = text_of(await wait_for_letter(mail_sink, rid, "processor_request", timeout=60))
        token = re.search(r"/v1/callbacks/manual/([0-9a-f]{64})", letter).group(1)
        external_id = hashlib.sha256(token.encode()).hexdigest()
        for _ in range(300):  # the e-mail goes out before the activity records its task
            if await pool.fetchval("SELECT 1 FROM manual_tasks WHERE external_id = $1", external_id):
                break
            await asyncio.sleep(0.1)
        huge = urlencode({"note": "n" * (2 * 1024 * 1024)})
        response = await http.post(f"/v1/callbacks/manual/{token}", content=huge,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert_problem(response, 413)
        assert await pool.fetchval("SELECT confirmed_at FROM manual_tasks WHERE external_id = $1",
                                   external_id) is None
        assert await pool.fetchval("SELECT 1 FROM manual_tasks WHERE external_id = $1", external_id)


async def test_free_text_and_lists_in_a_request_are_bounded(settings, pool, dev_server):
    requests = await _count(pool, "SELECT count(*) FROM dsr_requests")
    async with api_over_http(settings, dev_server.client) as url, live_client(base_url=url) as http:
        long_value = await http.post("/v1/public/requests", json={
            "type": "rectification", "email": unique_email("rect"), "corrections": {"name": "y" * 1001}})
        many = await http.post("/v1/public/requests", json={
            "type": "rectification", "email": unique_email("rect"),
            "corrections": {f"field{i}": "v" for i in range(51)}})
        grounds = await http.post("/v1/public/requests", json={
            "type": "restriction", "email": unique_email("restr"),
            "restriction_grounds": ["accuracy_contested"] * 5})
    for response in (long_value, many, grounds):
        assert_problem(response, 422)
    assert {e["field"] for e in long_value.json()["errors"]} == {"corrections.name"}
    assert {e["field"] for e in many.json()["errors"]} == {"corrections"}
    assert {e["field"] for e in grounds.json()["errors"]} == {"restriction_grounds"}
    assert await _count(pool, "SELECT count(*) FROM dsr_requests") == requests


# -- /healthz ----------------------------------------------------------------------------------

async def test_healthz_tells_strangers_only_up_or_down(settings, pool, dev_server):
    smtp_sessions = 0

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal smtp_sessions
        smtp_sessions += 1
        writer.write(b"220 relay.internal.example ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            writer.write(b"221 bye\r\n" if verb == b"QUIT" else b"250 ok\r\n")
            await writer.drain()
            if verb == b"QUIT":
                break
        writer.close()

    relay = await asyncio.start_server(smtp, "127.0.0.1", 0)
    port = relay.sockets[0].getsockname()[1]
    try:
        async with api_over_http(settings, dev_server.client, smtp_port=port) as url, \
                live_client(base_url=url) as http:
            public = [await http.get("/healthz") for _ in range(5)]
            staff = await http.get("/healthz", headers=await staff_headers(pool, "agent"))
            wrong = await http.get("/healthz", headers={"Authorization": "Bearer not-a-token"})
    finally:
        relay.close()
        await relay.wait_closed()
    for answer in public:
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert staff.json() == {"status": "ok", "components": {"postgres": "ok", "temporal": "ok", "smtp": "ok"}}
    assert_problem(wrong, 401)
    assert smtp_sessions == 1  # six health checks, one SMTP session: the probe is cached

    async with api_over_http(settings, dev_server.client, smtp_port=port) as url, \
            live_client(base_url=url) as http:
        down = await http.get("/healthz")  # the relay is gone now
        detailed = await http.get("/healthz", headers=await staff_headers(pool, "agent"))
    assert down.status_code == 503 and down.json() == {"status": "unavailable"}
    assert detailed.status_code == 503 and detailed.json()["failing"] == ["smtp"]
    assert detailed.json()["components"]["smtp"].startswith("unavailable: ")
