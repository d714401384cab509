"""An attacker between us and the processor (a man in the middle, a cache answering for it) or a
processor that contradicts itself, against the call-off of a job whose request closed unanswered
(activities/connectors/opendsr_calloff.py). The signatures are checked here as in production,
against the processor's certificate pinned in the system's config; the processor's answers come
from an in-process transport, each signed (or not) as the attack needs.

Before, a 202 that did not verify, or a status answer that did not, failed the poll: the task on a
closed request (in no queue, its page opened by nobody) needed attention with nobody alerted, and
nothing in the trail said the job was not called off. Now a 202 not taken is checked against the
job's signed status; one that cannot be taken either alerts staff to tell the processor by hand,
with one `processor.called_off` event, outcome `unverified`. Never "cancelled before it acted"."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.connectors.base import Subject
from activities.connectors.opendsr_signature import SIGNATURE_HEADER, generate_processor_identity, sign
from tests.opendsr.support import connector_for
from tests.processor_identity import processor_identity
from tests.support import letters_for, stored_request
from workers.dsr_worker import activity_context

_BASE = "http://processor.test/opendsr"
_CANCELLED = "called off: the request was closed unanswered, and the job was cancelled at Email marketing (demo) " \
    "before it acted"
_TOLD_BY_HAND = "it may still act on it: tell it by hand that the request was withdrawn"


def _answer(status: int, document: dict, *, key: bytes | None) -> httpx.Response:
    """The processor's answer, signed with `key` (None: unsigned)."""
    body = json.dumps(document).encode()
    headers = {SIGNATURE_HEADER: sign(body, key)} if key is not None else {}
    return httpx.Response(status, content=body, headers=headers)


def _processor(delete: Callable[[str], httpx.Response], state: str, *, status_key: bytes | None,
               status_of: Callable[[str], str] = lambda job: job) -> httpx.MockTransport:
    """DELETE answered by `delete(job)`; the job's status says `state`, about `status_of(job)`,
    signed with `status_key`."""
    def answer(request: httpx.Request) -> httpx.Response:
        job = request.url.path.rsplit("/", 1)[1]
        if request.method == "DELETE":
            return delete(job)
        return _answer(200, {"subject_request_id": status_of(job), "request_status": state, "controller_id": "c",
                             "results_count": 3}, key=status_key)
    return httpx.MockTransport(answer)


def _accepted(job: str, key: bytes | None) -> httpx.Response:
    return _answer(202, {"controller_id": "c", "subject_request_id": job, "received_time": "2026-12-07T12:00:00Z",
                         "api_version": "2.0"}, key=key)


async def _called_off(transport: httpx.MockTransport, *, context=None, request_id: str | None = None):
    """The connector's poll of a closed request's job, the processor's certificate pinned."""
    connector = connector_for(_BASE, "", processor_certificate_pem=processor_identity()[1].decode())
    if context is not None:
        connector.env = dataclasses.replace(connector.env, pool=context.pool, mailer=context.mailer,
                                            settings=context.settings, secret=context.secret)
    connector._http = httpx.AsyncClient(transport=transport)
    subject = Subject(request_id=request_id or str(uuid.uuid4()), email="jane@example.org", closed=True)
    try:
        job = str(uuid.uuid5(uuid.NAMESPACE_URL, subject.request_id))  # the task's one job, however often asked
        return await ActivityEnvironment().run(connector.status, subject, job)
    finally:
        await connector._http.aclose()


KEY = processor_identity()[0]
_OTHER_KEY = generate_processor_identity("127.0.0.1")[0]  # an attacker's own (about 0.1 s, once)


async def test_the_processors_own_signed_202_still_calls_the_job_off():
    outcome = await _called_off(_processor(lambda job: _accepted(job, KEY), "pending", status_key=KEY))
    assert (outcome.status, outcome.message) == ("needs_attention", _CANCELLED)


@pytest.mark.parametrize("forged", ["unsigned", "another key", "another job", "no job", "a page"])
async def test_a_202_not_the_processors_own_about_this_job_is_no_cancellation(forged):
    """The job still pending at the processor (its signed status says so): the forged 202 is not
    taken, and the task says it was not called off (a 202 naming no job, or a cache's page, was
    retried until the poll's last try before)."""
    page = b"<html><body>Accepted</body></html>"
    delete = {"unsigned": lambda job: _accepted(job, None),
              "another key": lambda job: _accepted(job, _OTHER_KEY),
              "another job": lambda job: _accepted(str(uuid.uuid4()), KEY),
              "no job": lambda job: _answer(202, {"controller_id": "c"}, key=KEY),
              "a page": lambda job: httpx.Response(202, content=page, headers={SIGNATURE_HEADER: sign(page, KEY)}),
              }[forged]
    outcome = await _called_off(_processor(delete, "pending", status_key=KEY))
    assert outcome.status == "needs_attention"
    assert outcome.message is not None and outcome.message.startswith(
        "not called off: the request was closed unanswered, but Email marketing (demo)'s answer to the call-off was "
        "not taken as a cancellation (system email_marketing: the ")
    assert outcome.message.endswith(f"and its signed status says the job is still pending; {_TOLD_BY_HAND}")


async def test_a_forged_202_for_a_job_the_processor_did_cancel_reads_as_its_status_says():
    """An unsigned 202 (a processor that does not sign it, say): the signed status is the word."""
    outcome = await _called_off(_processor(lambda job: _accepted(job, None), "cancelled", status_key=KEY))
    assert (outcome.status, outcome.message) == ("needs_attention", _CANCELLED)


@pytest.mark.parametrize("forged", ["unsigned", "another job"])
@pytest.mark.parametrize("delete", [202, 400])
async def test_a_status_answer_not_the_processors_own_leaves_the_job_unknown(delete, forged):
    """A 400 (or a forged 202) followed by a status answer that is unsigned, or about another job,
    saying `cancelled`: neither is taken, nothing says the job was called off."""
    refusal = (lambda job: _accepted(job, None)) if delete == 202 else \
        (lambda job: httpx.Response(400, json={"error": {"code": 400, "message": "no"}}))
    status = {"unsigned": {"status_key": None}, "another job": {"status_key": KEY,
                                                                "status_of": lambda job: str(uuid.uuid4())}}[forged]
    outcome = await _called_off(_processor(refusal, "cancelled", **status))
    assert outcome.status == "needs_attention"
    assert outcome.message is not None and outcome.message.startswith(
        "not called off: the request was closed unanswered, but Email marketing (demo)'s answers to the call-off "
        "could not be taken (system email_marketing: the ")
    assert outcome.message.endswith(f"so how the job stands is unknown; {_TOLD_BY_HAND}")


async def test_staff_are_told_once_of_a_call_off_whose_answers_were_forged(pool, settings, mail_sink):
    """In a worker's context (the app database and mail): one staff alert, one event `unverified`,
    however often the poll runs; the timeline's words for it."""
    from api.read_models.event_lines import describe_event

    rid = await stored_request(pool, settings, "call-off-forged", type_="erasure")
    context = activity_context(settings, pool)
    for _ in range(2):
        outcome = await _called_off(_processor(lambda job: _accepted(job, None), "pending", status_key=None),
                                    context=context, request_id=rid)
        assert outcome.status == "needs_attention" and outcome.message is not None
        assert outcome.message.endswith(_TOLD_BY_HAND)
    (alert,) = letters_for(mail_sink, rid, "staff_alert")
    said = " ".join(alert.get_body(("plain",)).get_content().split())
    assert ("could not be told to stop (system email_marketing: the response to DELETE " in said
            and "; system email_marketing: the response to GET " in said), said
    (event,) = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1::uuid "
                                "AND event_type = 'processor.called_off'", rid)
    data = json.loads(event["data"]) if isinstance(event["data"], str) else event["data"]
    assert data["outcome"] == "unverified"
    assert describe_event({"event_type": event["event_type"], "data": data}, {}, {}) == (
        "Processor's job called off, its request closed (email_marketing: its answer not taken as a cancellation: "
        "it may still act, and must be told by hand)")


async def test_a_retry_told_the_job_went_back_answers_as_the_call_off_on_record(pool, settings, mail_sink):
    """A processor that answered the call-off `completed` (its count 3), then, to the retry of a poll
    whose result was lost with its worker, `pending`: before, the retry's task said the processor
    refused while the job was pending and staff were alerted, while the trail said it had acted. Now
    the retry answers as the call-off on record says, done with its count, and nobody is alerted."""
    rid = await stored_request(pool, settings, "call-off-went-back", type_="erasure")
    context = activity_context(settings, pool)

    def refused(job: str) -> httpx.Response:
        return httpx.Response(400, json={"error": {"code": 400, "message": "not pending"}})

    first = await _called_off(_processor(refused, "completed", status_key=KEY), context=context, request_id=rid)
    again = await _called_off(_processor(refused, "pending", status_key=KEY), context=context, request_id=rid)
    assert (first.status, first.changed) == ("done", 3)
    assert (again.status, again.changed, again.message) == ("done", 3, first.message)
    assert letters_for(mail_sink, rid, "staff_alert") == []
    rows = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                            "AND event_type = 'processor.called_off'", rid)
    assert [json.loads(r["data"]) if isinstance(r["data"], str) else r["data"] for r in rows] == [
        {"system": "email_marketing", "attempt": 1, "outcome": "completed", "results_count": 3}]
