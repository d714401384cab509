"""A step that can only fail fails at once; one that keeps failing is flagged after the policy's
threshold. Either way the request needs attention (queue, state, one staff alert) and staff carry
on: retry the step, skip it, or cancel the request. Nothing waits for ever in silence."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity

from activities.letters import deliver_letter
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.deadlines import DeadlineError
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.steps import RetryStepInput
from schemas.workflow import LetterJob, LetterReceipt, RequestFacts, StartRequest, workflow_id_for
from tests.support import api_client, letters_for, staff_headers, unique_email
from workers.dsr_worker import activity_context, build_worker
from workflows.dsr import DataSubjectRequestWorkflow


async def _eventually(check, timeout: float = 30.0):
    for _ in range(int(timeout * 10)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def _state(client, rid):
    return await client.get_workflow_handle(workflow_id_for(rid)).query(DataSubjectRequestWorkflow.state)


@contextlib.asynccontextmanager
async def _erasure_with_relay(settings, pool, client, task_queue, relay, **start) -> AsyncIterator[tuple[str, Any]]:
    """An attested erasure stored as the API stores it, its workflow started on a worker whose
    letters go through `relay` (the mail relay as the test has it behave): its id and handle."""
    loaded = load_policy(settings.policy_path)
    new = NewRequest(type="erasure", subject={"email": f"s{uuid.uuid4().hex[:6]}@example.com"},
                     identity_attested=True)
    row, _ = await create_request(pool, new, loaded_policy=loaded, secret=load_secret_key(settings), actor="test",
                                  idempotency_key=None)
    rid = str(row["id"])
    async with build_worker(client, settings, pool, task_queue=task_queue, activity_overrides=[relay]):
        yield rid, await client.start_workflow(
            DataSubjectRequestWorkflow.run, StartRequest(request_id=rid, policy_version=loaded.version, **start),
            id=workflow_id_for(rid), task_queue=task_queue)


async def _closed_as_succeeded(pool, rid: str) -> bool:
    closed = await pool.fetchrow("SELECT resolved_at, resolution FROM step_troubles WHERE request_id = $1",
                                 uuid.UUID(rid))
    return closed["resolved_at"] is not None and "succeeded" in closed["resolution"]


@activity.defn(name="prepare_request")
async def unregistrable(start: StartRequest) -> RequestFacts:
    """Registration failing the way only a change of data or code can cure (a calendar the regime
    does not have, say): the classifying interceptor makes it fail at once."""
    raise DeadlineError("country: 'US' is not an EU/EEA member state code")


async def test_a_step_that_can_only_fail_flags_the_request_and_staff_can_cancel(
        settings, pool, mail_sink, dev_server, task_queue):
    """Registration fails for good: at once, not after endless retries; the queue shows the request
    needing attention, staff get one alert naming the cause, a retry fails the same way without a
    second alert, and cancelling ends it."""
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue,
                            activity_overrides=[unregistrable]), \
            api_client(settings, dev_server.client, task_queue) as http:
        headers = await staff_headers(pool, "compliance")
        r = await http.post("/v1/requests", headers=headers, json={
            "type": "erasure", "subject": {"email": unique_email("unregistrable")}, "identity_attested": True})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]

        async def trouble():
            return (await _state(dev_server.client, rid)).trouble

        found = await _eventually(trouble, timeout=15)
        assert found.step == "prepare_request" and not found.transient and not found.skippable
        assert found.message == "DeadlineError: country: 'US' is not an EU/EEA member state code"
        alert = (await _eventually(lambda: asyncio.sleep(0, letters_for(mail_sink, rid, "staff_alert"))))[0]
        said = " ".join(alert.get_body(("plain",)).get_content().split())
        # The step by its label, the error quoted as it came.
        assert "registering the request (its deadlines and its acknowledgement)" in said
        assert "country: 'US' is not an EU/EEA member state code" in said and "prepare_request" not in said
        listed = await http.get("/v1/requests", params={"needs_attention": "true", "q": rid}, headers=headers)
        assert [item["id"] for item in listed.json()["items"]] == [rid]
        assert listed.json()["items"][0]["needs_attention"] is True

        refused = await http.post(f"/v1/requests/{rid}/extend", headers=headers, json={"reason": "need more time please"})
        assert refused.status_code == 409 and "could not be registered" in refused.json()["detail"]
        skip = await http.post(f"/v1/requests/{rid}/skip-step", headers=headers, json={"note": "skipping is not possible"})
        assert skip.status_code == 409 and "cannot be skipped" in skip.json()["detail"]

        retried = await http.post(f"/v1/requests/{rid}/retry-step", headers=headers)
        assert retried.status_code == 200, retried.text
        again = await _eventually(trouble)
        assert again.key == found.key  # the same trouble, still open
        await asyncio.sleep(1)
        assert len(letters_for(mail_sink, rid, "staff_alert")) == 1

        cancelled = await http.post(f"/v1/requests/{rid}/cancel", headers=headers, json={"reason": "wrong calendar"})
        assert cancelled.status_code == 200, cancelled.text
        handle = dev_server.client.get_workflow_handle_for(DataSubjectRequestWorkflow.run, workflow_id_for(rid))
        result = await handle.result()
        assert result.status.value == "cancelled" and result.trouble is None
        events = [e["event_type"] for e in (await http.get(f"/v1/requests/{rid}/events", headers=headers)).json()["events"]]
        assert "step.failed" in events


async def test_a_step_failing_past_the_threshold_is_flagged_and_recovers_on_its_own(
        settings, pool, time_skipping, mail_sink, task_queue):
    """The mail relay refuses every acknowledgement for a while (a transient failure): after the
    policy's threshold the request is flagged with the error and staff are alerted once; when the
    relay comes back the step succeeds on its own and the trouble closes."""
    env, client = time_skipping, time_skipping.client
    ctx = activity_context(settings, pool)
    relay_down = True

    @activity.defn(name="send_letter")
    async def flaky_letter(job: LetterJob) -> LetterReceipt:
        if relay_down and job.purpose == "acknowledgement":
            raise ConnectionRefusedError("relay 127.0.0.1:2525 refused the connection")
        return await deliver_letter(ctx, job)

    async with _erasure_with_relay(settings, pool, client, task_queue, flaky_letter,
                                   attention_after_minutes=5) as (rid, handle):
        await env.sleep(timedelta(minutes=3))
        assert (await handle.query(DataSubjectRequestWorkflow.state)).trouble is None  # not yet
        await env.sleep(timedelta(minutes=10))
        trouble = (await handle.query(DataSubjectRequestWorkflow.state)).trouble
        assert trouble is not None and trouble.step == "send_letter" and trouble.transient
        assert "refused" in trouble.message
        open_rows = await _eventually(lambda: pool.fetch(
            "SELECT * FROM step_troubles WHERE request_id = $1 AND resolved_at IS NULL", uuid.UUID(rid)))
        assert len(open_rows) == 1

        relay_down = False
        result = await handle.result()
    assert result.status.value == "completed" and result.trouble is None
    assert len(letters_for(mail_sink, rid, "acknowledgement")) == 1
    assert len(letters_for(mail_sink, rid, "staff_alert")) == 1
    assert await _closed_as_succeeded(pool, rid)


@pytest.mark.parametrize("alert_error", [
    lambda: ValueError("550 5.7.1 staff list accepts members only"),  # for good
    lambda: ConnectionRefusedError("relay 127.0.0.1:2525 refused the connection"),  # for ever after
], ids=["refused-for-good", "unreachable"])
async def test_a_refused_staff_alert_does_not_fail_the_request(settings, pool, time_skipping, mail_sink, task_queue,
                                                              alert_error):
    """The relay refuses the acknowledgement for good, and the staff alert about it too (a staff
    list that rejects outside senders), or cannot be reached for the alert any more. The trouble is
    on record, so the queue flags the request; once the cause is fixed staff retry the step, and the
    request carries on to its end. Before, closing the trouble raised the alert's refusal: the
    workflow failed, leaving the request open in the database with every staff action answered 409;
    or it waited for the alert for ever, after the step had recovered."""
    env, client = time_skipping, time_skipping.client
    ctx = activity_context(settings, pool)
    refused = True

    @activity.defn(name="send_letter")
    async def refusing_relay(job: LetterJob) -> LetterReceipt:
        if job.to_staff and job.key.startswith("step:"):
            raise alert_error()
        if refused and job.purpose == "acknowledgement":
            raise ValueError("550 5.1.1 mailbox unavailable")
        return await deliver_letter(ctx, job)

    async with _erasure_with_relay(settings, pool, client, task_queue, refusing_relay) as (rid, handle):
        await _eventually(lambda: pool.fetch(
            "SELECT * FROM step_troubles WHERE request_id = $1 AND resolved_at IS NULL", uuid.UUID(rid)))
        await env.sleep(timedelta(minutes=5))  # the alert's step has long failed by now
        refused = False
        await handle.execute_update(DataSubjectRequestWorkflow.retry_step, RetryStepInput(actor="compliance:test"))
        result = await handle.result()
    assert result.status.value == "completed" and result.trouble is None
    assert len(letters_for(mail_sink, rid, "acknowledgement")) == 1
    assert letters_for(mail_sink, rid, "staff_alert") == []
    assert await _closed_as_succeeded(pool, rid)
