"""AuditAnchorWorkflow: anchor the heads of the audit chains that changed. A Temporal Schedule
(`dsrflow-audit-anchor`, every ten minutes) runs it; `dsrflow audit verify --anchor` does the same
by hand."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas.audit import AnchorInput, AnchorReport


@workflow.defn(name="AuditAnchorWorkflow")
class AuditAnchorWorkflow:
    @workflow.run
    async def run(self, anchor: AnchorInput) -> AnchorReport:
        report: AnchorReport = await workflow.execute_activity(
            "anchor_audit_chains", anchor, result_type=AnchorReport,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        return report
