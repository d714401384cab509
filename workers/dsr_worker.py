"""The request worker: the single place where workflows and activities are wired to a task queue."""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import signal
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import schemas
import workflows
from activities.appeal_claims import AppealClaimActivities
from activities.audit_anchor import AuditAnchorActivities
from activities.context import ActivityContext
from activities.deferred import DeferredErasureActivities
from activities.errors import ClassifyingInterceptor
from activities.fanout import FanoutActivities
from activities.letter_confirmation import ConfirmationActivities
from activities.letters import LetterActivities
from activities.lifecycle import LifecycleActivities
from activities.mail import Mailer
from activities.package_purge import PackagePurgeActivities
from activities.packages import PackageActivities
from activities.request_start_sweep import RequestStartSweepActivities
from activities.restrictions import RestrictionActivities
from activities.retention import RetentionActivities
from activities.verification import VerificationActivities
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain import deadlines
from dsrflow.infra.db import create_pool_when_reachable
from dsrflow.infra.logging import get_logger
from dsrflow.infra.migrate import not_migrated, pending_migrations
from dsrflow.infra.temporal_client import connect_client_when_reachable
from dsrflow.settings import Settings
from policy.model import LoadedPolicy, load_policy
from workers.mailbox_tasks import mailbox_tasks
from workers.metrics_endpoint import serve_worker_metrics, worker_runtime
from workers.schedules import ensure_schedules
from workflows.audit_anchor import AuditAnchorWorkflow
from workflows.dsr import DataSubjectRequestWorkflow
from workflows.erasure_sweep import ErasureSweepWorkflow
from workflows.package_purge import PackagePurgeWorkflow
from workflows.request_start_sweep import RequestStartSweepWorkflow
from workflows.retention_sweep import RetentionSweepWorkflow
from workflows.system_task import SystemTaskWorkflow

# The workflow sandbox (each workflow's globals isolated, non-deterministic calls refused) is
# where workflow code is checked: the workflow tests (tests/workflow_stack.py) and the replay tests
# (tests/test_replay.py) run in it, tests/test_workflow_determinism.py checks the source. A production worker runs without it unless DSRFLOW_WORKFLOW_SANDBOX is set: in this
# SDK it re-enters the sandbox with a freshly compiled exec for every activation and every payload
# the workflow converts, a quarter of the worker's CPU per request (BENCHMARKS.md, issue 17).
# Our workflow modules hold no state and are passed through (imported once) either way.
SANDBOXED = SandboxedWorkflowRunner(
    # opentelemetry: the tracing interceptor's workflow half, when tracing is on (tracing.py).
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows", "schemas", "opentelemetry"))


@functools.cache
def build_id() -> str:
    """The worker's build id: dsrflow's version and a digest of the source of the workflow code
    (the workflows, the schemas they pass through and the deadline rule they call), which is what
    decides whether a history replays. The SDK's default hashes the bytecode of every module loaded,
    0.15 s of CPU at each worker start, for a finer grain nothing here reads: the id only labels
    the workflow tasks a worker completes in their histories, since we use no worker versioning
    (`use_worker_versioning`, deployments), where the id would route tasks."""
    digest = hashlib.sha256()
    for root in (Path(workflows.__file__).parent, Path(schemas.__file__).parent):
        for source in sorted(root.rglob("*.py")):
            digest.update(source.relative_to(root.parent).as_posix().encode() + b"\0" + source.read_bytes())
    digest.update(Path(deadlines.__file__).read_bytes())
    return f"dsrflow-{version('dsrflow')}-{digest.hexdigest()[:16]}"


def worker_tuning(settings: Settings) -> dict[str, Any]:
    """Worker options beyond the SDK's defaults; bench/skeleton_worker.py uses them too, so the
    throughput ceiling is measured under the same settings."""
    return {"workflow_runner": SANDBOXED if settings.workflow_sandbox else UnsandboxedWorkflowRunner(),
            "build_id": build_id()}


WORKFLOWS: Sequence[type] = (DataSubjectRequestWorkflow, SystemTaskWorkflow, ErasureSweepWorkflow,
                              RetentionSweepWorkflow, PackagePurgeWorkflow, AuditAnchorWorkflow,
                              RequestStartSweepWorkflow)


def build_activities(ctx: ActivityContext) -> list[Any]:
    lifecycle = LifecycleActivities(ctx)
    letters = LetterActivities(ctx)
    verification = VerificationActivities(ctx)
    fanout = FanoutActivities(ctx)
    packages = PackageActivities(ctx)
    deferred = DeferredErasureActivities(ctx)
    retention = RetentionActivities(ctx)
    restrictions = RestrictionActivities(ctx)
    purge = PackagePurgeActivities(ctx)
    anchors = AuditAnchorActivities(ctx)
    start_sweep = RequestStartSweepActivities(ctx)
    appeals = AppealClaimActivities(ctx)
    confirmation = ConfirmationActivities(ctx)
    return [
        lifecycle.prepare_request, lifecycle.start_clock_at_verification, lifecycle.transition, lifecycle.record_event,
        lifecycle.apply_extension, lifecycle.record_step_trouble, letters.send_letter, letters.settle_skipped_letter,
        verification.issue_verification,
        verification.settle_verification_round,
        fanout.plan_request, fanout.run_system_action, fanout.poll_system_action,
        fanout.record_task_result, packages.build_package, deferred.sweep, retention.sweep,
        restrictions.record_restriction, restrictions.announce_lift, restrictions.record_lifted,
        purge.purge_expired_packages, anchors.anchor_audit_chains, start_sweep.start_unstarted_requests,
        appeals.claim_appeal_decision, confirmation.confirm_at_once,
    ]


def activity_context(settings: Settings, pool: asyncpg.Pool) -> ActivityContext:
    return ActivityContext(
        pool=pool, settings=settings, mailer=Mailer(settings), secret=load_secret_key(settings)
    )


def build_worker(
    client: Client, settings: Settings, pool: asyncpg.Pool, *, task_queue: str | None = None,
    activity_overrides: Sequence[Any] = (), context: ActivityContext | None = None, sticky: bool = True,
) -> Worker:
    """A worker for request workflows. `activity_overrides` replace activities of the same name
    (tests register fakes this way). Not `sticky` (tests that kill a worker on the time-skipping
    server): it keeps no workflow between tasks, so their next task goes to the shared queue,
    which any worker takes, not to its own, where it would wait for a timeout once it is gone."""
    activities = {getattr(a, "__temporal_activity_definition").name: a
                  for a in build_activities(context or activity_context(settings, pool))}
    for fake in activity_overrides:
        activities[getattr(fake, "__temporal_activity_definition").name] = fake
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=list(activities.values()),
        interceptors=[ClassifyingInterceptor()],
        max_cached_workflows=1000 if sticky else 0,  # the SDK's default, or none
        **worker_tuning(settings),
    )


async def run_worker(settings: Settings, loaded: LoadedPolicy | None = None) -> None:
    """Run until SIGINT or SIGTERM. `loaded`: the policy file in force as the command read it, if
    it did; the worker reads it here once otherwise, and a policy that does not load stops it
    before it connects. Start-up reads it once for all its parts (each read is 26 ms of CPU);
    what reads the policy in force at work (retention sweeps) still reads the file each time."""
    loaded = loaded or load_policy(settings.policy_path)
    log = get_logger("dsrflow.worker")
    runtime, sdk_metrics = worker_runtime(settings)
    client = await connect_client_when_reachable(settings, lambda error, delay: log.warning(
        "Temporal not reachable yet; trying again", address=settings.effective_temporal_address,
        retry_in_s=delay), runtime=runtime)
    pool = await create_pool_when_reachable(settings.effective_database_url, lambda error, delay: log.warning(
        "database not reachable yet; trying again", error=type(error).__name__, retry_in_s=delay))
    if pending := await pending_migrations(pool):
        # An upgrade started before its migration: refused here, not failing every step later.
        await pool.close()
        raise SystemExit(f"error: {not_migrated(pending)}")
    context = activity_context(settings, pool)
    worker = build_worker(client, settings, pool, context=context)
    metrics = await serve_worker_metrics(settings, pool, sdk_metrics, loaded.policy.defaults.timezone)
    await ensure_schedules(client, settings.task_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started", task_queue=settings.task_queue)
    mailbox = mailbox_tasks(settings, pool, stop, loaded.policy)  # the privacy mailbox (docs/mailbox.md)
    # What start-up built (modules, the policy, pydantic's validators, the SDK's workflow
    # definitions) lives as long as the process: frozen, the collector's full passes no longer
    # walk it again and again under load.
    gc.freeze()
    async with worker:
        await stop.wait()
    await asyncio.gather(*mailbox, return_exceptions=True)
    if metrics is not None:
        metrics.close()
    await context.connections.close()
    await context.mailer.aclose()
    await pool.close()
    log.info("worker stopped")
