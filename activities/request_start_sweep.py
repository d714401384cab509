"""The scheduled sweep that starts stored requests left without a workflow.

Intake stores a request, then starts its workflow (api/service.py). An API that dies between the
two, or finds Temporal away (it answers 503 and asks for a repeat with the same Idempotency-Key),
leaves a request that nobody would ever work on unless its caller repeats the call: a subject who
gave up, or a client without a key, never does. Such a request still has no due date, which its
workflow's first step sets (`prepare_request`), so the sweep looks for open requests stored more
than `DSRFLOW_START_SWEEP_AFTER_MINUTES` ago without one, and starts the workflow of each that has
none (one that has a workflow is only waiting for a worker). Starting goes through the one start
function, so a request still never runs twice.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from activities.context import ActivityContext
from dsrflow.domain.audit import append_event
from dsrflow.domain.request_start import start_request_workflow
from dsrflow.infra.failpoints import failpoint
from policy.model import PolicyError
from schemas.request_start import StartSweepInput, StartSweepReport
from schemas.workflow import workflow_id_for

BATCH = 500  # a run's share; the next run, minutes later, takes the rest

# Unstarted: the predicate of migration 0028's index, which the gauges of dsrflow/infra/metrics.py
# (and alert DsrRequestsNotStarted) read too.
_UNSTARTED = """
    SELECT *, floor(extract(epoch FROM now() - created_at) / 60)::int AS minutes_waiting FROM dsr_requests
    WHERE due_date IS NULL AND closed_at IS NULL AND created_at < now() - make_interval(mins => $1)
    ORDER BY created_at LIMIT $2"""


class RequestStartSweepActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="start_unstarted_requests")
    async def start_unstarted_requests(self, sweep: StartSweepInput) -> StartSweepReport:
        rows = await self.ctx.pool.fetch(_UNSTARTED, self.ctx.settings.start_sweep_after_minutes, BATCH)
        client = activity.client()
        started = unstartable = 0
        for row in rows:
            request_id = str(row["id"])
            try:
                await client.get_workflow_handle(workflow_id_for(request_id)).describe()
                continue  # it has one: waiting for a worker, or ended
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
            try:
                loaded = await self.ctx.policy(row["policy_version"])
            except (LookupError, PolicyError) as exc:
                # One request that cannot start must not hold back the rest of the batch, every
                # run (they are taken oldest first): before, the sweep failed on it for good.
                activity.logger.error("stored request cannot start: its policy version does not load",
                                      extra={"request_id": request_id, "error": type(exc).__name__})
                unstartable += 1
                continue
            # Recorded first (keyed, so a repeat adds nothing): a start that then fails is tried
            # again by the next run, which finds the request still unstarted.
            async with self.ctx.pool.acquire() as conn:
                await append_event(conn, event_key=f"{request_id}:start-swept", request_id=request_id,
                                   event_type="request.start_swept", actor="sweep",
                                   data={"minutes_since_stored": row["minutes_waiting"]})
            failpoint("start-swept-recorded")  # audited, its workflow not yet started
            await start_request_workflow(client, dict(row), loaded.policy.attention_after_minutes,
                                         task_queue=activity.info().task_queue)
            started += 1
            activity.logger.warning("stored request started by the sweep", extra={"request_id": request_id})
            activity.heartbeat(started)
        return StartSweepReport(found=len(rows), started=started, unstartable=unstartable)
