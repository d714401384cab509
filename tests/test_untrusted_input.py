"""Attacks from untrusted input, each against the real API over HTTP (uvicorn, Postgres, Temporal):
oversized bodies, forged, replayed and stale OpenDSR callbacks, a processor pointing us at
another host, and a stranger asking /healthz for the stack's internals (docs/security.md,
"Untrusted input and processors")."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import uuid
from urllib.parse import urlencode

import pytest

from activities.connectors.base import PermanentConnectorError
from api.body_limits import DEFAULT_LIMIT
from devstack.saas.hubspot import create_hubspot_app
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.saas_support import collect, connector, http_policy, http_system, subject
from tests.support import (
    assert_problem,
    live_client,
    staff_headers,
    staff_retry,
    text_of,
    unique_email,
    wait_for_letter,
)
from tests.untrusted_support import (
    CALLBACK,
    PROCESSOR,
    Recorder,
    api_over_http,
    fake_processor,
    pending_erasure,
    processor_policy,
    rfc3339,
    served,
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
    # refused as it is read, and a route that reads its own body counts its client before (the
    # rate limit comes before any parsing), so that one hit is all the route did.
    assert await _count(pool, "SELECT count(*) FROM dsr_requests") == requests
    after = await _counters(pool)
    counted = [bucket for bucket, hits in after.items() if hits > counters.get(bucket, 0)]
    # The routes that read their own body (the callback, the portal's form) count the client first.
    assert len(counted) == (1 if streamed and path in (CALLBACK, "/portal/requests") else 0), counted


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


# -- OpenDSR callbacks -------------------------------------------------------------------------

@pytest.fixture
async def processor():
    fake = fake_processor()
    async with served(fake.app()) as url:
        fake.url = url
        yield fake


async def test_forged_callbacks_do_not_make_us_fetch_or_leak(settings, pool, dev_server, processor, tmp_path,
                                                             lifecycle_policy):
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    async with api_over_http(settings, dev_server.client, policy_path=policy) as url, \
            live_client(base_url=url) as http:
        forged = json.dumps({"subject_request_id": str(uuid.uuid4()), "request_status": "completed"})
        for _ in range(20):
            response = await http.post(CALLBACK, content=forged, headers={"X-OpenDSR-Signature": "Zm9yZ2Vk"})
            assert_problem(response, 403)
        # One fetch to learn the certificate; a failed signature does not fetch it again each time.
        assert processor.hits == ["discovery", "certificate"]

        processor.broken = True
        _certificates_forget(processor.url)
        answers = [await http.post(CALLBACK, content=forged, headers={"X-OpenDSR-Signature": "Zm9yZ2Vk"})
                   for _ in range(10)]
    for answer in answers:
        problem = assert_problem(answer, 503)
        # Generic: no internal URL, port, exception or status of the processor's own failure.
        assert "127.0.0.1" not in answer.text and str(processor.url.rsplit(":", 1)[1]) not in answer.text
        assert "500" not in problem.get("detail", "") and "HTTPStatusError" not in answer.text
    assert processor.hits == ["discovery", "certificate", "discovery"]  # the broken one, tried once
    assert await _count(pool, "SELECT count(*) FROM audit_events WHERE actor = $1", f"processor:{PROCESSOR}") == 0


def _certificates_forget(processor_url: str) -> None:
    """Age the callback endpoint's cache as if the refresh interval had passed (a key rotation)."""
    from api.callbacks.opendsr import _certificates

    url = f"{processor_url}/opendsr/discovery"
    _certificates.invalidate(url)
    _certificates._fetched_at.pop(url, None)


async def test_plain_http_discovery_is_no_trust_anchor_outside_development(settings, pool, dev_server, processor,
                                                                          tmp_path, lifecycle_policy):
    plain = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    pinned = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr",
                                                           "processor_certificate_pem": processor.cert_pem.decode()})
    body, headers = processor.signed({"subject_request_id": str(uuid.uuid4()), "request_status": "completed",
                                      "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))})
    async with api_over_http(settings, dev_server.client, policy_path=plain, environment="production") as url, \
            live_client(base_url=url) as http:
        refused = await http.post(CALLBACK, content=body, headers=headers)
    assert_problem(refused, 503)
    assert "http://" not in refused.text
    async with api_over_http(settings, dev_server.client, policy_path=pinned, environment="production") as url, \
            live_client(base_url=url) as http:
        checked = await http.post(CALLBACK, content=body, headers=headers)
    # The pinned certificate verified it (the id matches no task of ours: 404, not 403 or 503).
    assert_problem(checked, 404)
    assert processor.hits == []  # neither fetched the plain-http discovery document


async def test_a_certificate_off_the_discovery_documents_origin_is_not_fetched(processor):
    """Discovery names a certificate on the same host but another scheme or port (an https
    document naming http://...: anyone on the path serves their own key, which then verifies
    callbacks that mark erasures done). Before, only the host was compared (attacker audit)."""
    from activities.connectors.opendsr_signature import ProcessorCertificateError, ProcessorCertificates

    async with served(Recorder().app()) as other_port:  # the same host, another port
        assert other_port.split(":")[1] == processor.url.split(":")[1]
        for location in (f"{other_port}/opendsr/cert.pem", processor.url.replace("http://", "https://") + "/c.pem"):
            processor.certificate_at = location
            certificates = ProcessorCertificates()
            try:
                with pytest.raises(ProcessorCertificateError, match="origin"):
                    await certificates.get(f"{processor.url}/opendsr/discovery")
            finally:
                await certificates.aclose()
    processor.certificate_at = "/opendsr/cert.pem"  # its own origin: fetched
    certificates = ProcessorCertificates()
    try:
        assert await certificates.get(f"{processor.url}/opendsr/discovery") == processor.cert_pem
    finally:
        await certificates.aclose()


async def test_an_endless_answer_is_cut_off_at_the_cap():
    """A processor answering with a body longer than the cap, announced or streamed a chunk at a
    time: refused as a protocol error (the service unavailable, retried, then flagged), before it
    fills the worker's memory. Before, httpx read any body whole (attacker audit)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    from activities.connectors.bounded_http import AnswerTooLarge, bounded_client

    async def endless(request: Request) -> Response:
        async def chunks():  # 4 MB, chunked: no length announced (finite, so that the server can stop)
            for _ in range(64):
                yield b"x" * 65536

        return StreamingResponse(chunks(), media_type="application/json")

    async def announced(request: Request) -> Response:
        return Response(b"y" * 300_000, media_type="application/json")

    app = Starlette(routes=[Route("/endless", endless), Route("/announced", announced), Route("/small", announced)])
    async with served(app) as url, bounded_client(limit=200_000, timeout=10) as client:
        for path in ("/endless", "/announced"):
            with pytest.raises(AnswerTooLarge):
                await client.get(f"{url}{path}")
    async with served(app) as url, bounded_client(limit=400_000, timeout=10) as client:
        assert len((await client.get(f"{url}/small")).content) == 300_000


async def test_replayed_and_stale_callbacks_are_refused(settings, pool, dev_server, processor, tmp_path,
                                                        lifecycle_policy, task_queue):
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr",
                                                           "callback_max_age_seconds": 600})
    ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
    async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
            api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
        _, external_id = await pending_erasure(http, pool)
        now = dt.datetime.now(dt.UTC)
        stale_body, stale_headers = processor.signed({
            "subject_request_id": external_id, "request_status": "in_progress",
            "status_changed_time": rfc3339(now - dt.timedelta(hours=2))})
        stale = await http.post(CALLBACK, content=stale_body, headers=stale_headers)
        problem = assert_problem(stale, 422)
        assert problem["errors"][0]["field"] == "status_changed_time"

        body, headers = processor.signed({"subject_request_id": external_id, "request_status": "completed",
                                          "status_changed_time": rfc3339(now)})
        first = await http.post(CALLBACK, content=body, headers=headers)
        assert first.status_code == 202, first.text
        replayed = await asyncio.gather(*(http.post(CALLBACK, content=body, headers=headers) for _ in range(3)))
    for answer in replayed:
        assert_problem(answer, 409)
    events = await pool.fetch("SELECT data FROM audit_events WHERE actor = $1", f"processor:{PROCESSOR}")
    assert [json.loads(e["data"]) if isinstance(e["data"], str) else e["data"] for e in events] == [
        {"system": PROCESSOR, "status": "completed", "attempt": 1}]


async def test_a_replayed_callback_does_not_reach_a_task_staff_ran_again(settings, pool, dev_server, processor,
                                                                        tmp_path, lifecycle_policy, task_queue):
    """The processor cancelled the job, staff ran the task again (attempt 2, a new job of its own):
    someone who captured the signed "cancelled" posts it again. Refused, it must not reach the new
    attempt, which the processor's callback for the new job completes."""
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
    compliance = await staff_headers(pool, "compliance")
    task = "SELECT status, attempt FROM system_tasks WHERE request_id = $1 AND system = $2"
    async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
            api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
        request_id, external_id = await pending_erasure(http, pool)
        cancelled, headers = processor.signed({"subject_request_id": external_id, "request_status": "cancelled",
                                               "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))})
        assert (await http.post(CALLBACK, content=cancelled, headers=headers)).status_code == 202
        await _until(pool, task, request_id, ("needs_attention", 1))
        retried = await staff_retry(http, request_id, PROCESSOR, compliance)
        assert retried.status_code == 200, retried.text
        await _until(pool, task, request_id, ("pending", 2))
        job = await pool.fetchval("SELECT external_id FROM system_tasks WHERE request_id = $1 AND system = $2",
                                  uuid.UUID(request_id), PROCESSOR)
        assert job != external_id

        # The old job's callback: no task follows it any more (404), nor is it heard twice.
        assert (await http.post(CALLBACK, content=cancelled, headers=headers)).status_code in (404, 409)
        completed, signed = processor.signed({"subject_request_id": job, "request_status": "completed",
                                              "results_count": 2, "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))})
        assert (await http.post(CALLBACK, content=completed, headers=signed)).status_code == 202
        state = await asyncio.wait_for(
            dev_server.client.get_workflow_handle(workflow_id_for(request_id)).result(), 60)
    assert state["status"] == "completed"
    (result,) = state["results"]
    assert (result["status"], result["changed"]) == ("done", 2)


async def _until(pool, query: str, request_id: str, expected: tuple) -> None:
    for _ in range(300):
        if tuple(await pool.fetchrow(query, uuid.UUID(request_id), PROCESSOR)) == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the task never reached {expected}: {tuple(await pool.fetchrow(query, uuid.UUID(request_id), PROCESSOR))}")


# -- URLs a processor hands us -----------------------------------------------------------------

async def test_a_results_url_on_another_host_is_not_followed(pool, processor, tmp_path, lifecycle_policy,
                                                             settings):
    elsewhere = Recorder()
    async with served(elsewhere.app()) as other:
        processor.results_url = f"{other}/exfiltrate"
        from policy.model import load_policy

        policy = load_policy(processor_policy(tmp_path, lifecycle_policy, {
            "base_url": f"{processor.url}/opendsr", "verify_signatures": False, "poll_interval_seconds": 0.05,
            "headers": {"Authorization": "Bearer processor-secret"}}))
        opendsr = connector(policy, PROCESSOR, pool, settings)
        try:
            with pytest.raises(PermanentConnectorError, match="another host than the configured one"):
                [record async for record in opendsr.access(subject("ada@example.com"))]
        finally:
            await opendsr.close()
    assert elsewhere.seen == []  # not called at all: neither the credentials nor the subject's job went there


async def test_a_next_page_link_to_another_host_is_not_followed(pool, tmp_path, monkeypatch):
    """A compromised HubSpot answers with a next-page link on a host of its choosing: the bearer
    token would go with the request if we followed it."""
    elsewhere = Recorder()
    hubspot = create_hubspot_app("client-1", "secret-1", "refresh-1")
    async with served(elsewhere.app()) as other:
        other_host = other.removeprefix("http://").encode()

        async def links_elsewhere(scope, receive, send):
            # The stand-in builds its next link from the Host it was asked under.
            if scope["type"] == "http" and scope["path"].endswith("/associations/notes"):
                scope = {**scope, "headers": [(k, other_host if k == b"host" else v) for k, v in scope["headers"]]}
            await hubspot(scope, receive, send)

        async with served(links_elsewhere) as url:
            for name, value in {"HUBSPOT_API_BASE": url, "HUBSPOT_CLIENT_ID": "client-1",
                                "HUBSPOT_CLIENT_SECRET": "secret-1", "HUBSPOT_REFRESH_TOKEN": "refresh-1"}.items():
                monkeypatch.setenv(name, value)
            hubspot.state.standin.max_page_size = 2
            ada = hubspot.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
            for i in range(5):
                hubspot.state.data.add_note(ada, f"call {i}")
            policy = http_policy(tmp_path, {"crm_hubspot": http_system(
                "http/hubspot.yaml", "HubSpot CRM", vars={"blocklist_email": False})})
            crm = connector(policy, "crm_hubspot", pool)
            try:
                with pytest.raises(PermanentConnectorError, match="another host than HubSpot's configured one"):
                    await collect(crm, subject("ada@example.com"))
            finally:
                await crm.close()
    assert elsewhere.seen == []


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
