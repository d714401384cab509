"""OpenDSR v2 end to end over loopback: discovery, signed callbacks, erasure jobs and their
restart, against the demo e-mail marketing processor served by uvicorn on its own database."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from activities.connectors.base import Subject
from activities.connectors.opendsr import (
    discovery_url_for,
    outcome_from_status,
    subject_request_id,
    systems_for_processor_domain,
)
from activities.connectors.opendsr_documents import reported_count
from activities.connectors.opendsr_signature import (
    DOMAIN_HEADER,
    SIGNATURE_HEADER,
    ProcessorCertificates,
    generate_processor_identity,
    sign,
    verify,
)
from activities.shared_connections import SharedConnections
from devstack.demo.email_marketing_db import email_hash
from devstack.processes import free_port
from tests.opendsr.support import (
    Receiver,
    Served,
    connector_for,
    population_subscribers,
    processor_app,
)
from tests.support import fetch_rows


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
    assert await fetch_rows(processor_db, "SELECT id FROM subscribers WHERE email = 'grace@example.com'")
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

    assert not await fetch_rows(processor_db, "SELECT 1 FROM subscribers WHERE email = 'grace@example.com'")
    assert not await fetch_rows(
        processor_db, "SELECT 1 FROM campaign_activity a LEFT JOIN subscribers s ON s.id = a.subscriber_id "
        "WHERE s.id IS NULL"
    )
    assert await fetch_rows(processor_db, "SELECT 1 FROM suppressions WHERE email_sha256 = $1 AND reason = 'erasure'",
                       email_hash("grace@example.com"))
    # The processor's request log holds hashes, never the address.
    rows = await fetch_rows(processor_db, "SELECT identity_hashes::text AS h FROM dsr_requests")
    assert all("grace" not in r["h"] for r in rows)


@pytest.mark.parametrize(("stated", "count"), [
    (0, 0), (7, 7), (2**31 - 1, 2**31 - 1),
    (-1, None), (2**31, None), (True, None), (3.0, None), ("3", None), (None, None), ([1], None)])
def test_a_processors_count_is_taken_only_as_a_count_a_task_can_keep(stated, count) -> None:
    """A signed callback's count settles its task without a poll, so only a whole number that
    system_tasks can store is one; anything else is not stated (the poll asks, and counts 0)."""
    document = {"request_status": "completed", "results_count": stated}
    assert reported_count(document) == count
    assert outcome_from_status(document).changed == (count or 0)


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
    rows = await fetch_rows(processor_db, "SELECT 1 FROM dsr_requests WHERE subject_request_id = $1", a.external_id)
    assert len(rows) == 1
    await asyncio.sleep(0.5)
    assert recorder.count(a.external_id) == 1
    # Another request, another action: other ids.
    assert subject_request_id(str(uuid.uuid4()), "email_marketing", "erasure") != a.external_id
    assert subject_request_id(subject.request_id, "email_marketing", "access") != a.external_id
    assert uuid.UUID(a.external_id).version == 4


async def test_a_worker_asks_for_discovery_once_and_keeps_its_connections(
    processor_db: str, identity: tuple[bytes, bytes], receiver: tuple[Receiver, str]
) -> None:
    """In a worker (shared connections), each task opens its own connector: the discovery
    document is read once and the processor's connection is kept from one task to the next; a
    connector of its own (outside a worker) reads it for itself and closes its connection."""
    _, callback_url = receiver
    port = free_port()
    app = processor_app(processor_db, identity, port, delay=0.0)
    calls: list[tuple[str, str, int]] = []

    @app.middleware("http")
    async def record(request, call_next):  # type: ignore[no-untyped-def]
        calls.append((request.method, request.url.path, request.client.port))
        return await call_next(request)

    served = await Served(app, port).start()
    shared = SharedConnections()
    emails = population_subscribers()[6:9]  # subjects no other test here erases
    try:
        for email in emails:  # one task per subject, a connector each, as the fan-out does
            connector = connector_for(served.url + "/opendsr", callback_url, connections=shared)
            try:
                outcome = await connector.erase(Subject(request_id=str(uuid.uuid4()), email=email))
                assert outcome.status == "pending"
            finally:
                await connector.close()
        assert [path for _, path, _ in calls].count("/opendsr/discovery") == 1
        assert [path for _, path, _ in calls].count("/opendsr/requests") == 3
        assert len({port for _, _, port in calls}) == 1  # one connection for all four calls

        alone = connector_for(served.url + "/opendsr", callback_url)
        try:
            await alone.erase(Subject(request_id=str(uuid.uuid4()), email=emails[0]))
        finally:
            await alone.close()
        assert [path for _, path, _ in calls].count("/opendsr/discovery") == 2
    finally:
        await shared.close()
        await served.stop()


async def test_a_callback_answered_409_is_not_sent_again(
    processor: str, processor_db: str, receiver: tuple[Receiver, str]
) -> None:
    """409 is the controller saying it has this very body already (its answer to an earlier
    attempt was lost): the processor stops there, as after a success, and keeps nothing due."""
    recorder, callback_url = receiver
    connector = connector_for(processor, callback_url)
    subject = Subject(request_id=str(uuid.uuid4()), email=population_subscribers()[9])
    job = subject_request_id(subject.request_id, "email_marketing", "erasure")
    recorder.answer_409.add(job)
    refused = recorder.refused
    try:
        outcome = await connector.erase(subject)
        query = "SELECT request_status, callbacks_due FROM dsr_requests WHERE subject_request_id = $1"
        for _ in range(200):
            [row] = await fetch_rows(processor_db, query, outcome.external_id)
            if row["request_status"] == "completed" and not row["callbacks_due"]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the callback is still due: {row}")
        await asyncio.sleep(1)  # several of the processor's retry pauses (0.1 s, doubling)
    finally:
        await connector.close()
    assert outcome.external_id == job
    assert recorder.refused - refused == 1  # one attempt, not retried


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


@pytest.mark.parametrize("in_worker", [False, True], ids=["own-client", "worker-kept-client"])
async def test_pending_requests_survive_a_restart(
    processor_db: str, identity: tuple[bytes, bytes], receiver: tuple[Receiver, str], in_worker: bool
) -> None:
    """The processor restarts between the submit and the status poll; in a worker the poll comes
    from another task's connector, over the connection kept open from the submit."""
    recorder, callback_url = receiver
    port = free_port()
    served = await Served(processor_app(processor_db, identity, port, delay=1.5), port).start()
    shared = SharedConnections() if in_worker else None
    connector = connector_for(served.url + "/opendsr", callback_url, connections=shared)
    email = population_subscribers()[2 if not in_worker else 5]
    subject = Subject(request_id=str(uuid.uuid4()), email=email)
    try:
        outcome = await connector.erase(subject)
        await served.stop()  # before the delay is over
        [row] = await fetch_rows(processor_db, "SELECT request_status FROM dsr_requests WHERE subject_request_id = $1",
                            outcome.external_id)
        assert row["request_status"] == "pending"
        served = await Served(processor_app(processor_db, identity, port, delay=1.5), port).start()
        await recorder.wait_for(outcome.external_id, "completed")
        poller = connector_for(served.url + "/opendsr", callback_url, connections=shared) if in_worker else connector
        assert (await poller.status(subject, outcome.external_id)).status == "done"
    finally:
        await connector.close()
        if shared is not None:
            await shared.close()
        await served.stop()
    assert not await fetch_rows(processor_db, "SELECT 1 FROM subscribers WHERE email = $1", email)
