"""PackagePurgeWorkflow: delete the package files whose download link has expired. A Temporal
Schedule (`dsrflow-package-purge`, hourly) runs it; `dsrflow packages purge` does the same by hand."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas.copies import PurgeInput, PurgeReport


@workflow.defn(name="PackagePurgeWorkflow")
class PackagePurgeWorkflow:
    @workflow.run
    async def run(self, purge: PurgeInput) -> PurgeReport:
        # "Expired" is judged on the workflow's clock, as the erasure sweep judges "due".
        report: PurgeReport = await workflow.execute_activity(
            "purge_expired_packages",
            purge.model_copy(update={"as_of": workflow.now()}),
            result_type=PurgeReport,
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=10)),
        )
        return report
