"""ErasureSweepWorkflow: erase what a hold kept once the hold has ended. A daily Temporal Schedule
runs it for everything due; releasing a legal-claims hold runs it at once for that subject."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas.holds import SweepInput, SweepReport


@workflow.defn(name="ErasureSweepWorkflow")
class ErasureSweepWorkflow:
    @workflow.run
    async def run(self, sweep: SweepInput) -> SweepReport:
        # "Due" is judged on the workflow's clock, so a schedule's run (and a test on virtual
        # time) sees the day it runs on.
        report: SweepReport = await workflow.execute_activity(
            "sweep_deferred_erasures",
            sweep.model_copy(update={"as_of": workflow.now()}),
            result_type=SweepReport,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=10)),
        )
        return report
