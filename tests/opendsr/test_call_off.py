"""Calling off a job at a processor that does not cancel it, or cannot be reached
(activities/connectors/opendsr_calloff.py). The demo processor cancels a pending job and refuses one
under way (tests/test_closed_request_called_off.py); these answers are a processor's own, given here
by an in-process transport, unsigned (`verify_signatures: false`), each job's status as written."""

from __future__ import annotations

import dataclasses
import json
import uuid

import httpx
import pytest
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment

from activities.connectors.base import Subject
from activities.connectors.opendsr_answers import OpenDsrUnavailable
from tests.opendsr.support import connector_for
from tests.support import letters_for, stored_request
from workers.dsr_worker import activity_context

_BASE = "http://processor.test/opendsr"


def _processor(delete: int, state: str | None) -> httpx.MockTransport:
    """A processor answering DELETE with `delete`, and the job's status with `state` (None: down)."""
    def answer(request: httpx.Request) -> httpx.Response:
        job = request.url.path.rsplit("/", 1)[1]
        if state is None:
            raise httpx.ConnectError("connection refused", request=request)
        if request.method == "DELETE":
            return httpx.Response(delete, json={"error": {"code": delete, "message": "no"}})
        return httpx.Response(200, content=json.dumps({
            "subject_request_id": job, "request_status": state, "controller_id": "c",
            "expected_completion_time": "2026-12-07T12:00:00Z", "results_count": 3}).encode())
    return httpx.MockTransport(answer)


async def _called_off(delete: int, state: str | None, *, last_try: bool = False, context=None, request_id=None):
    """The connector's status on a closed request; with `context` (an ActivityContext) it has the
    app database and mail, as in a worker, and `request_id` is a stored request's."""
    connector = connector_for(_BASE, "", verify_signatures=False)
    if context is not None:
        connector.env = dataclasses.replace(connector.env, pool=context.pool, mailer=context.mailer,
                                            settings=context.settings, secret=context.secret)
    connector._http = httpx.AsyncClient(transport=_processor(delete, state))
    subject = Subject(request_id=request_id or str(uuid.uuid4()), email="jane@example.org", closed=True)
    environment = ActivityEnvironment()
    if last_try:
        environment.info = dataclasses.replace(environment.info, attempt=8, retry_policy=RetryPolicy(maximum_attempts=8))
    try:
        job = str(uuid.uuid5(uuid.NAMESPACE_URL, subject.request_id))  # the task's one job, however often asked
        return await environment.run(connector.status, subject, job)
    finally:
        await connector._http.aclose()


@pytest.mark.parametrize("delete", [400, 405])
async def test_a_processor_that_will_not_cancel_a_pending_job_may_still_act(delete):
    outcome = await _called_off(delete, "pending")
    assert outcome.status == "needs_attention"
    assert outcome.message == (
        "not called off: the request was closed unanswered, but Email marketing (demo) refused to cancel the job "
        f"(HTTP {delete}) while it was still pending; it may still act on it: tell it by hand that the request "
        "was withdrawn")


async def test_a_job_carried_out_before_the_call_off_is_done_with_its_count():
    outcome = await _called_off(409, "completed")
    assert (outcome.status, outcome.changed) == ("done", 3)
    assert outcome.message == ("carried out by Email marketing (demo) before the request was closed: the job could "
                               "no longer be called off, and the processor acted")


async def test_a_processor_down_is_retried_then_on_the_last_try_left_to_staff():
    with pytest.raises(OpenDsrUnavailable):  # the activity's retries
        await _called_off(202, None)
    outcome = await _called_off(202, None, last_try=True)
    assert outcome.status == "needs_attention"
    assert outcome.message is not None and outcome.message.startswith(
        "not called off: the request was closed unanswered, but Email marketing (demo) could not be reached to "
        "cancel the job (system email_marketing: DELETE ")
    assert outcome.message.endswith("it may still act on it: tell it by hand that the request was withdrawn")


async def test_staff_are_told_once_to_tell_a_processor_that_could_not_be_reached(pool, settings, mail_sink):
    """In a worker (the app database and mail): the last try alerts staff, once however often it runs
    (the alert's key), and the trail holds one `processor.called_off`, outcome `unreachable`."""
    rid = await stored_request(pool, settings, "call-off-down", type_="erasure")
    context = activity_context(settings, pool)
    for _ in range(2):  # a retry of the last try, say its record was lost
        outcome = await _called_off(202, None, last_try=True, context=context, request_id=rid)
        assert outcome.status == "needs_attention"
    (alert,) = letters_for(mail_sink, rid, "staff_alert")
    said = " ".join(alert.get_body(("plain",)).get_content().split())
    # (The system by its id: the stored request's policy, the tests' own, has no such system to label.)
    assert ("could not be told to stop (system email_marketing: DELETE " in said
            and "by hand that the request was withdrawn and that it must not act on it" in said), said
    assert await pool.fetchval("SELECT array_agg(data->>'outcome') FROM audit_events WHERE request_id = $1::uuid "
                               "AND event_type = 'processor.called_off'", rid) == ["unreachable"]
