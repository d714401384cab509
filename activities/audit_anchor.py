"""The activity of the scheduled audit anchor (dsrflow/domain/audit_anchors.py does the work)."""

from __future__ import annotations

from temporalio import activity

from activities.context import ActivityContext
from dsrflow.domain.audit_anchors import write_anchor
from schemas.audit import AnchorInput, AnchorReport


class AuditAnchorActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="anchor_audit_chains")
    async def anchor_audit_chains(self, anchor: AnchorInput) -> AnchorReport:
        async with self.ctx.pool.acquire() as conn:
            written = await write_anchor(conn)
        if written is None:
            return AnchorReport()
        activity.logger.info("audit chains anchored", extra={"position": written.position, "chains": written.chains})
        return AnchorReport(position=written.position, hash=written.hash, chains=written.chains)
