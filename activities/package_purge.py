"""The activity of the scheduled package purge (dsrflow/stores/kept_copies.py does the work)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities.context import ActivityContext
from dsrflow.stores.kept_copies import purge_expired
from dsrflow.stores.sweep_runs import record_sweep_success
from schemas.copies import PurgeInput, PurgeReport


class PackagePurgeActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="purge_expired_packages")
    async def purge_expired_packages(self, purge: PurgeInput) -> PurgeReport:
        report = await purge_expired(self.ctx.pool, self.ctx.storage, purge.as_of or datetime.now(UTC))
        activity.logger.info("expired packages purged", extra={"packages": report.packages})
        await record_sweep_success(self.ctx.pool, "package_purge", report)
        return report
