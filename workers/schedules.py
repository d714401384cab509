"""Temporal Schedules the worker makes sure exist, as this version defines them (created once;
brought to this version's interval, workflow and task queue where an earlier one made them)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
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
# How often each runs: schemas/sweeps.py, which the sweeps' gauges (and the API's 503) read too.


async def _ensure(client: Client, schedule_id: str, action: ScheduleActionStartWorkflow,
                  offset: timedelta, every: timedelta) -> None:
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every, offset=offset)])
    try:
        await client.create_schedule(schedule_id, Schedule(action=action, spec=spec))
    except ScheduleAlreadyRunningError:
        # Made by an earlier version, or for another task queue: brought to this one's. Left
        # alone, an interval changed in schemas/sweeps.py would keep its old runs under the new
        # staleness thresholds, and a renamed queue would run nothing (DsrSweepStale).
        await client.get_schedule_handle(schedule_id).update(lambda current: _updated(current, action, spec))


def _updated(current: ScheduleUpdateInput, action: ScheduleActionStartWorkflow,
             spec: ScheduleSpec) -> ScheduleUpdate | None:
    """The schedule with this version's spec and action, or None when it has them already (its
    workflow, run id and task queue; a pause and its note stay as they are)."""
    schedule = current.description.schedule
    now = schedule.action
    if (schedule.spec.intervals == spec.intervals and isinstance(now, ScheduleActionStartWorkflow)
            and (now.workflow, now.id, now.task_queue) == (action.workflow, action.id, action.task_queue)):
        return None
    return ScheduleUpdate(schedule=replace(schedule, action=action, spec=spec))


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
    ), offset=timedelta(minutes=2), every=SWEEP_EVERY["request_start_sweep"])
