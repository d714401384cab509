"""The sweep that starts stored requests left without a workflow (activities/request_start_sweep.py),
through the windows that leave one: an API killed between storing a request and starting it, the
sweep's own worker killed between its record and the start, and PostgreSQL down while it runs.
Each on a database of its own: the session's holds requests stored without workflows."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.request_start_sweep import RequestStartSweepActivities, flag_ended_workflows, remind_stopped
from api.console.view import describe_event
from devstack.processes import free_port
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.request_resume import ended_trouble_key, stopped_requests
from dsrflow.domain.request_start import start_request_workflow
from dsrflow.infra.db import create_pool
from dsrflow.infra.metrics import DatabaseGauges
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.request_start import StartSweepInput
from schemas.requests import NewRequest
from schemas.workflow import workflow_id_for
from tests.conftest import database_pool, make_database, running_postgres
from tests.process_support import answering, died, dsrflow_process
from tests.support import letters_for, live_client, settings_env, staff_headers
from workers.dsr_worker import activity_context, build_worker
from workflows.request_start_sweep import RequestStartSweepWorkflow

SWEPT = "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = 'request.start_swept'"


async def _stored_long_ago(pool, settings) -> str:
    """An erasure stored two minutes ago (past the one-minute threshold these tests set), never started."""
    row, _ = await create_request(pool, NewRequest(type="erasure", subject={"email": "ada@example.com"},
                                                   identity_attested=True),
                                  loaded_policy=load_policy(settings.policy_path), secret=load_secret_key(settings),
                                  actor="test", idempotency_key=None)
    await pool.execute("UPDATE dsr_requests SET created_at = created_at - interval '2 minutes' WHERE id = $1",
                       row["id"])
    return str(row["id"])


def _sweep_id() -> str:
    return f"sweep-{uuid.uuid4().hex[:8]}"


async def _unstarted_gauges(pool) -> dict[str, float]:
    gauges = DatabaseGauges(ttl=0)
    await gauges.refresh(pool, "UTC")
    return {f.name: f.samples[0].value for f in gauges.collect() if f.name.startswith("dsrflow_requests_unstarted")}


async def test_a_request_stored_by_an_api_killed_before_starting_it_is_started_by_the_sweep(
        postgres, settings, dev_server, mail_sink, task_queue, tmp_path):
    """The API dies right after storing a request, before starting its workflow: its caller has no
    answer, and one who gives up (or has no Idempotency-Key) never repeats the call. The worker's
    scheduled sweep starts it, once; a request whose workflow only waits for a worker is left
    alone. On a database of its own: the session's holds requests stored without workflows."""
    client = dev_server.client
    port = free_port()
    async with database_pool(postgres, "sweep") as (database_url, pool):
        ours = settings.model_copy(update={
            "database_url": database_url, "task_queue": task_queue, "api_port": port,
            "public_url": f"http://127.0.0.1:{port}", "start_sweep_after_minutes": 1})
        async with live_client(base_url=ours.public_url, timeout=30) as http:
            async with dsrflow_process("api", ours, client, tmp_path, failpoints="request-stored") as first:
                await answering(http, first, tmp_path)
                with pytest.raises(httpx.TransportError):
                    await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                        "type": "erasure", "subject": {"email": "ada@example.com"}, "identity_attested": True})
                await died(first, tmp_path, role="api")
        stored = str(await pool.fetchval("SELECT id FROM dsr_requests"))
        # Another request, whose workflow waits on a queue no worker serves.
        loaded = load_policy(ours.policy_path)
        waiting, _ = await create_request(pool, NewRequest(type="erasure", subject={"email": "bob@example.com"},
                                                           identity_attested=True),
                                          loaded_policy=loaded, secret=load_secret_key(ours), actor="test",
                                          idempotency_key=None)
        await start_request_workflow(client, waiting, 60, task_queue=f"{task_queue}-unserved", task_timeout=10)
        await pool.execute("UPDATE dsr_requests SET created_at = created_at - interval '2 minutes'")
        with pytest.raises(RPCError):
            await client.get_workflow_handle(workflow_id_for(stored)).describe()
        before = await _unstarted_gauges(pool)

        async with build_worker(client, ours, pool, task_queue=task_queue):
            sweeps = [await client.execute_workflow(
                RequestStartSweepWorkflow.run, StartSweepInput(reason="test"), id=_sweep_id(),
                task_queue=task_queue) for _ in range(2)]
            state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(stored)).result(), 60)
            third = await client.execute_workflow(
                RequestStartSweepWorkflow.run, StartSweepInput(reason="test"), id=_sweep_id(),
                task_queue=task_queue)
        await client.get_workflow_handle(workflow_id_for(str(waiting["id"]))).terminate("test over")
        events = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1 ORDER BY chain_pos",
                                  uuid.UUID(stored))
        after = await _unstarted_gauges(pool)
        # Each run's success is on record, for DsrSweepStale (tests/test_sweep_runs.py).
        succeeded = await pool.fetchrow("SELECT last_success_at > now() - interval '1 minute' AS recent, summary "
                                        "FROM sweep_runs WHERE sweep = 'request_start_sweep'")
    assert (sweeps[0].found, sweeps[0].started) == (2, 1)
    assert sweeps[1].started == 0  # it may still find the request started, before its first step
    assert (third.found, third.started) == (1, 0)  # the waiting one, still left alone
    # What DsrRequestsNotStarted reads: two unstarted, then only the one no worker ever ran.
    assert before["dsrflow_requests_unstarted"] == 2 and before["dsrflow_requests_unstarted_oldest_seconds"] >= 120
    assert after["dsrflow_requests_unstarted"] == 1
    assert succeeded["recent"] and succeeded["summary"]["found"] == 1  # the third run's
    assert state["status"] == "completed"
    assert len(letters_for(mail_sink, stored, "acknowledgement")) == 1
    assert len(letters_for(mail_sink, stored, "response")) == 1
    assert [e["event_type"] for e in events][:3] == ["request.created", "request.start_swept", "request.received"]
    (swept,) = [e for e in events if e["event_type"] == "request.start_swept"]
    assert describe_event(swept) == \
        "Started by the sweep: stored, but its start had been lost (2 minutes after it was stored)"


async def test_a_sweep_killed_between_its_record_and_the_start_leaves_it_to_the_next_run(
        postgres, settings, dev_server, mail_sink, task_queue, tmp_path):
    """The worker running the sweep dies after auditing that it starts a stored request, before
    starting it: the next run finds the request still without a workflow, starts it, and adds no
    second record of it. On a database of its own, as above."""
    client = dev_server.client
    async with database_pool(postgres, "sweep") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url, "task_queue": task_queue,
                                           "start_sweep_after_minutes": 1})
        stored = await _stored_long_ago(pool, ours)
        async with dsrflow_process("worker", ours, client, tmp_path, failpoints="start-swept-recorded") as worker:
            first = await client.start_workflow(RequestStartSweepWorkflow.run, StartSweepInput(reason="test"),
                                                id=_sweep_id(), task_queue=task_queue)
            await died(worker, tmp_path)
        assert await pool.fetchval(SWEPT, uuid.UUID(stored)) == 1
        with pytest.raises(RPCError):
            await client.get_workflow_handle(workflow_id_for(stored)).describe()

        async with build_worker(client, ours, pool, task_queue=task_queue):
            second = await client.execute_workflow(
                RequestStartSweepWorkflow.run, StartSweepInput(reason="test"), id=_sweep_id(),
                task_queue=task_queue)
            state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(stored)).result(), 60)
        await first.terminate("its activity would be retried after the heartbeat timeout; the test is over")
        assert await pool.fetchval(SWEPT, uuid.UUID(stored)) == 1
    assert (second.found, second.started) == (1, 1)
    assert state["status"] == "completed"
    assert len(letters_for(mail_sink, stored, "acknowledgement")) == 1
    assert len(letters_for(mail_sink, stored, "response")) == 1



async def _attempts(handle: WorkflowHandle) -> int:
    """The attempt its pending activity is on (0: none pending)."""
    pending = (await handle.describe()).raw_description.pending_activities
    return pending[0].attempt if pending else 0


async def test_a_sweep_that_finds_the_database_down_starts_the_request_once_it_is_back(
        settings, dev_server, mail_sink, task_queue, tmp_path):
    """PostgreSQL is down when the sweep runs: its step fails and is retried (no request started,
    nothing half-recorded), and the first attempt after the database is back starts the request,
    once. On a PostgreSQL of its own, stopped and started again."""
    client = dev_server.client
    (tmp_path / "pg").mkdir()
    async with running_postgres(tmp_path / "pg") as server:
        url = await make_database(server, "sweep")
        ours = settings.model_copy(update={"database_url": url, "task_queue": task_queue,
                                           "start_sweep_after_minutes": 1})
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            stored = await _stored_long_ago(pool, ours)
            async with build_worker(client, ours, pool, task_queue=task_queue):
                server.stop()
                sweep = await client.start_workflow(RequestStartSweepWorkflow.run, StartSweepInput(reason="test"),
                                                    id=_sweep_id(), task_queue=task_queue)
                for _ in range(300):
                    if await _attempts(sweep) >= 2:  # the first attempt failed on the database
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the sweep's step was never retried while the database was down")
                with pytest.raises(RPCError):
                    await client.get_workflow_handle(workflow_id_for(stored)).describe()
                server.start(tmp_path / "pg" / "postgres-again.log")
                await server.wait_ready()
                report = await asyncio.wait_for(sweep.result(), 60)
                state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(stored)).result(), 60)
            swept = await pool.fetchval(SWEPT, uuid.UUID(stored))
        finally:
            await pool.close()
    assert (report.found, report.started) == (1, 1)
    assert swept == 1
    assert state["status"] == "completed"
    assert len(letters_for(mail_sink, stored, "acknowledgement")) == 1
    assert len(letters_for(mail_sink, stored, "response")) == 1


async def test_a_request_whose_policy_version_does_not_load_holds_back_no_other(postgres, settings, dev_server):
    """Requests are swept oldest first: one whose stored policy version no longer loads used to
    fail the sweep at it, every run, and the requests after it were never started. It is now
    counted apart (the unstarted gauge and its alert still show it) and the others start."""
    client = dev_server.client
    async with database_pool(postgres, "sweep_unloadable") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url, "start_sweep_after_minutes": 1})
        broken, fine = await _stored_long_ago(pool, ours), await _stored_long_ago(pool, ours)
        await pool.execute("INSERT INTO policy_versions (version, content) VALUES ('unreadable', '{\"controller\": 1}')")
        await pool.execute("UPDATE dsr_requests SET policy_version = 'unreadable', created_at = created_at - "
                           "interval '1 minute' WHERE id = $1", uuid.UUID(broken))  # the oldest: swept first
        sweep = RequestStartSweepActivities(activity_context(ours, pool)).start_unstarted_requests
        report = await ActivityEnvironment(client=client).run(sweep, StartSweepInput(reason="test"))
        started = client.get_workflow_handle(workflow_id_for(fine))
        await started.describe()  # it exists: started
        await started.terminate("test over")
        after = await _unstarted_gauges(pool)
    assert (report.found, report.started, report.unstartable) == (2, 1, 1)
    # Both still have no due date: the broken one for good (the gauge and DsrRequestsNotStarted
    # keep showing it), the other until a worker runs its workflow.
    assert after["dsrflow_requests_unstarted"] == 2


async def test_an_open_request_whose_workflow_ended_is_flagged_for_staff_once(postgres, settings, dev_server,
                                                                                  mail_sink):
    """A request's workflow is terminated (an operator's mistake; a workflow that fails ends the
    same way) while the request is open: every staff action on it is refused from then on, and
    nobody was told. The sweep flags it: a trouble on record (the queue's needs-attention filter
    and the steps gauge show it) and one staff alert, whatever the later runs."""
    client = dev_server.client
    async with database_pool(postgres, "sweep_ended") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url, "start_sweep_after_minutes": 1})
        rid = await _stored_long_ago(pool, ours)
        await start_request_workflow(client, dict(await pool.fetchrow(
            "SELECT * FROM dsr_requests WHERE id = $1", uuid.UUID(rid))), 60, task_queue=f"ended-{uuid.uuid4().hex[:6]}",
            task_timeout=10)
        await client.get_workflow_handle(workflow_id_for(rid)).terminate("by mistake")
        # The sweep flags what ended DSRFLOW_START_SWEEP_AFTER_MINUTES ago at least; here, at once.
        ctx = activity_context(ours, pool)
        reports = []
        for _ in range(100):  # the server's list of ended workflows catches up within a second or so
            reports.append(await flag_ended_workflows(ctx, client, older_than=timedelta(0)))
            if reports[-1]:
                break
            await asyncio.sleep(0.1)
        again = await flag_ended_workflows(ctx, client, older_than=timedelta(0))
        swept = await ActivityEnvironment(client=client).run(
            RequestStartSweepActivities(ctx).start_unstarted_requests, StartSweepInput(reason="test"))
        trouble = await pool.fetchrow("SELECT * FROM step_troubles WHERE request_id = $1", uuid.UUID(rid))
    assert reports[-1] == 1 and again == 0 and swept.ended_flagged == 0
    assert trouble["step"] == "workflow" and "terminated" in trouble["message"] and trouble["resolved_at"] is None
    [alert] = letters_for(mail_sink, rid, "staff_alert")
    told = " ".join(alert.get_body(("plain",)).get_content().split())
    assert "workflow was terminated while the request was open" in told
    assert "no deadline warning comes, though its deadline runs on" in told
    assert "reminded each day it stays stopped" in told


# One of the sweep's flags (argv[1]: flag_ended_workflows, flag_failing_workflows) in a process of its
# own (older_than 0: the schedule's sweep waits a minute at least), to be killed at a failpoint: run
# again every 0.2 s for up to 30 s, as the server's lists catch up (a process started each time
# would spend two seconds importing).
_FLAG = """
import asyncio, sys
from datetime import timedelta
from activities import request_start_sweep
from dsrflow.infra.db import create_pool
from dsrflow.infra.temporal_client import connect_client
from dsrflow.settings import load_settings
from workers.dsr_worker import activity_context

async def main():
    settings = load_settings()
    pool = await create_pool(settings.effective_database_url, min_size=1, max_size=4)
    client = await connect_client(settings)
    for _ in range(150):
        await getattr(request_start_sweep, sys.argv[1])(activity_context(settings, pool), client,
                                                        older_than=timedelta(0))
        await asyncio.sleep(0.2)

asyncio.run(main())
"""


async def flag_in_a_process(settings, flag: str, failpoints: str) -> subprocess.CompletedProcess[str]:
    """The sweep's `flag` run by a process of its own until it dies at `failpoints` (30 s at most)."""
    env = {**os.environ, **settings_env(settings), "DSRFLOW_FAILPOINTS": failpoints}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-c", _FLAG, flag], env=env,
                                   capture_output=True, text=True, timeout=120)


async def test_a_flag_killed_after_its_alert_went_is_recorded_by_the_next_run_without_a_second_alert(
        postgres, settings, dev_server, mail_sink):
    """The process flagging an ended workflow dies after staff were e-mailed, before the flag is on
    record: the next run records it (the trouble and its audit event), and the alert, keyed by the
    ended run, does not go twice."""
    client = dev_server.client
    async with database_pool(postgres, "sweep_ended_killed") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url,
                                           "temporal_address": client.service_client.config.target_host})
        rid = await _stored_long_ago(pool, ours)
        await start_request_workflow(client, dict(await pool.fetchrow(
            "SELECT * FROM dsr_requests WHERE id = $1", uuid.UUID(rid))), 60, task_queue=f"ended-{uuid.uuid4().hex[:6]}",
            task_timeout=10)
        await client.get_workflow_handle(workflow_id_for(rid)).terminate("by mistake")
        # The server's list of ended workflows catches up within a second or so.
        ran = await flag_in_a_process(ours, "flag_ended_workflows", f"workflow-ended-alerted~{rid}")
        assert ran.returncode == -9, "the flag never reached its failpoint: " + ran.stderr[-3000:]
        alerted = len(letters_for(mail_sink, rid, "staff_alert"))
        unrecorded = await pool.fetchval("SELECT count(*) FROM step_troubles WHERE request_id = $1", uuid.UUID(rid))
        flagged = await flag_ended_workflows(activity_context(ours, pool), client, older_than=timedelta(0))
        trouble = await pool.fetchval("SELECT count(*) FROM step_troubles WHERE request_id = $1 "
                                      "AND resolved_at IS NULL", uuid.UUID(rid))
        events = await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                                     "AND event_type = 'request.workflow_ended'", uuid.UUID(rid))
    assert (alerted, unrecorded) == (1, 0)
    assert (flagged, trouble, events) == (1, 1, 1)
    assert len(letters_for(mail_sink, rid, "staff_alert")) == 1


async def test_staff_are_reminded_each_day_a_request_stays_stopped(postgres, settings, mail_sink):
    """No deadline warning comes while a request is stopped, so each whole day it stays stopped
    staff are told again, with the days left: a request flagged 25 hours ago gets one reminder, a
    repeat within the day none, the next day one more; one past its due date is told it is
    overdue. A closed request's stale flag gets none."""
    async with database_pool(postgres, "sweep_remind") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url})
        rid, closed, late = [await _stored_long_ago(pool, ours) for _ in range(3)]
        await pool.execute("UPDATE dsr_requests SET due_date = current_date + 3, current_due_date = current_date + 3 "
                           "WHERE id = ANY($1::uuid[])", [rid, closed])
        await pool.execute("UPDATE dsr_requests SET due_date = current_date - 5, current_due_date = current_date - 5 "
                           "WHERE id = $1::uuid", late)
        for request_id in (rid, closed, late):
            await pool.execute(
                """INSERT INTO step_troubles (request_id, trouble_key, step, message, transient, since)
                   VALUES ($1::uuid, $2, 'workflow', 'the request''s workflow terminated while the request was open',
                           false, now() - interval '25 hours')""", request_id, ended_trouble_key(f"run-{request_id}"))
        await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid", closed)
        due = await pool.fetchval("SELECT current_due_date FROM dsr_requests WHERE id = $1::uuid", rid)
        listed = [str(r["request_id"]) for r in await stopped_requests(pool)]  # the nearest due date first
        ctx = activity_context(ours, pool)
        now = datetime.now(UTC)
        sent = [await remind_stopped(ctx, now), await remind_stopped(ctx, now + timedelta(hours=1)),
                await remind_stopped(ctx, now + timedelta(days=1))]
    assert listed == [late, rid] and sent == [2, 0, 2]
    [overdue, _] = letters_for(mail_sink, late, "staff_alert")
    assert f"Request {late} is overdue" in " ".join(overdue.get_body(("plain",)).get_content().split())
    timezone = ZoneInfo(load_policy(settings.policy_path).policy.defaults.timezone)
    told = [" ".join(alert.get_body(("plain",)).get_content().split())
            for alert in letters_for(mail_sink, rid, "staff_alert")]
    assert len(told) == 2 and letters_for(mail_sink, closed, "staff_alert") == []
    for day, text in enumerate(told, 1):
        days_left = (due - (now + timedelta(days=day - 1)).astimezone(timezone).date()).days
        assert f"still stopped, {day} day{'' if day == 1 else 's'} after it was flagged" in text, text
        assert f"Days left: {days_left}" in text and "No deadline warning comes while it is stopped" in text
