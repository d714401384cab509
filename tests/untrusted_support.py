"""Stand-ins for the untrusted-input tests: an OpenDSR processor whose discovery and certificate
fetches are counted (and can be broken), a host that records whoever calls it, and the API served
over HTTP with a policy naming that processor."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activities.connectors.opendsr import subject_request_id
from activities.connectors.opendsr_signature import (
    SIGNATURE_HEADER,
    generate_processor_identity,
    sign,
)
from devstack.processes import free_port
from dsrflow.settings import Settings
from schemas.workflow import workflow_id_for
from tests.apps import lent_app
from tests.conftest import database_pool
from tests.fanout_stack import served
from tests.process_support import answering, died, dsrflow_process
from tests.support import english_only, letters_for, live_client, staff_headers, text_of, unique_email
from tests.yaml_files import dump_yaml, read_yaml
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow

PROCESSOR = "forged_proc"
CALLBACK = f"/v1/callbacks/opendsr?system={PROCESSOR}"


@dataclass
class FakeProcessor:
    """An OpenDSR processor over loopback: discovery names its certificate; erasure jobs stay
    pending; status says completed (or `job_status`) with a `results_url` the test chooses."""

    key_pem: bytes
    cert_pem: bytes
    broken: bool = False
    results_url: str | None = None
    hits: list[str] = field(default_factory=list)
    url: str = ""
    certificate_at: str = "/opendsr/cert.pem"  # where discovery says the certificate is
    job_status: str = "completed"  # what status says of every job

    def signed(self, document: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(document).encode()
        return body, {SIGNATURE_HEADER: sign(body, self.key_pem), "Content-Type": "application/json"}

    def discovery_document(self, *, unsubscribe: bool = False) -> dict[str, Any]:
        """Its discovery document: access and erasure, raw e-mail identities, its certificate, and
        the `unsubscribe` extension if asked."""
        document: dict[str, Any] = {
            "api_version": "2.0", "processor_certificate": self.certificate_at,
            "supported_subject_request_types": ["access", "erasure"],
            "supported_identities": [{"identity_type": "email", "identity_format": "raw"}]}
        if unsubscribe:
            document["extensions"] = {"unsubscribe": {"url": f"{self.url}/opendsr/unsubscribe"}}
        return document

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            self.hits.append("discovery")
            if self.broken:
                return JSONResponse({"error": "internal"}, status_code=500)
            return JSONResponse(self.discovery_document())

        async def certificate(request: Request) -> Response:
            self.hits.append("certificate")
            return Response(self.cert_pem, media_type="application/x-pem-file")

        async def submit(request: Request) -> Response:
            body = await request.json()
            return JSONResponse({"subject_request_id": body["subject_request_id"],
                                 "expected_completion_time": "2099-01-01T00:00:00Z"}, status_code=201)

        async def status(request: Request) -> Response:
            return JSONResponse({"subject_request_id": request.path_params["rid"], "request_status": self.job_status,
                                 "results_url": self.results_url})

        return Starlette(routes=[
            Route("/opendsr/discovery", discovery), Route("/opendsr/cert.pem", certificate),
            Route("/opendsr/requests", submit, methods=["POST"]), Route("/opendsr/requests/{rid}", status),
        ])


def fake_processor() -> FakeProcessor:
    key_pem, cert_pem = generate_processor_identity("127.0.0.1")
    return FakeProcessor(key_pem, cert_pem)


@contextlib.asynccontextmanager
async def running_processor() -> AsyncIterator[FakeProcessor]:
    """A fake processor served on loopback, its `url` set, for the block."""
    fake = fake_processor()
    async with served(fake.app()) as url:
        fake.url = url
        yield fake


@dataclass
class Recorder:
    """A host nobody configured: records the headers of every request that reaches it."""

    seen: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def anything(request: Request) -> Response:
            self.seen.append(dict(request.headers))
            return JSONResponse({"datasets": {"stolen": [{"x": 1}]}, "results": []})

        return Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])


def processor_policy(tmp: Path, lifecycle_policy: Path, system_config: dict[str, Any]) -> Path:
    """The lifecycle policy with one OpenDSR system, `forged_proc`."""
    content = read_yaml(lifecycle_policy)
    content["systems"] = {PROCESSOR: {"label": "Forged processor", "connector": "opendsr",
                                      "config": {"origin": "observed", **system_config}}}
    english_only(content)
    path = tmp / f"policy-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(dump_yaml(content, sort_keys=False))
    return path


@contextlib.asynccontextmanager
async def api_over_http(settings: Settings, client, **updates: Any) -> AsyncIterator[str]:
    """The real app on uvicorn (so bodies arrive as a real server delivers them)."""
    async with lent_app(settings.model_copy(update=updates), temporal_client=client) as app, served(app) as url:
        yield url


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def pending_erasure(http: httpx.AsyncClient, pool: asyncpg.Pool) -> tuple[str, str]:
    """An erasure the fan-out has submitted to the processor: (its request id, its job id), once
    the task waits."""
    created = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "identity_attested": True, "subject": {"email": unique_email("cb")}})
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    for _ in range(300):
        external_id = await pool.fetchval(
            "SELECT external_id FROM system_tasks WHERE request_id = $1 AND system = $2 AND status = 'pending'",
            uuid.UUID(request_id), PROCESSOR)
        if external_id:
            assert external_id == subject_request_id(request_id, PROCESSOR, "erasure")
            return request_id, external_id
        await asyncio.sleep(0.1)
    raise AssertionError("the erasure never reached the processor")


@dataclass
class KilledCallback:
    """What `callback_killed_before_telling` leaves: our settings and pool, a client of the API's
    address, the erasure's request id, and the callback as the processor sent it."""

    settings: Settings
    pool: asyncpg.Pool
    http: httpx.AsyncClient
    request_id: str
    body: bytes
    headers: dict[str, str]


@contextlib.asynccontextmanager
async def callback_killed_before_telling(postgres: Any, settings: Settings, client: Any, lifecycle_policy: Path,
                                         task_queue: str, tmp_path: Path, database: str,
                                         ) -> AsyncIterator[KilledCallback]:
    """An erasure at a forged OpenDSR processor on a database of its own, a worker running
    throughout, and the processor's signed "completed" callback (3 records erased) sent to an
    `dsrflow api` process that dies once the callback is recorded, before it tells the task. The
    processor expects to finish in 2099, so the task's first poll is five minutes away. On
    leaving, no API runs: the test starts one, or not."""
    processor = fake_processor()
    async with served(processor.app()) as url, database_pool(postgres, database) as (database_url, pool):
        processor.url = url
        port = free_port()
        ours = settings.model_copy(update={
            "database_url": database_url, "task_queue": task_queue, "api_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "policy_path": processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{url}/opendsr"})})
        async with build_worker(client, ours, pool, task_queue=task_queue), \
                live_client(base_url=ours.public_url, timeout=30) as http:
            async with dsrflow_process("api", ours, client, tmp_path, failpoints="callback-recorded") as first:
                await answering(http, first, tmp_path)
                request_id, external_id = await pending_erasure(http, pool)
                body, headers = processor.signed({
                    "subject_request_id": external_id, "request_status": "completed", "results_count": 3,
                    "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))})
                try:
                    await http.post(CALLBACK, content=body, headers=headers)
                except httpx.TransportError:
                    pass  # the API died answering it, as it should
                else:
                    raise AssertionError("the API answered the callback instead of dying once it was recorded")
                await died(first, tmp_path, role="api")
            yield KilledCallback(ours, pool, http, request_id, body, headers)


async def staff_read_the_processors_fault(env: Any, settings: Settings, pool: asyncpg.Pool, mail_sink: Any,
                                          said: str) -> str:
    """An erasure at PROCESSOR (under `settings`, on the time-skipping `env`) whose task fails on
    every try: once its retries run out (minutes of backoff, skipped) the task needs staff, and the
    request's page, the staff alert and the task's row each say `said`. Returns the request's id."""
    async with build_worker(env.client, settings, pool, task_queue=settings.task_queue), \
            api_over_http(settings, env.client) as url, live_client(base_url=url) as http:
        created = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "type": "erasure", "identity_attested": True, "subject": {"email": unique_email("hostile")}})
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        handle = env.client.get_workflow_handle(workflow_id_for(request_id))
        for _ in range(200):
            state = await handle.query(DataSubjectRequestWorkflow.state)
            if any(r.status == "needs_attention" for r in state.results):
                break
            await env.sleep(timedelta(minutes=5))
            await asyncio.sleep(0.05)
        (task,) = state.results
        page = await http.get(f"/v1/requests/{request_id}", headers=await staff_headers(pool, "agent"))
        await handle.terminate("test over")
    assert (task.system, task.status, task.message) == (PROCESSOR, "needs_attention", said)
    assert said in page.text
    (alert,) = letters_for(mail_sink, request_id, "staff_alert")
    assert said in " ".join(text_of(alert).split())
    assert await pool.fetchval("SELECT message FROM system_tasks WHERE request_id = $1", uuid.UUID(request_id)) == said
    return request_id
