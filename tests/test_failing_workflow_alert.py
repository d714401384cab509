"""A request whose workflow task fails at every try is brought to staff by the start sweep
(activities/request_start_sweep.py `flag_failing_workflows`; RELIABILITY.md row 27): before, such
a request froze, its deadline watch with it, and only the Prometheus alert DsrWorkflowTaskFailing
said so. Two real failing workflows: one whose code raises (a bug deployed), one sealed with a key
the deployment no longer holds (dropped too early), which the alert names."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.request_start_sweep import FAILING_TROUBLE, RequestStartSweepActivities, flag_failing_workflows
from devstack.processes import find_binary
from dsrflow.crypto.keys import load_keyring
from dsrflow.domain import failing_workflows
from dsrflow.domain.failing_workflows import FAILING, failing_task
from dsrflow.infra.temporal_client import build_data_converter
from schemas.request_start import StartSweepInput
from schemas.workflow import workflow_id_for
from tests.support import eventually, letters_for, stored_request
from tests.test_failing_workflow import BrokenRequestWorkflow
from tests.test_request_start_sweep import flag_in_a_process
from workers.dsr_worker import activity_context
from workflows.search_attributes import SEARCH_ATTRIBUTES

# The server marks a workflow (`TemporalReportedProblems`) after five failures in a row by default,
# which with the retries' growing backoff takes a minute or more: the test's own server marks it
# after two, and each workflow task is given a second, not ten, so the mark comes within seconds.
MARK_AFTER_TWO = ["--dynamic-config-value", "system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute=2"]
QUICK_TASKS = timedelta(seconds=1)


@contextlib.asynccontextmanager
async def _marking_server(settings) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")), data_converter=build_data_converter(
            load_keyring(settings)), search_attributes=SEARCH_ATTRIBUTES, dev_server_extra_args=MARK_AFTER_TWO)
    try:
        yield env
    finally:
        await env.shutdown()


@workflow.defn(name="DataSubjectRequestWorkflow")
class FixedRequestWorkflow:
    """The worker fixed: the workflow carries on (here: waits, as a request waits for its steps)."""

    @workflow.run
    async def run(self, _request: object) -> None:
        await workflow.wait_condition(lambda: False)


async def _marked(client: Client, rids: list[str]) -> None:
    """Until the server lists both workflows as failing."""
    wanted = {workflow_id_for(rid) for rid in rids}
    for _ in range(150):
        if wanted <= {w.id async for w in client.list_workflows(FAILING)}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the server never marked the workflows as failing")


async def _carries_on(client: Client, rid: str) -> None:
    """Until the workflow's task completes on the fixed worker (its pending task back at its first try)."""
    handle = client.get_workflow_handle(workflow_id_for(rid))
    for _ in range(100):
        if (await handle.describe()).raw_description.pending_workflow_task.attempt <= 1:
            return
        await asyncio.sleep(0.1)


async def _recorded_after_a_failure(handle) -> bool:
    """Its signals are in its history (they wait there while a failing task is under way)."""
    return EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in [e.event_type async for e in handle.fetch_history_events()]


async def _failing_after_the_signals(client: Client, handle, rids: list[str]) -> bool:
    """The signals recorded, and every workflow's pending task past its first try again."""
    return await _recorded_after_a_failure(handle) and all(
        [await failing_task(client.get_workflow_handle(workflow_id_for(rid))) is not None for rid in rids])


def _text(message) -> str:
    return " ".join(message.get_body(("plain",)).get_content().split())


async def test_a_request_whose_workflow_task_keeps_failing_is_alerted_daily_until_it_carries_on(
        settings, pool, mail_sink, task_queue, monkeypatch):
    async with _marking_server(settings) as server:
        await _frozen_requests_are_alerted(settings, pool, server.client, mail_sink, task_queue, monkeypatch)


async def _frozen_requests_are_alerted(settings, pool, client: Client, mail_sink, task_queue: str, monkeypatch) -> None:
    buggy, sealed = [await stored_request(pool, settings, "frozen", "erasure") for _ in range(2)]
    # Sealed with a key this deployment does not hold: as if dropped while the workflow ran.
    gone = Client(client.service_client, namespace=client.namespace,
                  data_converter=build_data_converter([("k-gone", os.urandom(32))]))
    ctx = activity_context(settings.model_copy(update={"start_sweep_after_minutes": 0}), pool)
    async with Worker(client, task_queue=task_queue, workflows=[BrokenRequestWorkflow],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        for rid, starter in ((buggy, client), (sealed, gone)):
            await starter.start_workflow("DataSubjectRequestWorkflow", rid, id=workflow_id_for(rid),
                                         task_queue=task_queue, task_timeout=QUICK_TASKS)
        await _marked(client, [buggy, sealed])
        # Signals while it fails (as timers that fire or children that end over a long freeze): they
        # are recorded with the failure they bring (once the task under way fails: within seconds).
        handle = client.get_workflow_handle(workflow_id_for(sealed))
        for _ in range(3):
            await handle.signal("nudge")
        # Each signal brings a new task at its first try until it fails too (`failing_task` reads
        # that as moving again): the sweeps below read both once they fail again. The clean clone
        # at 1b43208b, loaded, counted one alert of the two where the schedule's sweep ran between.
        await eventually(lambda: _failing_after_the_signals(client, handle, [buggy, sealed]), 30)
        # A workflow failing for less than the sweep's threshold is left for later.
        assert await flag_failing_workflows(ctx, client, older_than=timedelta(minutes=10)) == 0
        # The schedule's sweep, as an activity (its threshold 0 here): one alert each.
        report = await ActivityEnvironment(client=client).run(
            RequestStartSweepActivities(ctx).start_unstarted_requests, StartSweepInput(reason="test"))
        again = await flag_failing_workflows(ctx, client, older_than=timedelta(0))
        now = datetime.now(UTC)
        tomorrow = await flag_failing_workflows(ctx, client, older_than=timedelta(0), now=now + timedelta(days=1))
        # The signals (sent above) in its history after the stretch's first failure; with pages of two
        # events, that is pages away, as a freeze of weeks puts it more than a page of 100 away.
        monkeypatch.setattr(failing_workflows, "_PAGE", 2)
        await eventually(lambda: _recorded_after_a_failure(handle), 30)
    assert report.failing_alerted >= 2 and again == 0 and tomorrow >= 2
    first, reminder = (_text(m) for m in letters_for(mail_sink, buggy, "staff_alert"))
    assert f"Request {buggy} needs attention from staff." in first
    assert "The request's workflow has failed each time it tried to carry on since" in first
    assert "attempts so far): no step of it runs, not even its deadline warnings" in first
    assert "the worker's log and the workflow's history in the Temporal UI name it" in first
    assert "Staff are reminded each day until it carries on." in first and "Days left: 30" in first
    assert "It has been stuck for 1 day; staff are reminded each day" in reminder and "Days left: 29" in reminder
    told, _ = (_text(m) for m in letters_for(mail_sink, sealed, "staff_alert"))
    assert "encrypted with the key “k-gone”, which this deployment no longer holds" in told
    assert "worker's code" not in told
    events = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND "
                              "event_type = 'request.workflow_failing'", uuid.UUID(sealed))
    assert [e["data"]["unheld_key"] for e in events] == ["k-gone"] and events[0]["data"]["attempts"] >= 2

    # A process flagging them (started now: its imports overlap the waits below), to die on the
    # alert of a stretch of `buggy` not alerted yet (`_a_stretch_whose_sweep_died_before_its_alert`).
    flagging = asyncio.create_task(flag_in_a_process(
        settings.model_copy(update={"temporal_address": client.service_client.config.target_host}),
        "flag_failing_workflows", f"mail-claimed~{buggy}:staff_alert:{FAILING_TROUBLE}:"))
    # The worker fixed: the workflow carries on, and the alerts stop.
    async with Worker(client, task_queue=task_queue, workflows=[FixedRequestWorkflow],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        await _carries_on(client, buggy)
        later = await flag_failing_workflows(ctx, client, older_than=timedelta(0), now=now + timedelta(days=2, hours=1))

        async def recovered() -> list[str]:  # the server clears its mark once a task completes: soon after
            await flag_failing_workflows(ctx, client, older_than=timedelta(0), now=now + timedelta(days=2, hours=2))
            return [str(r["request_id"]) for r in await pool.fetch(
                "SELECT request_id FROM audit_events WHERE request_id = ANY($1::uuid[]) "
                "AND event_type = 'request.workflow_recovered'", [buggy, sealed])]

        await eventually(recovered, 30)
        # The end of the stretch is on record, once: the timeline says how long it was frozen.
        assert await recovered() == [buggy]
    await _a_stretch_whose_sweep_died_before_its_alert(ctx, client, task_queue, buggy, flagging)
    assert later == 1  # the sealed one, still failing
    assert len(letters_for(mail_sink, buggy, "staff_alert")) == 2
    assert len(letters_for(mail_sink, sealed, "staff_alert")) == 3
    # Still the one stretch, its start and key unchanged: no second alert nor record of it.
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND "
                               "event_type = 'request.workflow_failing'", uuid.UUID(sealed)) == 1
    for rid in (buggy, sealed):
        await client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")


async def _a_stretch_whose_sweep_died_before_its_alert(ctx, client: Client, task_queue: str, rid: str,
                                                       flagging: asyncio.Task[subprocess.CompletedProcess[str]]) -> None:
    """The bug back (a signal's task fails again: a second stretch), the process `flagging` it
    killed once its alert is claimed, before the relay has it, and the workflow fixed before the
    next run (the worker restarted by the very deploy that fixes it, say). Before, the alert came
    first and the stretch's record after it: neither this stretch nor its end was ever on record.
    Now both are; staff, whose alert never went, are not told of a freeze that is over."""
    async with Worker(client, task_queue=task_queue, workflows=[BrokenRequestWorkflow],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        await client.get_workflow_handle(workflow_id_for(rid)).signal("nudge")
        ran = await flagging  # until the server marks it again
        assert ran.returncode == -9, ran.stderr[-3000:]
    stretches = "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = $2"
    async with Worker(client, task_queue=task_queue, workflows=[FixedRequestWorkflow],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        await _carries_on(client, rid)

        async def ended() -> bool:
            await flag_failing_workflows(ctx, client, older_than=timedelta(0))
            return await ctx.pool.fetchval(stretches, uuid.UUID(rid), "request.workflow_recovered") == 2

        await eventually(ended, 30)
    assert await ctx.pool.fetchval(stretches, uuid.UUID(rid), "request.workflow_failing") == 2


async def test_days_left_are_counted_on_the_controllers_calendar_not_the_machines(settings, pool):
    """A staff alert's "Days left" (the frozen-workflow alert, a package's unreadable system):
    the package's alert counted from the machine's date, a day too many each evening from 23:00
    UTC (midnight in Brussels), when the controller's day has already turned."""
    ctx = activity_context(settings, pool)
    rid = await stored_request(pool, settings, "days-left", "erasure")
    row = await pool.fetchrow("SELECT * FROM dsr_requests WHERE id = $1", uuid.UUID(rid))
    due = row["current_due_date"]
    evening = datetime(due.year, due.month, due.day, 22, 30, tzinfo=UTC) - timedelta(days=10)
    assert await ctx.days_left(row, evening) == 10
    assert await ctx.days_left(row, evening + timedelta(hours=1)) == 9  # 00:30 in Brussels
    closed = {**row, "closed_at": evening}
    assert await ctx.days_left(closed, evening) is None
