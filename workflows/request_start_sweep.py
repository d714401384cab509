"""RequestStartSweepWorkflow: start the stored requests left without a workflow, and tell the tasks
waiting for a processor's answer already on record (activities/request_start_sweep.py). A Temporal
Schedule (`dsrflow-request-start-sweep`, every five minutes) runs it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas.request_start import StartSweepInput, StartSweepReport


@workflow.defn(name="RequestStartSweepWorkflow")
class RequestStartSweepWorkflow:
    @workflow.run
    async def run(self, sweep: StartSweepInput) -> StartSweepReport:
        report: StartSweepReport = await workflow.execute_activity(
            "start_unstarted_requests", sweep, result_type=StartSweepReport,
            start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        return report
