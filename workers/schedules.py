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

from schemas.holds import SweepInput
from workflows.erasure_sweep import ErasureSweepWorkflow

SWEEP_SCHEDULE_ID = "dsrflow-erasure-sweep"


async def ensure_schedules(client: Client, task_queue: str) -> None:
    try:
        await client.create_schedule(
            SWEEP_SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    ErasureSweepWorkflow.run, SweepInput(reason="daily sweep"),
                    id="dsrflow-erasure-sweep-run", task_queue=task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1),
                                                                  offset=timedelta(hours=2))]),
            ),
        )
    except ScheduleAlreadyRunningError:
        pass
