"""No clear-text personal data reaches the Temporal server: payloads and failures are encrypted."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    # The workflow sandbox re-imports this module; Rust extensions must not be imported twice.
    from dsrflow.crypto.payload_codec import EncryptionCodec, UnknownKeyError
    from tests.conftest import raw_client

EMAIL = "grace.hopper@example.com"


@activity.defn(name="codec_test_fail")
async def failing_activity(email: str) -> None:
    raise RuntimeError(f"no mailbox for {email}")


@workflow.defn(name="CodecTestWorkflow")
class CodecTestWorkflow:
    @workflow.run
    async def run(self, email: str) -> str:
        if email.startswith("fail"):
            await workflow.execute_activity(
                failing_activity, email, start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        return f"done for {email}"


async def _history_bytes(env, workflow_id: str) -> bytes:
    history = await raw_client(env).get_workflow_handle(workflow_id).fetch_history()
    return b"".join(event.SerializeToString() for event in history.events)


async def test_input_and_result_are_not_stored_in_clear(dev_server, task_queue):
    client = dev_server.client
    async with Worker(client, task_queue=task_queue, workflows=[CodecTestWorkflow]):
        wid = f"codec-{uuid.uuid4()}"
        result = await client.execute_workflow(CodecTestWorkflow.run, EMAIL, id=wid, task_queue=task_queue)
    assert result == f"done for {EMAIL}"  # our own client decodes
    raw = await _history_bytes(dev_server, wid)
    assert EMAIL.encode() not in raw
    assert b"binary/encrypted" in raw


async def test_failure_message_is_not_stored_in_clear(dev_server, task_queue):
    client = dev_server.client
    email = f"fail-{EMAIL}"
    async with Worker(client, task_queue=task_queue, workflows=[CodecTestWorkflow],
                      activities=[failing_activity]):
        wid = f"codec-{uuid.uuid4()}"
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(CodecTestWorkflow.run, email, id=wid, task_queue=task_queue)
    assert email in str(failure.value.cause.cause)  # decoded for us...
    raw = await _history_bytes(dev_server, wid)
    assert email.encode() not in raw  # ...but not on the server
    assert b"no mailbox" not in raw


async def test_keys_rotate_and_unknown_keys_are_named():
    old, new = ("k1", os.urandom(32)), ("k2", os.urandom(32))
    from temporalio.api.common.v1 import Payload

    sealed = (await EncryptionCodec([old]).encode([Payload(data=b"x")]))[0]
    assert sealed.metadata["encryption-key-id"] == b"k1"
    rotated = EncryptionCodec([new, old])  # new key first: encrypts with k2, still reads k1
    assert (await rotated.decode([sealed]))[0].data == b"x"
    assert (await rotated.encode([Payload(data=b"y")]))[0].metadata["encryption-key-id"] == b"k2"
    with pytest.raises(UnknownKeyError, match="k1"):
        await EncryptionCodec([new]).decode([sealed])


async def test_codec_endpoint_round_trip(settings, pool):
    import httpx

    from api.app import create_app
    from tests.support import staff_headers

    app = create_app(settings)
    headers = await staff_headers(pool, "compliance")
    plain = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                           "data": base64.b64encode(b'"hello"').decode()}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        encoded = (await http.post("/codec/encode", json=plain, headers=headers)).json()
        assert encoded["payloads"][0]["metadata"]["encoding"] == base64.b64encode(b"binary/encrypted").decode()
        decoded = (await http.post("/codec/decode", json=encoded, headers=headers)).json()
    assert decoded == plain


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def _sealed_email(settings) -> dict:
    """A payload as the worker leaves it on the Temporal server, holding a subject's address."""
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payload

    from dsrflow.crypto.keys import load_keyring

    sealed = EncryptionCodec(load_keyring(settings)).encrypt(
        Payload(metadata={"encoding": b"json/plain"}, data=f'"{EMAIL}"'.encode()))
    return json_format.MessageToDict(sealed)


async def test_codec_endpoint_decodes_nothing_for_a_caller_without_staff_credentials(settings, pool):
    import httpx

    from api.app import create_app
    from tests.support import staff_headers

    app = create_app(settings)
    body = {"payloads": [await _sealed_email(settings)]}
    origin = {"origin": settings.temporal_ui_url}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for headers in ({}, origin, {**origin, "authorization": "Bearer not-a-token"},
                        {**origin, "cookie": "dsrflow_session=forged"}):
            answer = await http.post("/codec/decode", json=body, headers=headers)
            assert answer.status_code == 401, headers
            assert EMAIL not in answer.text
        # An agent is staff, but a decoded history is the audit timeline told another way
        # (every staff action's input and actor), which is compliance's to read.
        agent = await http.post("/codec/decode", json=body, headers=await staff_headers(pool, "agent"))
        assert agent.status_code == 403 and EMAIL not in agent.text
        staff = await http.post("/codec/decode", json=body, headers=await staff_headers(pool, "compliance"))
    assert staff.status_code == 200
    assert base64.b64decode(staff.json()["payloads"][0]["data"]) == f'"{EMAIL}"'.encode()


async def test_codec_endpoint_marks_an_unencrypted_payload_instead_of_passing_it_through(settings, pool):
    import json

    import httpx

    from api.app import create_app
    from tests.support import staff_headers

    app = create_app(settings)
    clear = {"metadata": {"encoding": _b64(b"json/plain")}, "data": _b64(b'"planted by hand"')}
    body = {"payloads": [clear, await _sealed_email(settings)]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        answer = await http.post("/codec/decode", json=body, headers=await staff_headers(pool, "compliance"))
    assert answer.status_code == 200
    marked, decoded = answer.json()["payloads"]
    assert marked != clear
    assert base64.b64decode(marked["metadata"]["dsrflow-unencrypted"]) == b"true"
    shown = json.loads(base64.b64decode(marked["data"]))
    assert shown["warning"].startswith("NOT ENCRYPTED") and shown["data"] == '"planted by hand"'
    # The encrypted one beside it is decoded as usual, without a mark.
    assert "dsrflow-unencrypted" not in decoded["metadata"]
    assert base64.b64decode(decoded["data"]) == f'"{EMAIL}"'.encode()


async def test_a_key_dropped_too_early_is_named_to_staff_and_to_the_ui(settings, dev_server, task_queue, pool):
    """A key dropped while a workflow started under it was open (docs/operations.md, "Keys and their
    rotation"): a staff action answered 503 "no worker is running, or every one is busy" (or 500),
    with workers running, and the codec endpoint "UnknownKeyError", neither naming the key to put
    back. Both name it now; nothing is done."""
    import httpx

    from api.app import create_app
    from dsrflow.infra.temporal_client import connect_client
    from schemas.workflow import workflow_id_for
    from tests.support import api_client, console_sign_in, served, staff_headers, unique_email

    async with api_client(settings, dev_server.client, task_queue) as http:  # its input sealed with k1
        r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                            json={"type": "access", "subject": {"email": unique_email("dropped-key")}})
        assert r.status_code == 201, r.text
    rid, sealed = r.json()["id"], await _sealed_email(settings)
    rotated = settings.model_copy(update={"encryption_keys": f"k9:{_b64(os.urandom(32))}"})
    rotated.__dict__.pop("keyring", None)  # derived from the keys, and copied with the settings
    client = await connect_client(rotated, address=dev_server.client.service_client.config.target_host)
    async with served(rotated, pool, client, task_queue) as http:
        r = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "compliance"),
                            json={"reason": "asked by phone"})
        assert r.status_code == 503 and r.json()["unheld_key"] == "k1", r.text
        assert "encrypted with key 'k1', which this deployment no longer holds" in r.json()["detail"]
        # From its task's third failed try the engine turns queries and updates away at once
        # ("Workflow Task in failed state"): the same answer, not a 500 (the clean clone at e29e09a).
        handle = client.get_workflow_handle(workflow_id_for(rid))
        for _ in range(300):
            if (await handle.describe()).raw_description.pending_workflow_task.attempt >= 3:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the workflow's task never failed three times")
        r = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "compliance"),
                            json={"reason": "asked by phone"})
        assert r.status_code == 503 and r.json()["unheld_key"] == "k1", r.text
        assert (await http.get(f"/v1/requests/{rid}", headers=await staff_headers(pool, "compliance"))
                ).json()["status"] == "awaiting_verification"
        # The request's page says so too, not "is a worker running?".
        await console_sign_in(http, pool, "agent")
        page = (await http.get(f"/console/requests/{rid}")).text
        assert 'sealed with\n  the key <span class="mono">k1</span>, which this deployment no longer holds' in page, page
    app = create_app(rotated)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as ui:
        r = await ui.post("/codec/decode", json={"payloads": [sealed]}, headers=await staff_headers(pool, "compliance"))
    assert r.status_code == 422 and "unknown key id 'k1'" in r.text, r.text
