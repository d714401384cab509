"""Temporal Schedules the worker makes sure exist (created once, left alone if present)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

from schemas.audit import AnchorInput
from schemas.copies import PurgeInput
from schemas.holds import SweepInput
from schemas.request_start import StartSweepInput
from schemas.retention import RetentionSweepInput
from schemas.sweeps import SWEEP_EVERY
from workflows.audit_anchor import AuditAnchorWorkflow
from workflows.erasure_sweep import ErasureSweepWorkflow
from workflows.package_purge import PackagePurgeWorkflow
from workflows.request_start_sweep import RequestStartSweepWorkflow
from workflows.retention_sweep import RetentionSweepWorkflow

SWEEP_SCHEDULE_ID = "dsrflow-erasure-sweep"
RETENTION_SCHEDULE_ID = "dsrflow-retention-sweep"
PACKAGE_PURGE_SCHEDULE_ID = "dsrflow-package-purge"
AUDIT_ANCHOR_SCHEDULE_ID = "dsrflow-audit-anchor"
START_SWEEP_SCHEDULE_ID = "dsrflow-request-start-sweep"
SCHEDULE_IDS = (SWEEP_SCHEDULE_ID, RETENTION_SCHEDULE_ID, PACKAGE_PURGE_SCHEDULE_ID,
                AUDIT_ANCHOR_SCHEDULE_ID, START_SWEEP_SCHEDULE_ID)  # all a worker makes
# How often each runs: schemas/sweeps.py, which the sweeps' last-success gauges read too.
# How often stored requests left without a workflow are looked for (the API's 503 says so).
START_SWEEP_EVERY = SWEEP_EVERY["request_start_sweep"]


async def _ensure(client: Client, schedule_id: str, action: ScheduleActionStartWorkflow,
                  offset: timedelta, every: timedelta) -> None:
    try:
        await client.create_schedule(
            schedule_id,
            Schedule(action=action, spec=ScheduleSpec(
                intervals=[ScheduleIntervalSpec(every=every, offset=offset)])),
        )
    except ScheduleAlreadyRunningError:
        pass


async def ensure_schedules(client: Client, task_queue: str) -> None:
    await _ensure(client, SWEEP_SCHEDULE_ID, ScheduleActionStartWorkflow(
        ErasureSweepWorkflow.run, SweepInput(reason="daily sweep"),
        id="dsrflow-erasure-sweep-run", task_queue=task_queue,
    ), offset=timedelta(hours=2), every=SWEEP_EVERY["erasure_sweep"])
    # An hour after the erasure sweep, so the two daily runs do not compete for the workers.
    await _ensure(client, RETENTION_SCHEDULE_ID, ScheduleActionStartWorkflow(
        RetentionSweepWorkflow.run, RetentionSweepInput(reason="daily retention sweep"),
        id="dsrflow-retention-sweep-run", task_queue=task_queue,
    ), offset=timedelta(hours=3), every=SWEEP_EVERY["retention_sweep"])
    # Hourly: a package outlives its link by an hour at most.
    await _ensure(client, PACKAGE_PURGE_SCHEDULE_ID, ScheduleActionStartWorkflow(
        PackagePurgeWorkflow.run, PurgeInput(reason="hourly package purge"),
        id="dsrflow-package-purge-run", task_queue=task_queue,
    ), offset=timedelta(minutes=17), every=SWEEP_EVERY["package_purge"])
    # Every ten minutes: one UPDATE over the chains that changed, and one anchor row.
    await _ensure(client, AUDIT_ANCHOR_SCHEDULE_ID, ScheduleActionStartWorkflow(
        AuditAnchorWorkflow.run, AnchorInput(),
        id="dsrflow-audit-anchor-run", task_queue=task_queue,
    ), offset=timedelta(0), every=SWEEP_EVERY["audit_anchor"])
    # Every five minutes: one indexed read, empty unless a request was stored and never started.
    await _ensure(client, START_SWEEP_SCHEDULE_ID, ScheduleActionStartWorkflow(
        RequestStartSweepWorkflow.run, StartSweepInput(),
        id="dsrflow-request-start-sweep-run", task_queue=task_queue,
    ), offset=timedelta(minutes=2), every=START_SWEEP_EVERY)
