"""RetentionSweepWorkflow: apply the policy's retention periods. A daily Temporal Schedule runs it;
each run judges what expired on its own clock and reports counts only."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas.retention import RetentionReport, RetentionSweepInput


@workflow.defn(name="RetentionSweepWorkflow")
class RetentionSweepWorkflow:
    @workflow.run
    async def run(self, sweep: RetentionSweepInput) -> RetentionReport:
        # "Expired" is judged as of the workflow's start, so retries of the activity, a schedule's
        # run and a test on virtual time all see the same moment.
        report: RetentionReport = await workflow.execute_activity(
            "retention_sweep",
            sweep.model_copy(update={"as_of": workflow.now()}),
            result_type=RetentionReport,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=10)),
        )
        return report
