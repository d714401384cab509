"""The activity of the scheduled audit anchor (dsrflow/domain/audit_anchors.py does the work)."""

from __future__ import annotations

from temporalio import activity

from activities.context import ActivityContext
from dsrflow.domain.audit_anchors import write_anchor
from dsrflow.stores.sweep_runs import record_sweep_success
from schemas.audit import AnchorInput, AnchorReport


class AuditAnchorActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="anchor_audit_chains")
    async def anchor_audit_chains(self, anchor: AnchorInput) -> AnchorReport:
        async with self.ctx.pool.acquire() as conn:
            written = await write_anchor(conn)
        if written is None:
            report = AnchorReport()  # no chain changed: nothing to anchor, and that is a success
        else:
            activity.logger.info("audit chains anchored", extra={"position": written.position, "chains": written.chains})
            report = AnchorReport(position=written.position, hash=written.hash, chains=written.chains)
        await record_sweep_success(self.ctx.pool, "audit_anchor", report)
        return report
