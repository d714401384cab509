"""When each scheduled sweep last succeeded, as an operator reads it on /metrics: every sweep shows
from the install on, a success moves its own, a run for one subject does not count as the
schedule's, and a sweep that stopped shows past the point where DsrSweepStale fires (on a database
of its own: the sweeps take every row of theirs); and the schedules a worker keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.testing import ActivityEnvironment

from activities.audit_anchor import AuditAnchorActivities
from activities.deferred import DeferredErasureActivities
from activities.package_purge import PackagePurgeActivities
from dsrflow.infra.metrics import DatabaseGauges
from dsrflow.stores.sweep_runs import record_sweep_success
from schemas.audit import AnchorInput
from schemas.copies import PurgeInput
from schemas.holds import SweepInput
from schemas.retention import RetentionReport, RetentionSweepInput, RuleOutcome
from schemas.sweeps import SWEEP_EVERY
from tests.conftest import database_pool
from tests.support import delete_schedules
from workers.dsr_worker import activity_context
from workers.schedules import RETENTION_SCHEDULE_ID, SCHEDULE_IDS, SWEEP_SCHEDULE_ID, ensure_schedules


async def _gauges(pool) -> dict[str, dict[str, float]]:
    gauges = DatabaseGauges(ttl=0)
    await gauges.refresh(pool, "UTC")
    return {f.name: {s.labels["sweep"]: s.value for s in f.samples}
            for f in gauges.collect() if f.name.startswith("dsrflow_sweep_")}


def _stale(gauges: dict[str, dict[str, float]], sweep: str) -> bool:
    """What DsrSweepStale compares."""
    return (gauges["dsrflow_sweep_last_success_age_seconds"][sweep]
            > gauges["dsrflow_sweep_stale_after_seconds"][sweep])


async def test_each_sweep_shows_its_last_success_and_a_stopped_one_shows_stale(postgres, settings):
    async with database_pool(postgres, "sweep_runs") as (url, pool):
        ctx = activity_context(settings.model_copy(update={"database_url": url}), pool)
        fresh = await _gauges(pool)
        await pool.execute("UPDATE sweep_runs SET last_success_at = now() - interval '3 days'")
        env = ActivityEnvironment()
        await env.run(DeferredErasureActivities(ctx).sweep, SweepInput(reason="hold released", subject_hash="x"))
        one_subject = await _gauges(pool)
        await env.run(DeferredErasureActivities(ctx).sweep, SweepInput(reason="test"))
        await env.run(PackagePurgeActivities(ctx).purge_expired_packages, PurgeInput(reason="test"))
        await env.run(AuditAnchorActivities(ctx).anchor_audit_chains, AnchorInput())
        after = await _gauges(pool)
        summary = await pool.fetchval("SELECT summary FROM sweep_runs WHERE sweep = 'package_purge'")
    ages, limits = fresh["dsrflow_sweep_last_success_age_seconds"], fresh["dsrflow_sweep_stale_after_seconds"]
    # From the install: every sweep of every schedule, none stale before its first run is due.
    assert set(ages) == set(limits) == set(SWEEP_EVERY) and len(SWEEP_EVERY) == len(SCHEDULE_IDS)
    assert limits["erasure_sweep"] == 54 * 3600 and limits["request_start_sweep"] == 25 * 60
    assert not any(_stale(fresh, s) for s in SWEEP_EVERY)
    # One subject's release is not the daily run: the sweep still shows stopped.
    assert one_subject["dsrflow_sweep_last_success_age_seconds"]["erasure_sweep"] >= 3 * 86400
    stale = {s for s in SWEEP_EVERY if _stale(after, s)}
    assert stale == {"retention_sweep", "request_start_sweep"}  # the three that ran are current again
    assert summary == {"packages": 0, "package_bytes": 0, "uploads": 0, "upload_bytes": 0, "orphans": 0}


async def test_a_sweep_that_succeeded_past_what_it_could_not_do_shows_its_problems(postgres, settings):
    """A retention run whose rule could not run (a system's schema no longer matching the policy)
    still succeeds, as the other rules ran: DsrSweepProblems reads what it left undone, until a
    clean run."""
    failed = RuleOutcome(rule="inactive_accounts", action="erase_subject", system="crm", dataset="contacts",
                         error="column 'last_seen_at' does not exist")
    clean = failed.model_copy(update={"error": None})
    seen: list[dict[str, float]] = []
    async with database_pool(postgres, "sweep_problems") as (url, pool):
        for outcomes in ([failed], [clean]):
            report = RetentionReport(as_of=datetime.now(UTC), policy_version="v1", rules=outcomes)
            await record_sweep_success(pool, "retention_sweep", report,
                                       problems=sum(1 for outcome in report.rules if outcome.error))
            seen.append((await _gauges(pool))["dsrflow_sweep_problems"])
    assert [s["retention_sweep"] for s in seen] == [1, 0]
    assert all(s["erasure_sweep"] == 0 for s in seen)


async def test_worker_creates_the_daily_schedules_once_and_brings_an_older_one_to_its_version(
        dev_server, task_queue):
    """A second worker start changes nothing; a schedule an earlier version made (another interval,
    another task queue) is brought to this version's, its pause kept."""
    client = dev_server.client
    await client.create_schedule(RETENTION_SCHEDULE_ID, Schedule(
        action=ScheduleActionStartWorkflow("RetentionSweepWorkflow", RetentionSweepInput(),
                                           id="dsrflow-retention-sweep-run", task_queue="an-old-queue"),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=12))]),
        state=ScheduleState(paused=True, note="paused by an operator")))
    await ensure_schedules(client, task_queue)
    first = await client.get_schedule_handle(RETENTION_SCHEDULE_ID).describe()
    await ensure_schedules(client, task_queue)  # a second worker start changes nothing
    try:
        described = await client.get_schedule_handle(RETENTION_SCHEDULE_ID).describe()
        action = described.schedule.action
        assert action.workflow == "RetentionSweepWorkflow" and action.task_queue == task_queue
        assert described.schedule.spec.intervals[0].every == timedelta(days=1)
        assert described.schedule.state.paused and described.schedule.state.note == "paused by an operator"
        assert described.info.last_updated_at == first.info.last_updated_at  # the second start updated nothing
        erasure = await client.get_schedule_handle(SWEEP_SCHEDULE_ID).describe()
        assert erasure.schedule.action.workflow == "ErasureSweepWorkflow"
    finally:
        await delete_schedules(client)
