"""A retry of a job's call-off (its first try's result lost with its worker) that finds the job further
along than the answer on record (activities/connectors/opendsr_calloff.py), in a worker's context:
the app database and mail; the processor's answers from an in-process transport, signed.

Before, the event kept the first answer alone (keyed once per job), and a job carried out after the
call-off had cancelled it was taken as "equally far along": the task said the processor acted
"before the request was closed", the trail "cancelled before it acted", and nobody was told."""

from __future__ import annotations

import json

import httpx

from activities.acted_after_call_off import acted_message
from api.read_models.event_lines import describe_event
from tests.opendsr.test_call_off_forged import KEY, _accepted, _called_off, _processor
from tests.support import letters_for, stored_request
from workers.dsr_worker import activity_context

_LABEL = "Email marketing (demo)"


def _refused(job: str) -> httpx.Response:
    return httpx.Response(400, json={"error": {"code": 400, "message": "not pending"}})


async def _call_off_events(pool, rid: str) -> list[tuple[str, dict]]:
    rows = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1::uuid AND event_type IN "
                            "('processor.called_off', 'processor.acted_after_call_off') ORDER BY seq", rid)
    return [(r["event_type"], json.loads(r["data"]) if isinstance(r["data"], str) else r["data"]) for r in rows]


async def test_a_job_carried_out_after_its_call_off_cancelled_it_is_the_processor_acting(pool, settings, mail_sink):
    """Cancelled (a signed 202), then to the retry `completed` with its count: the task says the
    processor acted after it was called off, the trail has its own event beside the cancellation, and
    staff are alerted once, however often the retry runs."""
    rid = await stored_request(pool, settings, "call-off-acted-after", type_="erasure")
    context = activity_context(settings, pool)
    first = await _called_off(_processor(lambda job: _accepted(job, KEY), "pending", status_key=KEY),
                              context=context, request_id=rid)
    assert first.message is not None and first.message.endswith("before it acted")
    for _ in range(2):  # the retry's own record lost too
        again = await _called_off(_processor(_refused, "completed", status_key=KEY), context=context, request_id=rid)
        assert (again.status, again.changed, again.message) == ("done", 3, acted_message(_LABEL))
    assert "before it acted" not in again.message and "before the request was closed" not in again.message
    events = await _call_off_events(pool, rid)
    assert events == [
        ("processor.called_off", {"system": "email_marketing", "attempt": 1, "outcome": "cancelled"}),
        ("processor.acted_after_call_off", {"system": "email_marketing", "action": "erase", "attempt": 1,
                                            "outcome": "completed", "results_count": 3})]
    (alert,) = letters_for(mail_sink, rid, "staff_alert")
    said = " ".join(alert.get_body(("plain",)).get_content().split())
    assert ("carried out the job it had been asked to do on this request after cancelling it when the request was "
            "closed unanswered: it acted against the instruction that the request was withdrawn") in said, said
    # The timeline's and the evidence pack's line (one reader: event_lines).
    assert describe_event({"event_type": events[1][0], "data": events[1][1]}, {}, {"email_marketing": _LABEL}) == (
        "Processor carried out a job after cancelling it at the call-off "
        f"({_LABEL}: it acted on the request closed unanswered, 3 record(s))")


async def test_a_retry_that_finds_the_job_further_along_says_so_in_the_trail(pool, settings, mail_sink):
    """Under way at the call-off (400), carried out by the retry: a second event says what is true at
    the end (the first kept "under way" alone), the task does not say it acted before the close, and
    nobody is alerted: the processor was never told to stop a job it had begun."""
    rid = await stored_request(pool, settings, "call-off-further-along", type_="erasure")
    context = activity_context(settings, pool)
    first = await _called_off(_processor(_refused, "in_progress", status_key=KEY), context=context, request_id=rid)
    again = await _called_off(_processor(_refused, "completed", status_key=KEY), context=context, request_id=rid)
    assert first.message is not None and first.message.endswith("it may have acted")
    assert (again.status, again.changed, again.message) == (
        "done", 3, f"carried out by {_LABEL}: the job was already under way when it was called off, and the "
        "processor acted")
    assert await _call_off_events(pool, rid) == [
        ("processor.called_off", {"system": "email_marketing", "attempt": 1, "outcome": "in_progress"}),
        ("processor.called_off", {"system": "email_marketing", "attempt": 1, "outcome": "completed",
                                  "results_count": 3})]
    assert letters_for(mail_sink, rid, "staff_alert") == []
