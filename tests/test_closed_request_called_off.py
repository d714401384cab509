"""An OpenDSR job still at its processor when its request closes unanswered is called off there.

Before, nothing told the processor (OpenDSR § 9's DELETE was never sent): a subject who withdrew an
erasure while the e-mail marketing processor's job was pending had their newsletter data erased
there when the job's time came, and the request's workflow followed the job until it did. Now the
close tells the task, whose poll cancels the job (activities/connectors/opendsr_calloff.py): the job
ends cancelled, the subscriber is still there, the task says so, and the trail holds one event.
A job the processor had already begun cannot be cancelled (400): the task says it may have acted.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from temporalio.testing import ActivityEnvironment

from activities.acted_after_call_off import CANCELLED_AFTER_CLOSE
from activities.connectors.opendsr import subject_request_id
from activities.fanout import FanoutActivities
from api.read_models import event_lines
from schemas.workflow import (
    PROCESSOR_CANCELLED,
    SystemTask,
    TaskInput,
    TaskRecord,
    TaskResult,
    task_workflow_id,
    workflow_id_for,
)
from tests.fanout_stack import api, fanout_stack
from tests.opendsr.support import population_subscribers
from tests.process_support import poll_killed_at
from tests.support import letters_for, staff_headers, stored_request
from tests.test_closed_request_asked_tasks import WITHDRAWN, _replays
from tests.test_restriction_lifecycle import _until, _view
from workers.dsr_worker import activity_context, build_worker

# Long enough that the job is still pending when the request is withdrawn (the demo carries a job
# out this many seconds after receipt), on a loaded machine too; the old code's workflows wait for it.
_JOB_DELAY = 120.0
# How long a workflow may take to end once withdrawn (seconds when the machine is not loaded).
_ENDS_WITHIN = 60
_STATUS = "SELECT request_status FROM dsr_requests WHERE subject_request_id = $1"


async def _job_pending(http, pool, processor: asyncpg.Connection, rid: str) -> bool:
    """Every task but the e-mail marketing processor's has settled, and its job waits at the processor."""
    tasks = {t["system"]: t["status"] for t in (await _view(http, pool, rid)).get("results", [])}
    job = uuid.UUID(subject_request_id(rid, "email_marketing", "erasure"))
    return (tasks.pop("email_marketing", None) == "pending" and bool(tasks) and "pending" not in tasks.values()
            and await processor.fetchval(_STATUS, job) == "pending")


async def _email_task(http, pool, rid: str) -> dict:
    (task,) = [t for t in (await _view(http, pool, rid))["results"] if t["system"] == "email_marketing"]
    return task


async def _erasure(http, agent: dict, email: str) -> str:
    r = await http.post("/v1/requests", headers=agent, json={
        "type": "erasure", "subject": {"email": email}, "identity_attested": True})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_a_withdrawn_erasure_is_called_off_at_its_opendsr_processor(
        postgres, settings, pool, dev_server, tmp_path, mail_sink):
    """Erasures withdrawn while their jobs wait at the processor: the pending one is cancelled there
    before it acted (the subscriber kept), the one the processor had begun is not (400), and its
    task says the processor may have acted. Each task ends at once, each request's workflow too.
    A poll killed right after the processor's 202 (before anything is on record) is followed by one
    that sends nothing more in effect (the DELETE refused, 400: the job is cancelled already) and
    ends the task the same, one event."""
    pending_email, begun_email, killed_email = population_subscribers()[:3]
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, email_delay=_JOB_DELAY) as stack, \
            api(stack) as http:
        agent = await staff_headers(pool, "agent")
        processor = await asyncpg.connect(stack.databases["email_marketing"])
        try:
            async with build_worker(dev_server.client, stack.settings, pool):
                rids = [await _erasure(http, agent, email) for email in (pending_email, begun_email, killed_email)]
                pending, begun, killed = rids
                jobs = {rid: subject_request_id(rid, "email_marketing", "erasure") for rid in rids}
                for rid in rids:
                    assert await _until(lambda rid=rid: _job_pending(http, pool, processor, rid), _ENDS_WITHIN), \
                        (await _view(http, pool, rid))["results"]
                # The processor starts on the second job (it would carry it out when its time came).
                await processor.execute("UPDATE dsr_requests SET request_status = 'in_progress' "
                                        "WHERE subject_request_id = $1", uuid.UUID(jobs[begun]))
                for rid in (pending, begun):
                    r = await http.post(f"/v1/requests/{rid}/cancel", headers=agent, json=WITHDRAWN)
                    assert r.status_code == 200, r.text
                # Before, each workflow followed its job to its end (the pending one: erased there).
                for rid in (pending, begun):
                    handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
                    assert (await asyncio.wait_for(handle.result(), _ENDS_WITHIN))["status"] == "cancelled"
                called_off = await _email_task(http, pool, pending)
                # The subject's letter, written at the close, says the job is being called off.
                (letter,) = letters_for(mail_sink, pending, "cancellation")
                said = " ".join(letter.get_body(("plain",)).get_content().split())
                assert ("We had also asked these systems to act on it, and are now calling that off; any that had "
                        "already begun may have acted: E-mail marketing (newsletters).") in said, said
                may_have = await _email_task(http, pool, begun)
            assert await processor.fetchval(_STATUS, uuid.UUID(jobs[pending])) == "cancelled"
            assert await processor.fetchval("SELECT count(*) FROM subscribers WHERE email = $1", pending_email) == 1

            # The third, closed with no worker running (as its withdrawal records it), its poll killed
            # between the processor's 202 and any record of it; the next poll, as the task's would.
            await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1",
                               uuid.UUID(killed))
            task = TaskInput(request_id=killed, record=True, external_id=jobs[killed],
                             policy_version=await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1",
                                                                uuid.UUID(killed)),
                             task=SystemTask(system="email_marketing", action="erase", connector="opendsr",
                                             label="E-mail marketing (newsletters)"))
            await poll_killed_at(stack.settings, f"opendsr-called-off~{jobs[killed]}", task)
            assert await processor.fetchval(_STATUS, uuid.UUID(jobs[killed])) == "cancelled"
            poll = FanoutActivities(activity_context(stack.settings, pool)).poll_system_action
            again = await ActivityEnvironment().run(poll, task)
        finally:
            await processor.close()

        assert called_off["status"] == "needs_attention", called_off
        assert called_off["message"] == ("called off: the request was closed unanswered, and the job was "
                                         "cancelled at E-mail marketing (newsletters) before it acted"), called_off
        assert (again.status, again.message) == ("needs_attention", called_off["message"])
        assert may_have["message"].startswith("not called off: the request was closed unanswered while E-mail "
                                              "marketing (newsletters) was already carrying out the job"), may_have
        assert may_have["message"].endswith("it may have acted"), may_have

        events = await pool.fetch("SELECT request_id::text, data->>'outcome' AS outcome FROM audit_events "
                                  "WHERE event_type = 'processor.called_off' AND request_id = ANY($1::uuid[])",
                                  [uuid.UUID(rid) for rid in rids])
        outcomes = {e["request_id"]: e["outcome"] for e in events}
        assert len(events) == 3 and outcomes == {pending: "cancelled", begun: "in_progress", killed: "cancelled"}, events
        # The processor's `cancelled` callback that follows a 202 is recorded, and changes nothing.
        assert await _until(lambda: pool.fetchval(
            "SELECT count(*) FROM audit_events WHERE event_type = 'processor.callback' AND request_id = $1 "
            "AND data->>'status' = 'cancelled'", uuid.UUID(pending)), _ENDS_WITHIN)
        assert await pool.fetchval("SELECT message FROM system_tasks WHERE request_id = $1 AND system = $2",
                                   uuid.UUID(pending), "email_marketing") == called_off["message"]
        await _replays(dev_server.client, workflow_id_for(pending),
                       task_workflow_id(pending, "email_marketing", "erase", 1))


def test_the_trail_says_what_the_processor_answered_the_call_off():
    """The console's timeline and the evidence pack's audit table (one reader: event_lines)."""
    labels = {"email_marketing": "E-mail marketing (newsletters)"}
    line = event_lines.describe_event({"event_type": "processor.called_off",
                                       "data": {"system": "email_marketing", "attempt": 1, "outcome": "cancelled"}},
                                      {}, labels)
    assert line == ("Processor's job called off, its request closed "
                    "(E-mail marketing (newsletters): cancelled before it acted)")
    # A processor asked by e-mail, told the request is withdrawn (activities/connectors/manual_email.py).
    told = event_lines.describe_event({"event_type": "processor.withdrawn", "data": {
        "system": "email_marketing", "action": "erase", "to": "privacy@processor.example"}}, {}, labels)
    assert told == ("Processor told by e-mail not to act: the request was closed "
                    "(E-mail marketing (newsletters), which had been asked to erase)")


async def test_a_cancelled_callback_on_a_closed_request_says_only_what_is_known(pool, settings):
    """Every poll of the call-off failed after the processor's 202 (or its `cancelled` callback came
    first): the task's workflow ends on the callback's word. On an open request that is the
    processor's own doing, "the processor cancelled the request"; on one closed unanswered it said
    the same, as if the processor had chosen to, where what is known is that the job is cancelled
    there after the close (the record, the task's event on the timeline and in the evidence pack)."""
    record = FanoutActivities(activity_context(settings, pool)).record_task_result
    said = {}
    for closed in (False, True):
        rid = await stored_request(pool, settings, f"cancelled-callback-{closed}", type_="erasure")
        if closed:
            await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid",
                               rid)
        await ActivityEnvironment().run(record, TaskRecord(request_id=rid, result=TaskResult(
            system="email_marketing", action="erase", status="needs_attention", message=PROCESSOR_CANCELLED)))
        said[closed] = tuple(await pool.fetchrow(
            "SELECT t.message, e.data->>'message' FROM system_tasks t JOIN audit_events e ON e.request_id = t.request_id "
            "AND e.event_type = 'task.needs_attention' WHERE t.request_id = $1::uuid", rid))
    assert said == {False: (PROCESSOR_CANCELLED,) * 2, True: (CANCELLED_AFTER_CLOSE,) * 2}
    assert CANCELLED_AFTER_CLOSE == ("cancelled at the processor, its signed callback says, after the request was "
                                     "closed unanswered")
