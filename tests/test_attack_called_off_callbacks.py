"""A processor's callbacks around the call-off of its job (activities/connectors/opendsr_calloff.py),
from an attacker without its key and from the processor itself contradicting what it answered the
call-off; against the real API over HTTP, a worker and a stand-in processor whose status answers
are signed (docs/security.md, "Forged, replayed and stale OpenDSR callbacks")."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activities.acted_after_call_off import acted_message, cancelled_later_message
from activities.acted_after_sweep import settle_acted_after
from activities.connectors.opendsr_signature import SIGNATURE_HEADER, generate_processor_identity, sign
from tests.fanout_stack import served
from tests.processor_identity import processor_identity
from tests.support import assert_problem, letters_for, live_client, staff_headers
from tests.test_closed_request_asked_tasks import WITHDRAWN
from tests.untrusted_support import (
    CALLBACK,
    PROCESSOR,
    FakeProcessor,
    api_over_http,
    pending_erasure,
    processor_policy,
    rfc3339,
)
from workers.dsr_worker import activity_context, build_worker


def _piece_failed(part: str, request_id: str | None, exc: Exception) -> None:
    raise exc


_TASK = "SELECT status, message FROM system_tasks WHERE request_id = $1 AND system = $2"


@dataclass
class CallingOffProcessor(FakeProcessor):
    """A processor whose DELETE is refused (400: no longer pending) and whose signed status says
    `job_status`, with a count: the call-off reads it."""

    def app(self) -> Starlette:
        async def status(request: Request) -> Response:
            if request.method == "DELETE":
                return JSONResponse({"error": {"code": 400, "message": "not pending"}}, status_code=400)
            body, headers = self.signed({"subject_request_id": request.path_params["rid"],
                                         "request_status": self.job_status, "results_count": 2})
            return Response(body, headers=headers)

        app = super().app()
        app.router.routes.insert(0, Route("/opendsr/requests/{rid}", status, methods=["GET", "DELETE"]))
        return app


async def _events(pool, request_id: str) -> list[tuple[str, dict]]:
    rows = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1 AND event_type LIKE "
                            "'processor.%' ORDER BY seq", uuid.UUID(request_id))
    return [(r["event_type"], json.loads(r["data"]) if isinstance(r["data"], str) else r["data"]) for r in rows]


async def _settled(pool, request_id: str) -> tuple[str, str]:
    for _ in range(300):
        row = tuple(await pool.fetchrow(_TASK, uuid.UUID(request_id), PROCESSOR))
        if row[0] != "pending":
            return row
        await asyncio.sleep(0.1)
    raise AssertionError("the processor's task never settled")


async def test_callbacks_around_a_call_off(settings, pool, dev_server, tmp_path, lifecycle_policy, task_queue,
                                          mail_sink):
    """Open erasure: a `cancelled` callback unsigned or signed by another key is refused (403) and
    changes nothing; the processor's own (signed), for a job nobody called off, ends the task as
    the processor's doing, "the processor cancelled the request", with no call-off on record and the
    request still open, in staff's queue. Closed erasures: the call-off's answer goes on record as
    the job's status, so a `pending` callback after it went back and is refused (409, said once);
    before, it went on record as the job's status after the processor had said it acted. So is a
    `cancelled` after the job was carried out: the erasure stands, the task keeps "done". The
    `cancelled` callback after a call-off is recorded once: its replay, or another body saying the
    same, adds nothing. A signed `completed` after that cancellation is the processor acting on the
    withdrawn request: its own event, the task's record says so, staff alerted once (the worker's
    start sweep); before, it was taken as "as far along" and the task kept "cancelled before it
    acted". The same after a cancellation nobody called off (an open request) is no such thing. A
    signed `cancelled` after a call-off refused while the job was pending puts the call-off's outcome
    at the end in the trail and on the task (before: "it may still act" stayed)."""
    key_pem, cert_pem = processor_identity()
    processor = CallingOffProcessor(key_pem, cert_pem)
    now = dt.datetime.now(dt.UTC)

    def callback(job: str, status: str, n: int = 0, key: bytes = key_pem) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"subject_request_id": job, "request_status": status,
                           "status_changed_time": rfc3339(now - dt.timedelta(seconds=n))}).encode()
        return body, {SIGNATURE_HEADER: sign(body, key), "Content-Type": "application/json"}

    def acted(job: str, n: int) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"subject_request_id": job, "request_status": "completed", "results_count": 2,
                           "status_changed_time": rfc3339(now - dt.timedelta(seconds=n))}).encode()
        return body, {SIGNATURE_HEADER: sign(body, key_pem), "Content-Type": "application/json"}

    async with served(processor.app()) as processor_url:
        processor.url = processor_url
        policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor_url}/opendsr"})
        ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
        async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
                api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
            agent = await staff_headers(pool, "agent")
            open_id, open_job = await pending_erasure(http, pool)
            body, headers = callback(open_job, "cancelled")
            unsigned = await http.post(CALLBACK, content=body, headers={"Content-Type": "application/json"})
            assert assert_problem(unsigned, 403)["title"] == "Bad signature"
            foreign = await http.post(CALLBACK, content=body, headers={
                **headers, SIGNATURE_HEADER: sign(body, generate_processor_identity("127.0.0.1")[0])})
            assert assert_problem(foreign, 403)["title"] == "Bad signature"
            assert await _events(pool, open_id) == []
            assert tuple(await pool.fetchrow(_TASK, uuid.UUID(open_id), PROCESSOR))[0] == "pending"
            heard = await http.post(CALLBACK, content=body, headers=headers)
            assert heard.status_code == 202, heard.text
            assert await _settled(pool, open_id) == ("needs_attention", "the processor cancelled the request")
            assert (await http.get(f"/v1/requests/{open_id}", headers=agent)).json()["status"] == "in_progress"

            closed = {}
            for job_status in ("completed", "cancelled", "pending"):
                processor.job_status = job_status
                request_id, job = await pending_erasure(http, pool)
                r = await http.post(f"/v1/requests/{request_id}/cancel", headers=agent, json=WITHDRAWN)
                assert r.status_code == 200, r.text
                closed[job_status] = (request_id, job, await _settled(pool, request_id))
            completed_id, completed_job, completed_task = closed["completed"]
            assert completed_task[0] == "done", completed_task
            # Carried out, then `cancelled`: the processor contradicting itself. What stands is that
            # the job was carried out (a cancellation cannot undo an erasure): refused, said once in
            # the trail, and the task keeps its record (before: taken as any callback, the trail
            # saying the job was cancelled after it was done).
            body, headers = callback(completed_job, "cancelled")
            undone = assert_problem(await http.post(CALLBACK, content=body, headers=headers), 409)
            assert (undone["title"], undone["detail"]) == (
                "Status goes back", "the job's status on record is completed; a later callback saying cancelled "
                "is not taken")
            body, headers = callback(completed_job, "pending", 5)
            back = await http.post(CALLBACK, content=body, headers=headers)
            assert assert_problem(back, 409)["title"] == "Status goes back"
            body, headers = callback(completed_job, "in_progress", 1)
            assert (await http.post(CALLBACK, content=body, headers=headers)).status_code == 409

            cancelled_id, cancelled_job, cancelled_task = closed["cancelled"]
            assert cancelled_task == ("needs_attention", "called off: the request was closed unanswered, and the "
                                      "job was cancelled at Forged processor before it acted")
            body, headers = callback(cancelled_job, "cancelled")
            assert (await http.post(CALLBACK, content=body, headers=headers)).status_code == 202
            replayed = await http.post(CALLBACK, content=body, headers=headers)
            assert assert_problem(replayed, 409)["title"] == "Callback already received"
            body, headers = callback(cancelled_job, "cancelled", 2)  # the same word, another body
            assert (await http.post(CALLBACK, content=body, headers=headers)).status_code in (202, 409)
            # Then the processor says, signed, that it carried the cancelled job out: taken (it is
            # the processor's word), and no longer "as far along" as the cancellation.
            body, headers = acted(cancelled_job, 3)
            assert (await http.post(CALLBACK, content=body, headers=headers)).status_code == 202
            body, headers = acted(open_job, 4)  # a job the processor cancelled by itself: nobody called it off
            assert (await http.post(CALLBACK, content=body, headers=headers)).status_code == 202
            # A call-off refused while the job was pending (staff told to tell it by hand), then the
            # processor's signed `cancelled`: it stopped after all.
            refused_id, refused_job, refused_task = closed["pending"]
            assert refused_task[1].startswith("not called off: the request was closed unanswered, but Forged "
                                              "processor refused to cancel the job (HTTP 400)"), refused_task
            body, headers = callback(refused_job, "cancelled", 3)
            assert (await http.post(CALLBACK, content=body, headers=headers)).status_code == 202
            # The worker's start sweep alerts staff of the first and puts each on its task's record, once.
            context = activity_context(ours, pool)
            assert await settle_acted_after(context, _piece_failed, older_than=dt.timedelta(0)) == 2
            assert await settle_acted_after(context, _piece_failed, older_than=dt.timedelta(0)) == 0

    assert await _events(pool, open_id) == [
        ("processor.callback", {"system": PROCESSOR, "status": "cancelled", "attempt": 1}),
        ("processor.callback", {"system": PROCESSOR, "status": "completed", "attempt": 1, "results_count": 2})]
    assert await _events(pool, completed_id) == [
        ("processor.called_off", {"system": PROCESSOR, "attempt": 1, "outcome": "completed", "results_count": 2}),
        ("processor.callback_went_back", {"system": PROCESSOR, "status": "cancelled", "after": "completed",
                                          "attempt": 1})]
    assert tuple(await pool.fetchrow(_TASK, uuid.UUID(completed_id), PROCESSOR)) == completed_task
    assert await _events(pool, cancelled_id) == [
        ("processor.called_off", {"system": PROCESSOR, "attempt": 1, "outcome": "cancelled"}),
        ("processor.callback", {"system": PROCESSOR, "status": "cancelled", "attempt": 1}),
        ("processor.callback", {"system": PROCESSOR, "status": "completed", "attempt": 1, "results_count": 2}),
        ("processor.acted_after_call_off", {"system": PROCESSOR, "action": "erase", "attempt": 1,
                                            "outcome": "completed", "results_count": 2})]
    # The called-off task no longer says it was cancelled before it acted; staff are told once.
    assert tuple(await pool.fetchrow(_TASK, uuid.UUID(cancelled_id), PROCESSOR)) == ("done", acted_message(
        "Forged processor"))
    (alert,) = letters_for(mail_sink, cancelled_id, "staff_alert")
    assert "acted against the instruction that the request was withdrawn" in " ".join(
        alert.get_body(("plain",)).get_content().split())
    assert await _events(pool, refused_id) == [
        ("processor.called_off", {"system": PROCESSOR, "attempt": 1, "outcome": "refused"}),
        ("processor.callback", {"system": PROCESSOR, "status": "cancelled", "attempt": 1}),
        ("processor.called_off", {"system": PROCESSOR, "action": "erase", "attempt": 1, "outcome": "cancelled",
                                  "via": "callback"})]
    assert tuple(await pool.fetchrow(_TASK, uuid.UUID(refused_id), PROCESSOR)) == (
        "needs_attention", cancelled_later_message("Forged processor"))
    # Those told to tell it by hand are told it is settled, once (the sweep's second run sent nothing).
    by_hand, settled = (" ".join(alert.get_body(("plain",)).get_content().split())
                        for alert in letters_for(mail_sink, refused_id, "staff_alert"))
    assert "Tell Forged processor by hand that the request was withdrawn" in by_hand, by_hand
    assert ("Forged processor has since stopped the job it had been asked to do on this request, its signed "
            "callback says, and did not carry it out. The earlier alert asking staff to tell Forged processor by "
            "hand that the request was withdrawn is settled: nobody need do so any more.") in settled, settled
    # Nothing more on the other tasks: each says what it said when it ended; the open one's alerts
    # are its task's own (it needs attention), none of a processor acting after a call-off.
    assert tuple(await pool.fetchrow(_TASK, uuid.UUID(open_id), PROCESSOR)) == (
        "needs_attention", "the processor cancelled the request")
    assert not any("acted against the instruction" in " ".join(letter.get_body(("plain",)).get_content().split())
                   for letter in letters_for(mail_sink, open_id, "staff_alert"))
