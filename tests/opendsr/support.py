"""Fixtures for the OpenDSR tests: the demo e-mail marketing processor served on its own
database, a callback receiver, and a connector pointed at both."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from activities.connectors import build_connector
from activities.connectors.base import ConnectorEnv
from activities.connectors.opendsr import (
    OpenDsrConnector,
)
from activities.shared_connections import SharedConnections
from devstack.demo.email_marketing import create_email_marketing_app
from devstack.demo.email_marketing_db import ensure_email_marketing_database
from devstack.demo.subjects import demo_subjects
from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port
from dsrflow.settings import Settings
from policy.model import load_policy
from policy.systems import System
from tests.processor_identity import processor_identity

CALLBACK_PATH = "/v1/callbacks/opendsr"


class Served:
    """An ASGI app on a real uvicorn server in its own thread (and event loop), on a free port."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def start(self) -> Served:
        self.thread.start()
        for _ in range(300):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited while starting")
            await asyncio.sleep(0.05)
        raise RuntimeError("uvicorn did not start")

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.to_thread(self.thread.join, 15)


@dataclass
class Receiver:
    """The controller's callback endpoint, minus the checking: it records what arrives."""

    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    fail_next: int = 0  # answer this many callbacks with 503 first
    refused: int = 0
    answer_409: set[str] = field(default_factory=set)  # job ids whose callbacks we "have already"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post(CALLBACK_PATH)
        async def callback(request: Request) -> Response:
            body = await request.body()
            if any(job.encode() in body for job in self.answer_409):
                self.refused += 1
                return Response(status_code=409)
            if self.fail_next > 0:
                self.fail_next -= 1
                self.refused += 1
                return Response(status_code=503)
            self.received.append((body, {k.lower(): v for k, v in request.headers.items()}))
            return Response(status_code=204)

        return app

    async def wait_for(self, request_id: str, status: str, timeout: float = 20) -> tuple[bytes, dict[str, str]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for body, headers in self.received:
                # The test peeks before verifying only to pick the right message; the assertions
                # below verify before trusting anything in it.
                if request_id.encode() in body and f'"request_status":"{status}"'.encode() in body:
                    return body, headers
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {status} callback for {request_id} within {timeout}s")

    def count(self, request_id: str) -> int:
        return sum(request_id.encode() in body for body, _ in self.received)


@pytest.fixture(scope="module")
def identity() -> tuple[bytes, bytes]:
    return processor_identity()


@pytest.fixture(scope="module")
async def processor_db(postgres: EmbeddedPostgres) -> str:
    url = postgres.url(f"email_{uuid.uuid4().hex[:10]}")
    await ensure_email_marketing_database(postgres, url)
    return url


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    recorder = Receiver()
    served = await Served(recorder.app()).start()
    yield recorder, served.url + CALLBACK_PATH
    await served.stop()


def processor_app(database_url: str, identity: tuple[bytes, bytes], port: int, delay: float) -> FastAPI:
    key_pem, cert_pem = identity
    return create_email_marketing_app(
        database_url, public_url=f"http://127.0.0.1:{port}", key_pem=key_pem, cert_pem=cert_pem,
        completion_delay=delay, callback_backoff=0.1,
    )


@pytest.fixture(scope="module")
async def processor(processor_db: str, identity: tuple[bytes, bytes]) -> AsyncIterator[str]:
    """The processor's OpenDSR base URL."""
    port = free_port()
    served = await Served(processor_app(processor_db, identity, port, delay=0.5), port).start()
    yield served.url + "/opendsr"
    await served.stop()


def connector_for(base_url: str, callback_url: str, connections: SharedConnections | None = None,
                  **config) -> OpenDsrConnector:
    system = System(
        label="Email marketing (demo)",
        connector="opendsr",
        # Through expand_env, as the policy writes it.
        config={"base_url": "${DSRFLOW_TEST_UNSET_EMAIL_URL:-" + base_url + "}", "poll_interval_seconds": 0.2, **config},
    )
    env = ConnectorEnv(
        system_name="email_marketing", system=system, policy=load_policy().policy, settings=Settings(),
        secret=b"0" * 32, callback_url=callback_url, connections=connections,
    )
    connector = build_connector(env)
    assert isinstance(connector, OpenDsrConnector)
    return connector


def population_subscribers() -> list[str]:
    """Subscribers other than the README's named subjects, for tests that change them."""
    return [s.email for s in demo_subjects() if s.in_email_marketing and s.index >= 3]
