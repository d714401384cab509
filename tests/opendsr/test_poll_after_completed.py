"""A task told `completed` by the processor's signed callback without a count polls its status for
the count (workflows/system_task.py). A status that then reads `cancelled` is the processor going
back on its word (dsrflow/domain/processor_answers.py went_back: the API refuses such a callback):
the job was carried out, and the poll says so. Before, the poll read it as it stood and the task
ended "the processor reports the request as cancelled", needing attention, for an erasure done
(hDV; activities/connectors/opendsr_calloff.py completed_stands)."""

from __future__ import annotations

import dataclasses
import uuid

import httpx
from temporalio.testing import ActivityEnvironment

from activities.connectors.base import Subject
from dsrflow.domain.audit import append_event
from dsrflow.domain.processor_answers import callback_event_key
from tests.opendsr.support import connector_for
from tests.opendsr.test_call_off_forged import KEY, _processor
from tests.processor_identity import processor_identity
from tests.support import stored_request
from workers.dsr_worker import activity_context

_BASE = "http://processor.test/opendsr"


async def _polled(context, rid: str, state: str):
    """The task's poll of its job (the request open), the processor's status signed, saying `state`."""
    connector = connector_for(_BASE, "", processor_certificate_pem=processor_identity()[1].decode())
    connector.env = dataclasses.replace(connector.env, pool=context.pool, mailer=context.mailer,
                                        settings=context.settings, secret=context.secret)
    connector._http = httpx.AsyncClient(transport=_processor(lambda job: httpx.Response(405), state,
                                                             status_key=KEY))
    try:
        job = str(uuid.uuid5(uuid.NAMESPACE_URL, rid))
        return job, await ActivityEnvironment().run(connector.status, Subject(request_id=rid, email="j@example.org"),
                                                    job)
    finally:
        await connector._http.aclose()


async def test_a_poll_reading_cancelled_after_a_signed_completed_keeps_the_task_done(pool, settings):
    rid = await stored_request(pool, settings, "poll-after-completed", type_="erasure")
    context = activity_context(settings, pool)
    job, before = await _polled(context, rid, "cancelled")  # nothing on record: the cancellation is the task's end
    assert (before.status, before.message) == ("needs_attention", "the processor reports the request as cancelled")
    system = "email_marketing"
    async with pool.acquire() as conn:  # as api/callbacks/opendsr.py records a completion without its count
        await append_event(conn, event_key=callback_event_key(rid, system, job, "completed"), request_id=rid,
                           event_type="processor.callback", actor=f"processor:{system}",
                           data={"system": system, "status": "completed", "attempt": 1})
    _, after = await _polled(context, rid, "cancelled")
    assert (after.status, after.message, after.external_id) == ("done", None, job)
    _, still_at_work = await _polled(context, rid, "in_progress")  # still at work: the task polls on for its count
    assert still_at_work.status == "pending"
