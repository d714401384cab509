"""The scheduled sweep that starts stored requests left without a workflow.

Intake stores a request, then starts its workflow (api/service.py). An API that dies between the
two, or finds Temporal away (it answers 503 and asks for a repeat with the same Idempotency-Key),
leaves a request that nobody would ever work on unless its caller repeats the call: a subject who
gave up, or a client without a key, never does. Such a request still has no due date, which its
workflow's first step sets (`prepare_request`), so the sweep looks for open requests stored more
than `DSRFLOW_START_SWEEP_AFTER_MINUTES` ago without one, and starts the workflow of each that has
none (one that has a workflow is only waiting for a worker). Starting goes through the one start
function, so a request still never runs twice.

The same run catches up what else an API records and then tells a workflow: a processor's answer
(a confirmation or export on its link, a signed callback) on record for as long, whose task still
waits (`tell_untold_answers`), and it flags and reminds staff of requests whose workflow ended,
and alerts them of requests whose workflow runs but fails at every try (`flag_failing_workflows`).
Each of these parts, and each request within one, runs whatever another did (`Pieces`), and an
alert the relay refuses for good is recorded and stops nothing (activities/sweep_alerts.py
`sweep_alert`). Last, it records the staff alerts (any sweep's) that a dead sender had handed to
the relay and that nobody asked for again (`record_handed_alerts`). And it carries out the lifts
held by a restriction that then ended without coming into force (activities/held_lifts.py), and
alerts staff of a processor that carried out a job after its call-off had cancelled it, putting that
on the job's task (activities/acted_after_sweep.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.acted_after_sweep import settle_acted_after
from activities.context import ActivityContext
from activities.held_lifts import release_held_lifts
from activities.lift_superseded import tell_untold
from activities.sweep_alerts import record_handed_alerts, sweep_alert
from dsrflow.crypto.keys import load_keyring
from dsrflow.domain.audit import append_event
from dsrflow.domain.failing_workflows import FAILING, failing, record_recoveries, unheld_key
from dsrflow.domain.processor_answers import tell_task, untold_answers
from dsrflow.domain.request_resume import (
    ENDED_TROUBLE,
    STILL_RUNS,
    ended_trouble_key,
    how_ended,
    settle_ended_troubles,
    stopped_requests,
)
from dsrflow.domain.request_start import start_request_workflow
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.pieces import Pieces
from dsrflow.infra.writes import Write
from dsrflow.stores.sweep_runs import record_sweep_success
from policy.model import PolicyError
from schemas.request_start import StartSweepInput, StartSweepReport
from schemas.workflow import LetterJob, LetterReceipt, request_id_of, workflow_id_for

BATCH = 500  # a run's share; the next run, minutes later, takes the rest

# Unstarted: the predicate of migration 0028's index, which the gauges of dsrflow/infra/metrics.py
# (and alert DsrRequestsNotStarted) read too.
_UNSTARTED = """
    SELECT *, floor(extract(epoch FROM now() - created_at) / 60)::int AS minutes_waiting FROM dsr_requests
    WHERE due_date IS NULL AND closed_at IS NULL AND created_at < now() - make_interval(mins => $1)
    ORDER BY created_at LIMIT $2"""


def _piece_failed(part: str, request_id: str | None, exc: Exception) -> None:
    activity.logger.error("start sweep: a piece failed, the others carry on",
                          extra={"part": part, "request_id": request_id, "error": type(exc).__name__})


class RequestStartSweepActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="start_unstarted_requests")
    async def start_unstarted_requests(self, sweep: StartSweepInput) -> StartSweepReport:
        ctx, client = self.ctx, activity.client()
        older_than = timedelta(minutes=ctx.settings.start_sweep_after_minutes)
        parts: dict[str, Callable[[], Awaitable[Any]]] = {
            "start": self._start_unstarted,
            "answers_told": lambda: tell_untold_answers(ctx, client, older_than=older_than),
            "ended_flagged": lambda: flag_ended_workflows(ctx, client, older_than=older_than),
            "stopped_reminded": lambda: remind_stopped(ctx, datetime.now(UTC)),
            "failing_alerted": lambda: flag_failing_workflows(ctx, client, older_than=older_than),
            "held_lifts_released": lambda: release_held_lifts(ctx),
            "lifts_superseded_told": lambda: tell_untold(ctx),
            "acted_after_call_off": lambda: settle_acted_after(ctx, _piece_failed, older_than=older_than),
            "handed_recorded": lambda: record_handed_alerts(ctx),
        }
        done: dict[str, Any] = {}
        pieces = Pieces(_piece_failed)
        for name, part in parts.items():
            with pieces.piece(name):
                done[name] = await part()
        pieces.settle()
        found, started, unstartable = done.pop("start")
        if recorded := done.pop("handed_recorded"):
            activity.logger.warning("staff alerts a dead sweep had handed to the relay recorded",
                                    extra={"recorded": recorded})
        report = StartSweepReport(found=found, started=started, unstartable=unstartable, **done)
        await record_sweep_success(ctx.pool, "request_start_sweep", report)
        return report

    async def _start_unstarted(self) -> tuple[int, int, int]:
        """Start each stored request left without a workflow: how many were found, started, and
        could not start (their policy version does not load)."""
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
                                         task_queue=activity.info().task_queue,
                                         task_timeout=self.ctx.settings.workflow_task_timeout)
            started += 1
            activity.logger.warning("stored request started by the sweep", extra={"request_id": request_id})
            activity.heartbeat(started)
        return len(rows), started, unstartable


async def tell_untold_answers(ctx: ActivityContext, client: Client, *, older_than: timedelta) -> int:
    """Tell each task waiting for a processor's answer that has been on record `older_than` at
    least: an API died (or lost Temporal) between recording it and telling the task, and the
    processor did not send again, so the task would learn of it only at its next poll, up to six
    hours away (workflows/system_task.py). The word the API would have sent; a task told already,
    or settled meanwhile, takes nothing twice. Each task told is audited (`TOLD_LATE`): the
    evidence says it learnt the answer late, and how, where before only this log line did. Once
    told, not before: a task that settled meanwhile (its poll read the answer) was not told late;
    and by the task too, so a sweep killed between the two leaves the record whole.
    How many were told this time."""
    told = 0
    for answer in await untold_answers(ctx.pool, older_than=older_than):
        now = datetime.now(UTC)
        if await tell_task(client, answer.workflow_id, answer.telling(now)):
            failpoint("sweep-told", answer.system)
            # The task records it too (a task started before it did is recorded here only).
            async with ctx.pool.acquire() as conn:
                await append_event(conn, **answer.told_late_event(now))
            told += 1
            activity.logger.warning("processor's answer told to its waiting task by the sweep",
                                    extra={"request_id": answer.request_id, "system": answer.system})
            if activity.in_activity():  # the sweep's; a test calls this alone too
                activity.heartbeat(told)
    return told


# Request workflows that ended without closing their request: no staff action reaches them any
# more (each answers 409), no deadline warning comes, and before this nobody was told. Those that
# ended within the last week (a run every five minutes being far more frequent), and at least as
# long ago as a stored request may wait for its workflow (DSRFLOW_START_SWEEP_AFTER_MINUTES).
# The list holds every run: one resumed since (dsrflow/domain/request_resume.py) is listed still.
_ENDED = ("WorkflowType = 'DataSubjectRequestWorkflow' AND ExecutionStatus != 'Running' "
          "AND ExecutionStatus != 'Completed' AND CloseTime > '{since}' AND CloseTime < '{until}'")


async def _settle_resumed(ctx: ActivityContext, client: Client) -> None:
    """Flags left on requests whose workflow runs again: resumed by an operator in Temporal, or
    by a resume that died before it settled them."""
    for row in await ctx.pool.fetch("SELECT DISTINCT request_id::text FROM step_troubles WHERE trouble_key LIKE $1 "
                                    "AND resolved_at IS NULL", f"{ENDED_TROUBLE}%"):
        try:
            described = await client.get_workflow_handle(workflow_id_for(row["request_id"])).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            continue  # its history is gone (the namespace's retention): the flag stays for staff
        if described.status == WorkflowExecutionStatus.RUNNING:
            await settle_ended_troubles(ctx.pool, row["request_id"], "its workflow runs again")


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def flag_ended_workflows(ctx: ActivityContext, client: Client, *, older_than: timedelta) -> int:
    """Flag each open request whose workflow failed, was terminated or timed out (`older_than`
    ago at least) and was not resumed since: a trouble on record (the queue shows it needing
    attention, the steps gauge counts it), an audit event and one staff alert, once per ended run.
    Nothing resumes it by itself: what the run had done is in its history, and compliance decides
    (the request page's "Resume the request"). How many were flagged this time."""
    await _settle_resumed(ctx, client)
    now = datetime.now(UTC)
    flagged, pieces = 0, Pieces(_piece_failed)
    query = _ENDED.format(since=_stamp(now - timedelta(days=7)), until=_stamp(now - older_than))
    async for ended in client.list_workflows(query):
        request_id = request_id_of(ended.id)
        if request_id is None:
            continue  # not a request's workflow: nothing of ours to flag
        with pieces.piece("ended_flagged", request_id):
            key = ended_trouble_key(ended.run_id)
            request = await ctx.pool.fetchrow(
                f"""SELECT {STILL_RUNS} AND NOT EXISTS (SELECT FROM step_troubles s WHERE s.request_id = r.id
                          AND (s.trouble_key = $2 OR s.trouble_key = $3 AND s.resolved_at IS NULL)) AS unflagged,
                          r.closed_at IS NOT NULL AS closed
                   FROM dsr_requests r WHERE r.id = $1::uuid""", request_id, key, ENDED_TROUBLE)  # $3: as flagged before runs had keys
            if request is None or not request["unflagged"] \
                    or (await client.get_workflow_handle(ended.id).describe()).run_id != ended.run_id:
                continue  # closed, not ours, flagged by an earlier run of the sweep, or resumed since
            status, closed = how_ended(ended.status), request["closed"]
            # A closed request still runs only to keep its restriction until it is lifted: that is
            # what stopped with it (it has no deadline left to run on).
            message = (f"the request's workflow {status} after the request closed, with its restriction still in "
                       "force; nothing lifts the restriction until compliance resumes it from the request's page"
                       if closed else
                       f"the request's workflow {status} while the request was open; no step of it runs any more "
                       "until compliance resumes it from the request's page")
            # The alert first (keyed: it goes once), then the record that ends the search for it: a
            # run that dies in between alerts nobody twice and flags the request on the next run. One
            # the relay refuses for good is recorded so (`sweep_alert`), and the flag all the same.
            await sweep_alert(ctx, LetterJob(
                request_id=request_id, purpose="staff_alert", key=key, to_staff=True,
                params={"kind": "needs_attention", "days_left": None,
                        "facts": {"what": "workflow_ended", "ended": status, "closed": closed}}))
            failpoint("workflow-ended-alerted", request_id)  # staff told, the flag not yet on record
            async with ctx.pool.acquire() as conn:
                await append_event(conn, event_key=f"{request_id}:{key}", request_id=request_id,
                                   event_type="request.workflow_ended", actor="sweep",
                                   # When it ended, from Temporal: the event's own time is when this sweep found it.
                                   data={"ended": status, "closed": closed, "ended_at": ended.close_time.isoformat()
                                         if ended.close_time else None},
                                   along=[Write("""INSERT INTO step_troubles (request_id, trouble_key, step, message, transient)
                                                   VALUES ($1::uuid, $2, 'workflow', $3, false) ON CONFLICT DO NOTHING""",
                                                (request_id, key, message))])
            activity.logger.error("request workflow ended before its work was done",
                                  extra={"request_id": request_id, "closed": closed})
            flagged += 1
    pieces.settle()
    return flagged


# A stopped request is flagged with one staff alert. No deadline warning comes while it is stopped,
# so each whole day it stays stopped staff are told again, with the days left to its due date.
REMIND_EVERY = timedelta(days=1)


async def remind_stopped(ctx: ActivityContext, now: datetime) -> int:
    """One staff alert for each whole day a flagged request has stayed stopped, keyed by the day:
    a repeat, or a run after a crash, sends it once, and after days without a run only the
    current day's goes. How many went this time."""
    reminded, pieces = 0, Pieces(_piece_failed)
    for flag in await stopped_requests(ctx.pool):
        days = (now - flag["since"]) // REMIND_EVERY
        if days < 1:
            continue
        request_id = str(flag["request_id"])
        with pieces.piece("stopped_reminded", request_id):
            receipt = await _alert_staff(ctx, flag, request_id, f"{flag['trouble_key']}:day-{days}", now, {
                "what": "still_stopped", "days": days, "ended": await _how_ended(ctx, request_id, flag["trouble_key"]),
                "closed": flag["closed_at"] is not None})
            reminded += receipt is not None and not receipt.already_sent
        if activity.in_activity():  # the sweep's; a test or a tool calls this alone too
            activity.heartbeat(reminded)
    pieces.settle()
    return reminded


async def _how_ended(ctx: ActivityContext, request_id: str, trouble_key: str) -> str | None:
    """How the stopped request's workflow had ended (`how_ended`), from its flag's audit event: the
    reminder says it in the staff language, where the flag's message is the record's English."""
    return await ctx.pool.fetchval("SELECT data->>'ended' FROM audit_events WHERE event_key = $1",
                                   f"{request_id}:{trouble_key}")


async def _alert_staff(ctx: ActivityContext, request: Mapping[str, Any], request_id: str, key: str, now: datetime,
                       facts: dict[str, Any]) -> LetterReceipt | None:
    """A staff alert of a request whose workflow does not move (no deadline warning comes), with
    the days left to its due date, or late: `request` has its `current_due_date` and
    `policy_version` (a closed request's due date is no longer counted). None: the relay refused
    it for good (`sweep_alert`)."""
    days_left = await ctx.days_left(request, now)
    return await sweep_alert(ctx, LetterJob(
        request_id=request_id, purpose="staff_alert", key=key, to_staff=True,
        params={"kind": "overdue" if days_left is not None and days_left < 0 else "needs_attention",
                "days_left": days_left, "facts": facts}))


# A workflow whose workflow task fails at every try (RELIABILITY.md row 27) runs on, yet nothing of
# it moves, its deadline watch included; before, only the Prometheus alert DsrWorkflowTaskFailing
# said so, and a deployment without Prometheus learnt it when the subject complained. Its flag's key
# names the run and the failure that began the stretch: a later stretch is alerted anew.
FAILING_TROUBLE = "workflow-failing"


# Whether this process has said that its Temporal server does not mark failing workflows.
_UNMARKED_SAID: list[str] = []


async def flag_failing_workflows(ctx: ActivityContext, client: Client, *, older_than: timedelta,
                                 now: datetime | None = None) -> int:
    """Alert staff of each request whose workflow task has failed at every try for `older_than`
    at least (dsrflow/domain/failing_workflows.py: one visibility query lists them), with the
    attempts so far and, when that is the cause, the key it was sealed with that this deployment
    no longer holds; an audit event once per stretch of failures, and one alert each whole day it
    lasts, keyed by the day. Once a task completes the server clears its mark, the alerts stop, and
    the stretch's end is recorded (`record_recoveries`). How many alerts went this time."""
    now = now or datetime.now(UTC)
    try:
        listed = [execution async for execution in client.list_workflows(FAILING)]
    except RPCError as exc:
        if exc.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        # A server before 1.30 does not know the attribute (docker-compose.yml pins 1.29.1, the last
        # auto-setup image): DsrWorkflowTaskFailing alone tells. Said once a process, not each sweep.
        if not _UNMARKED_SAID:
            _UNMARKED_SAID.append(exc.message)
            activity.logger.error("the Temporal server does not mark failing workflows (TemporalReportedProblems): "
                                  "staff are not alerted of them", extra={"error": exc.message})
        return 0
    held = [kid for kid, _ in load_keyring(ctx.settings)]
    alerted, pieces = 0, Pieces(_piece_failed)
    for execution in listed:
        request_id = request_id_of(execution.id)
        with pieces.piece("failing_alerted", request_id):
            trouble = await failing(client, execution.id) if request_id else None
            request = await ctx.pool.fetchrow("SELECT closed_at, current_due_date, policy_version FROM dsr_requests "
                                              "WHERE id = $1::uuid", request_id) if trouble else None
            if request_id is None or trouble is None or request is None or now - trouble.since < older_than:
                continue  # not ours, moving again, or failing for too short a while yet
            key = f"{FAILING_TROUBLE}:{trouble.run_id}:{trouble.failure_event}"
            days = (now - trouble.since) // REMIND_EVERY
            kid = await unheld_key(client.get_workflow_handle(execution.id), held)
            # The stretch on record before its alert (keyed: once per stretch, whatever the runs). The
            # other way round, a sweep that died once the alert was out (the worker restarted by the
            # very deploy that fixes the workflow) left no record of the stretch, nor of its end.
            async with ctx.pool.acquire() as conn:
                await append_event(conn, event_key=f"{request_id}:{key}", request_id=request_id,
                                   event_type="request.workflow_failing", actor="sweep",
                                   data={"since": trouble.since.isoformat(), "attempts": trouble.attempts,
                                         "unheld_key": kid})
            receipt = await _alert_staff(ctx, request, request_id, f"{key}:day-{days}" if days else key, now, {
                "what": "workflow_failing", "since": trouble.since, "attempts": trouble.attempts, "days": days,
                "unheld_key": kid})
            if receipt is not None and not receipt.already_sent:
                alerted += 1
                activity.logger.error("request workflow task failing at every try", extra={
                    "request_id": request_id, "attempts": trouble.attempts, "unheld_key": kid})
            if activity.in_activity():  # the sweep's; a test calls this alone too
                activity.heartbeat(alerted)
    await record_recoveries(ctx.pool, client, {execution.id for execution in listed}, now)
    pieces.settle()
    return alerted
