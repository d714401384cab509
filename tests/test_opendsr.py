"""OpenDSR v2 end to end over loopback: the demo email-marketing processor served by uvicorn on its
own Postgres database, the controller-side connector, and a small HTTP receiver standing in for
the API's callback endpoint."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from activities.connectors import build_connector
from activities.connectors.base import ConnectorEnv, PermanentConnectorError, Subject
from activities.connectors.opendsr import (
    OpenDsrConnector,
    OpenDsrUnavailable,
    discovery_url_for,
    outcome_from_status,
    subject_request_id,
    systems_for_processor_domain,
)
from activities.connectors.opendsr_signature import (
    DOMAIN_HEADER,
    SIGNATURE_HEADER,
    ProcessorCertificates,
    generate_processor_identity,
    sign,
    verify,
)
from devstack.demo.email_marketing import create_email_marketing_app
from devstack.demo.email_marketing_db import email_hash, ensure_email_marketing_database
from devstack.demo.subjects import demo_subjects
from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port
from policy.model import System, load_policy

CALLBACK_PATH = "/v1/callbacks/opendsr"


class Served:
    """An ASGI app on a real uvicorn server in its own thread (and event loop), on a free port."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
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

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post(CALLBACK_PATH)
        async def callback(request: Request) -> Response:
            body = await request.body()
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
    return generate_processor_identity("127.0.0.1")


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


def connector_for(base_url: str, callback_url: str, **config) -> OpenDsrConnector:
    system = System(
        label="Email marketing (demo)",
        connector="opendsr",
        # Through expand_env, as the policy writes it.
        config={"base_url": "${DSRFLOW_TEST_UNSET_EMAIL_URL:-" + base_url + "}", "poll_interval_seconds": 0.2, **config},
    )
    env = ConnectorEnv(
        system_name="email_marketing", system=system, policy=load_policy().policy, settings=None,
        secret=b"0" * 32, callback_url=callback_url,
    )
    connector = build_connector(env)
    assert isinstance(connector, OpenDsrConnector)
    return connector


def population_subscribers() -> list[str]:
    """Subscribers other than the README's named subjects, for tests that change them."""
    return [s.email for s in demo_subjects() if s.in_email_marketing and s.index >= 3]


async def fetch(url: str, query: str, *args):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def test_discovery_and_certificate(processor: str, identity: tuple[bytes, bytes]) -> None:
    async with httpx.AsyncClient() as http:
        document = (await http.get(processor + "/discovery")).json()
    assert document["api_version"] == "2.0"
    assert {"identity_type": "email", "identity_format": "raw"} in document["supported_identities"]
    assert set(document["supported_subject_request_types"]) == {"access", "portability", "erasure"}
    assert document["processor_certificate"] == processor + "/cert.pem"
    certificates = ProcessorCertificates()
    try:
        assert await certificates.get(processor + "/discovery") == identity[1]
    finally:
        await certificates.aclose()


async def test_erasure_completes_through_a_signed_callback(
    processor: str, processor_db: str, receiver: tuple[Receiver, str]
) -> None:
    recorder, callback_url = receiver
    assert await fetch(processor_db, "SELECT id FROM subscribers WHERE email = 'grace@example.com'")
    recorder.fail_next = 1  # the first delivery fails: the processor must retry
    connector = connector_for(processor, callback_url)
    subject = Subject(request_id=str(uuid.uuid4()), email="grace@example.com", name="Grace Hopper")
    try:
        outcome = await connector.erase(subject)
        assert outcome.status == "pending"
        assert outcome.external_id == subject_request_id(subject.request_id, "email_marketing", "erasure")
        assert (await connector.status(subject, outcome.external_id)).status in ("pending", "done")

        body, headers = await recorder.wait_for(outcome.external_id, "completed")
        assert recorder.refused >= 1
        # What the API's callback endpoint does: verify the raw body first, then parse.
        certificates = ProcessorCertificates()
        try:
            policy = connector.env.policy.model_copy(update={"systems": {"email_marketing": connector.env.system}})
            [(name, system)] = systems_for_processor_domain(policy, headers[DOMAIN_HEADER.lower()])
            assert name == "email_marketing"
            discovery_url = discovery_url_for(system)
            assert await certificates.verify(discovery_url, body, headers[SIGNATURE_HEADER.lower()])
            assert verify(body, headers[SIGNATURE_HEADER.lower()], await certificates.get(discovery_url))
        finally:
            await certificates.aclose()
        assert headers[DOMAIN_HEADER.lower()] == "127.0.0.1"
        callback = json.loads(body)
        assert callback["subject_request_id"] == outcome.external_id
        assert callback["status_callback_url"] == callback_url
        assert callback["request_status"] == "completed"
        assert callback["controller_id"] and callback["expected_completion_time"] and callback["api_version"]
        assert "results_url" not in callback
        assert outcome_from_status(callback).status == "done"

        done = await connector.status(subject, outcome.external_id)
        assert done.status == "done" and done.changed >= 1
    finally:
        await connector.close()

    assert not await fetch(processor_db, "SELECT 1 FROM subscribers WHERE email = 'grace@example.com'")
    assert not await fetch(
        processor_db, "SELECT 1 FROM campaign_activity a LEFT JOIN subscribers s ON s.id = a.subscriber_id "
        "WHERE s.id IS NULL"
    )
    assert await fetch(processor_db, "SELECT 1 FROM suppressions WHERE email_sha256 = $1 AND reason = 'erasure'",
                       email_hash("grace@example.com"))
    # The processor's request log holds hashes, never the address.
    rows = await fetch(processor_db, "SELECT identity_hashes::text AS h FROM dsr_requests")
    assert all("grace" not in r["h"] for r in rows)


def test_verify_rejects_tampering_and_garbage(identity: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = identity
    body = b'{"request_status":"completed","subject_request_id":"00000000-0000-4000-8000-000000000000"}'
    signature = sign(body, key_pem)
    assert verify(body, signature, cert_pem)
    assert not verify(body.replace(b"completed", b"cancelled"), signature, cert_pem)
    other_key, other_cert = generate_processor_identity("evil.example")
    assert not verify(body, sign(body, other_key), cert_pem)
    assert not verify(body, signature, other_cert)
    for garbage in ("", "not base64!!", "AAAA", signature[:-8]):
        assert not verify(body, garbage, cert_pem)
    assert not verify(body, signature, b"not a certificate")
    assert not verify(body, signature, b"")


async def test_retried_erase_is_one_job(
    processor: str, processor_db: str, receiver: tuple[Receiver, str]
) -> None:
    recorder, callback_url = receiver
    email = population_subscribers()[0]
    subject = Subject(request_id=str(uuid.uuid4()), email=email)
    first, second = connector_for(processor, callback_url), connector_for(processor, callback_url)
    try:
        a = await first.erase(subject)
        b = await second.erase(subject)  # an activity retry: a new connector, the same request
        assert a.external_id == b.external_id
        await recorder.wait_for(a.external_id, "completed")
        c = await first.erase(subject)  # even after completion
        assert c.external_id == a.external_id
        assert (await first.status(subject, a.external_id)).status == "done"
    finally:
        await first.close()
        await second.close()
    rows = await fetch(processor_db, "SELECT 1 FROM dsr_requests WHERE subject_request_id = $1", a.external_id)
    assert len(rows) == 1
    await asyncio.sleep(0.5)
    assert recorder.count(a.external_id) == 1
    # Another request, another action: other ids.
    assert subject_request_id(str(uuid.uuid4()), "email_marketing", "erasure") != a.external_id
    assert subject_request_id(subject.request_id, "email_marketing", "access") != a.external_id
    assert uuid.UUID(a.external_id).version == 4


async def test_same_id_for_a_different_request_is_refused(processor: str) -> None:
    request_id = str(uuid.uuid4())
    body = {
        "subject_request_id": request_id, "subject_request_type": "access", "regulation": "gdpr",
        "submitted_time": "2026-06-17T10:00:00Z",
        "subject_identities": [{"identity_type": "email", "identity_value": "nobody@example.net",
                                "identity_format": "raw"}],
    }
    async with httpx.AsyncClient() as http:
        assert (await http.post(processor + "/requests", json=body)).status_code == 201
        assert (await http.post(processor + "/requests", json=body)).status_code == 201
        assert (await http.post(processor + "/requests", json={**body, "subject_request_type": "erasure"})).status_code == 409
        invalid = await http.post(processor + "/requests", json={**body, "subject_request_id": "ABC"})
        assert invalid.status_code == 400 and invalid.json()["error"]["code"] == 400
        assert "nobody" not in invalid.text
        cancelled = await http.delete(f"{processor}/requests/{request_id}")
        assert cancelled.status_code == 202
        status = (await http.get(f"{processor}/requests/{request_id}")).json()
        assert status["request_status"] == "cancelled"
        assert outcome_from_status(status).status == "needs_attention"
        assert (await http.delete(f"{processor}/requests/{request_id}")).status_code == 400


async def test_access_returns_ada_records(processor: str, processor_db: str, receiver: tuple[Receiver, str]) -> None:
    _, callback_url = receiver
    connector = connector_for(processor, callback_url)
    subject = Subject(request_id=str(uuid.uuid4()), email="Ada@Example.com ")
    try:
        records = [record async for record in connector.access(subject)]
    finally:
        await connector.close()
    subscribers = [r for r in records if r.dataset == "subscribers"]
    activity = [r for r in records if r.dataset == "campaign_activity"]
    assert len(subscribers) == 1
    assert subscribers[0].fields["email"] == "ada@example.com"
    assert subscribers[0].fields["first_name"] == "Ada" and subscribers[0].provided
    assert activity and all(not r.provided for r in activity)
    assert {r.fields["event"] for r in activity} <= {"sent", "open", "click"}
    assert all(r.category == "marketing" for r in records)
    expected = await fetch(
        processor_db,
        "SELECT a.id FROM campaign_activity a JOIN subscribers s ON s.id = a.subscriber_id WHERE s.email = $1",
        "ada@example.com",
    )
    assert len(activity) == len(expected)


async def test_results_need_the_token(processor: str, receiver: tuple[Receiver, str]) -> None:
    recorder, callback_url = receiver
    connector = connector_for(processor, callback_url)
    subject = Subject(request_id=str(uuid.uuid4()), email="ada@example.com")
    try:
        _ = [record async for record in connector.access(subject)]
    finally:
        await connector.close()
    external_id = subject_request_id(subject.request_id, "email_marketing", "access")
    body, _ = await recorder.wait_for(external_id, "completed")
    results_url = json.loads(body)["results_url"]
    async with httpx.AsyncClient() as http:
        assert (await http.get(results_url)).status_code == 200
        assert (await http.get(results_url.split("?")[0])).status_code == 403
        assert (await http.get(results_url.split("?")[0] + "?token=guess")).status_code == 403


async def test_objection_and_unsupported_actions(
    processor: str, processor_db: str, receiver: tuple[Receiver, str]
) -> None:
    _, callback_url = receiver
    email = population_subscribers()[1]
    connector = connector_for(processor, callback_url)
    subject = Subject(request_id=str(uuid.uuid4()), email=email)
    try:
        outcome = await connector.object(subject, "direct_marketing")
        assert (outcome.status, outcome.found, outcome.changed) == ("done", 1, 1)
        again = await connector.object(subject, "direct_marketing")
        assert (again.status, again.found, again.changed) == ("done", 1, 0)
        stranger = await connector.object(Subject(request_id="r", email="stranger@example.net"), "direct_marketing")
        assert stranger.status == "not_found"
        assert (await connector.object(subject, "profiling")).status == "not_found"
        for outcome in (
            await connector.rectify(subject, {"name": "X"}),
            await connector.restrict(subject),
            await connector.lift_restriction(subject),
        ):
            assert outcome.status == "needs_attention" and "manually" in outcome.message
    finally:
        await connector.close()
    [row] = await fetch(processor_db, "SELECT subscribed, unsubscribed_at FROM subscribers WHERE email = $1", email)
    assert row["subscribed"] is False and row["unsubscribed_at"] is not None
    assert await fetch(processor_db, "SELECT 1 FROM suppressions WHERE email_sha256 = $1", email_hash(email))


async def test_client_errors_are_permanent_and_outages_are_not(processor: str, receiver: tuple[Receiver, str]) -> None:
    _, callback_url = receiver
    subject = Subject(request_id=str(uuid.uuid4()), email="ada@example.com")
    wrong_path = connector_for(processor + "/v9", callback_url)
    known = connector_for(processor, callback_url)
    nobody_home = connector_for(f"http://127.0.0.1:{free_port()}/opendsr", callback_url)
    try:
        with pytest.raises(PermanentConnectorError, match=r"email_marketing.*HTTP 404"):
            await wrong_path.erase(subject)
        with pytest.raises(PermanentConnectorError, match=r"email_marketing.*HTTP 404"):
            await known.status(subject, str(uuid.uuid4()))
        with pytest.raises(OpenDsrUnavailable) as outage:
            await nobody_home.erase(subject)
        assert not isinstance(outage.value, PermanentConnectorError)
    finally:
        for connector in (wrong_path, known, nobody_home):
            await connector.close()


async def test_pending_requests_survive_a_restart(
    processor_db: str, identity: tuple[bytes, bytes], receiver: tuple[Receiver, str]
) -> None:
    recorder, callback_url = receiver
    port = free_port()
    served = await Served(processor_app(processor_db, identity, port, delay=1.5), port).start()
    connector = connector_for(served.url + "/opendsr", callback_url)
    email = population_subscribers()[2]
    subject = Subject(request_id=str(uuid.uuid4()), email=email)
    try:
        outcome = await connector.erase(subject)
        await served.stop()  # before the delay is over
        [row] = await fetch(processor_db, "SELECT request_status FROM dsr_requests WHERE subject_request_id = $1",
                            outcome.external_id)
        assert row["request_status"] == "pending"
        served = await Served(processor_app(processor_db, identity, port, delay=1.5), port).start()
        await recorder.wait_for(outcome.external_id, "completed")
        assert (await connector.status(subject, outcome.external_id)).status == "done"
    finally:
        await connector.close()
        await served.stop()
    assert not await fetch(processor_db, "SELECT 1 FROM subscribers WHERE email = $1", email)


async def test_seeding_is_deterministic_and_idempotent(postgres: EmbeddedPostgres) -> None:
    digest = (
        "SELECT (SELECT count(*) FROM subscribers) AS subscribers, (SELECT count(*) FROM campaign_activity) AS activity, "
        "(SELECT md5(string_agg(concat_ws('|', id, email, first_name, last_name, subscribed, consent_at, source, "
        "unsubscribed_at), ',' ORDER BY id)) FROM subscribers) AS s, "
        "(SELECT md5(string_agg(concat_ws('|', subscriber_id, campaign, event, occurred_at, ip, user_agent), ',' "
        "ORDER BY subscriber_id, occurred_at, event)) FROM campaign_activity) AS a"
    )
    first, second = (postgres.url(f"email_seed_{uuid.uuid4().hex[:8]}") for _ in range(2))
    await ensure_email_marketing_database(postgres, first)
    [before] = await fetch(first, digest)
    await ensure_email_marketing_database(postgres, first)
    await ensure_email_marketing_database(None, second)  # creates the database itself
    [again] = await fetch(first, digest)
    [elsewhere] = await fetch(second, digest)
    assert dict(before) == dict(again) == dict(elsewhere)
    assert before["subscribers"] == sum(s.in_email_marketing for s in demo_subjects())
    emails = {r["email"] for r in await fetch(first, "SELECT email FROM subscribers")}
    assert {"ada@example.com", "grace@example.com"} <= emails
    assert "tracked@example.com" not in emails
    # Someone erased stays erased when the service starts again.
    await fetch(first, "DELETE FROM subscribers WHERE email = 'ada@example.com'")
    await ensure_email_marketing_database(postgres, first)
    assert not await fetch(first, "SELECT 1 FROM subscribers WHERE email = 'ada@example.com'")
