"""Fuzz the API from its own OpenAPI document (schemathesis): whatever the input, valid or not,
no operation answers 5xx.

The app is served by uvicorn over loopback with a worker, both on an event loop of their own in
a background thread (schemathesis calls synchronously), against the session's Postgres, Temporal
dev server and SMTP sink. Calls carry an admin token, so staff operations run their real code.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from api.app import create_app
from api.read_models.request_queries import RequestSummary
from api.rest.events import AuditEvent
from api.rest.openapi_examples import NEW_REQUEST
from dsrflow.infra.db import create_pool
from dsrflow.infra.temporal_client import connect_client
from dsrflow.settings import Settings
from dsrflow.stores.staff_tokens import issue_token
from schemas.requests import NewRequest
from tests.fanout_stack import loopback_socket, serve
from workers.dsr_worker import build_worker

# Each operation gets its schema examples and this many generated calls, valid and invalid. The
# coverage phase (hundreds of boundary cases per operation, however many examples are asked for)
# stays off so the run stays well under a minute.
EXAMPLES_PER_OPERATION = 10
FUZZ_CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}})


@dataclass
class ServedApi:
    base_url: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def served_api(settings, dev_server) -> Iterator[ServedApi]:
    sock, port = loopback_socket()
    app_settings = settings.model_copy(update={
        "temporal_address": dev_server.client.service_client.config.target_host,
        "task_queue": f"fuzz-{uuid.uuid4().hex[:8]}", "public_url": f"http://127.0.0.1:{port}",
    })
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzzed-api", daemon=True)
    thread.start()

    async def start():
        client = await connect_client(app_settings)
        pool = await create_pool(app_settings.effective_database_url)
        worker = build_worker(client, app_settings, pool)
        await worker.__aenter__()
        server, task = await serve(create_app(app_settings, temporal_client=client), sock)
        _, token = await issue_token(pool, "admin", "fuzz")
        return pool, worker, server, task, token

    def run(coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    pool, worker, server, task, token = run(start())
    try:
        yield ServedApi(f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"})
    finally:
        async def stop():
            server.should_exit = True
            await task
            await worker.__aexit__(None, None, None)
            await pool.close()

        run(stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# schemathesis's own strategies use `random`; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

# The OpenAPI document the served app publishes, read at collection (one test per operation).
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi(), config=FUZZ_CONFIG)


@schema.parametrize()
@hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
                     suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case, served_api):
    case.call_and_validate(base_url=served_api.base_url, headers=served_api.headers,
                           checks=[not_a_server_error], timeout=30)


@pytest.mark.parametrize("name", sorted(NEW_REQUEST))
def test_documented_request_examples_are_valid(name):
    NewRequest.model_validate(NEW_REQUEST[name]["value"])


@pytest.mark.parametrize("model", [RequestSummary, AuditEvent])
def test_documented_response_examples_are_valid(model):
    for example in model.model_json_schema()["examples"]:
        model.model_validate(example)
