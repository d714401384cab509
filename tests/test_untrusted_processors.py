"""Attacks from the processors' side, each against the real API over HTTP (uvicorn, Postgres,
Temporal) or the connector that calls them: forged, replayed and stale OpenDSR callbacks, trust
anchors fetched from where they must not be, an answer that never ends, and a processor (or a
compromised SaaS API) pointing us at another host (docs/security.md, "Untrusted input and
processors"). Oversized bodies and /healthz: tests/test_untrusted_input.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest

from activities.connectors.base import PermanentConnectorError
from devstack.saas.hubspot import create_hubspot_app
from schemas.workflow import workflow_id_for
from tests.saas_support import collect, connector, http_policy, http_system, subject
from tests.support import assert_problem, live_client, staff_headers, staff_retry
from tests.test_untrusted_input import _count
from tests.untrusted_support import (
    CALLBACK,
    PROCESSOR,
    Recorder,
    api_over_http,
    pending_erasure,
    processor_policy,
    rfc3339,
    running_processor,
    served,
)
from workers.dsr_worker import build_worker

# -- OpenDSR callbacks -------------------------------------------------------------------------

@pytest.fixture
async def processor():
    async with running_processor() as fake:
        yield fake


async def test_forged_callbacks_do_not_make_us_fetch_or_leak(settings, pool, dev_server, processor, tmp_path,
                                                             lifecycle_policy):
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    # Other modules' tests on this worker's database record callbacks of a processor of this name.
    before = await pool.fetchval("SELECT coalesce(max(seq), 0) FROM audit_events")
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
    assert await _count(pool, "SELECT count(*) FROM audit_events WHERE actor = $1 AND seq > $2",
                        f"processor:{PROCESSOR}", before) == 0


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
        rid, external_id = await pending_erasure(http, pool)
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
    events = await pool.fetch("SELECT data FROM audit_events WHERE actor = $1 AND request_id = $2",
                              f"processor:{PROCESSOR}", uuid.UUID(rid))
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
