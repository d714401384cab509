"""Activities of the processor fan-out: plan, act on one system, ask an asynchronous processor
how far it got, and record each system's result as evidence (activities/task_results.py; an
erasure's own evidence: activities/erasure_evidence.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.acted_after_call_off import cancelled_as_known
from activities.connectors import build_connector, connector_class
from activities.connectors.base import (
    ActionOutcome,
    Connector,
    ConnectorEnv,
    HeldRecord,
    PermanentConnectorError,
    Subject,
)
from activities.connectors.http import HttpConnector
from activities.connectors.http_journal import TaskEnded
from activities.connectors.sql import SqlConnector
from activities.connectors.sql_erasure import kept_summary
from activities.context import ActivityContext
from activities.erasure_evidence import ErasureEvidence
from activities.heartbeat import heartbeating
from activities.lift_superseded import tell_lift_superseded
from activities.restriction_lock import acted, restriction_lock
from activities.restrictions import held_message, lift_held_by
from activities.task_outcomes import (
    STORED_OUTCOME,
    changed_nothing,
    outcome_key,
    outcome_write,
    resumed,
    save_outcome,
    stored_outcome,
)
from activities.task_results import result_on_record, store_task_result
from activities.told_closed import closed_unanswered, not_tried_after_close, once_closed
from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.metrics import connector_call
from dsrflow.infra.tracing import span
from dsrflow.infra.writes import Write
from dsrflow.stores.deferred_store import kept_records
from dsrflow.stores.requests_store import get_request, get_request_with
from dsrflow.stores.suppressions_store import suppression_key
from policy.model import Policy
from policy.systems import System
from schemas.workflow import Plan, StartRequest, SystemTask, TaskInput, TaskRecord, TaskResult

# What each request type asks of every system.
ACTIONS = {
    "access": "access",
    "portability": "access",
    "erasure": "erase",
    "rectification": "rectify",
    "restriction": "restrict",
    "objection": "object",
}


def reached_systems(row: dict[str, Any], policy: Policy) -> dict[str, System]:
    """The systems a request reaches, in the policy's order: all of them, unless its details name
    some (a retention rule may reach only some: marketing data at the e-mail processor)."""
    reach = (row["details"] or {}).get("systems") or list(policy.systems)
    return {name: system for name, system in policy.systems.items() if name in reach}


def subject_of(row: dict[str, Any]) -> Subject:
    return Subject(
        request_id=str(row["id"]), email=row["subject_email"], name=row["subject_name"],
        customer_id=row["customer_id"],
    )


@asynccontextmanager
async def open_connector(ctx: ActivityContext, policy_version: str, system: str) -> AsyncIterator[Connector]:
    """A connector for one system as the request's policy version describes it."""
    policy = (await ctx.policy(policy_version)).policy
    connector: Connector = build_connector(ConnectorEnv(
        system_name=system, system=policy.systems[system], policy=policy, settings=ctx.settings,
        secret=ctx.secret, callback_url=f"{ctx.settings.base_url}/v1/callbacks/opendsr?system={system}",
        pool=ctx.pool, mailer=ctx.mailer, connections=ctx.connections,
    ))
    kind = policy.systems[system].connector
    try:
        # Counted, and a span over the connector's SQL statements and HTTP calls.
        with connector_call(system, kind), span(f"connector {kind}", system=system, kind=kind):
            yield connector
    finally:
        await connector.close()


def _result(task: TaskInput, outcome: ActionOutcome, kept: list[dict[str, Any]] | None = None) -> TaskResult:
    return TaskResult(
        system=task.task.system, action=task.task.action, status=outcome.status,
        found=outcome.found, changed=outcome.changed, kept=outcome.kept,
        datasets=outcome.datasets, external_id=outcome.external_id, message=outcome.message,
        poll_after_seconds=outcome.poll_after_seconds,
        attempt=task.attempt, recipient=task.task.recipient, kept_records=kept or [], note=outcome.note,
    )


class FanoutActivities(ErasureEvidence):
    """The fan-out's activities; each erasure keeps its evidence as ErasureEvidence does."""

    async def _row(self, request_id: str) -> dict[str, Any]:
        row = await get_request(self.ctx.pool, request_id)
        if row is None:
            raise ApplicationError(f"request {request_id} not found", non_retryable=True)
        return row

    @activity.defn(name="plan_request")
    async def plan_request(self, start: StartRequest) -> Plan:
        """Every system of the request's policy version gets the request type's action."""
        async with heartbeating():  # it may call a processor first: a lost worker shows in seconds
            return await self._plan(start)

    async def _plan(self, start: StartRequest) -> Plan:
        row = await self._row(start.request_id)
        policy = (await self.ctx.policy(start.policy_version)).policy
        action = ACTIONS[row["request_type"]]
        scope = (row["details"] or {}).get("objection_scope")
        plan = Plan(
            request_id=start.request_id, policy_version=start.policy_version,
            request_type=row["request_type"],
            tasks=[
                SystemTask(system=name, action=action, connector=system.connector,
                           label=system.label, recipient=system.recipient,
                           completion_timeout_days=system.completion_timeout_days, scope=scope)
                for name, system in reached_systems(row, policy).items()
            ],
        )
        await self._prepare(plan, subject_of(row), policy)
        writes = [Write("INSERT INTO request_plans (request_id, plan) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        (start.request_id, plan.model_dump(mode="json")))]
        if row["request_type"] == "objection" and scope == "direct_marketing":
            # From now on an import of this address is refused, whatever the systems say.
            writes.append(Write("""INSERT INTO suppressions (identifier_hash, scope, request_id)
                                   VALUES ($1, 'direct_marketing', $2) ON CONFLICT DO NOTHING""",
                                (suppression_key(self.ctx.secret, row["subject_email"]), start.request_id)))
        async with self.ctx.pool.acquire() as conn:
            await append_event(
                conn, event_key=f"{start.request_id}:planned", request_id=start.request_id,
                event_type="plan.created", actor="workflow",
                data={"tasks": [f"{t.system}:{t.action}" for t in plan.tasks]}, along=writes,
            )
        return plan

    async def _prepare(self, plan: Plan, subject: Subject, policy: Any) -> None:
        """Before any system acts: connectors that need something from other systems take it
        now (GA4 deletion needs the analytics identifiers the analytics erasure removes). A
        connector that cannot start is left alone here: its own task reports why."""
        for task in plan.tasks:
            kind = connector_class(task.connector, task.system)
            if not kind.needs_preparation(policy.systems[task.system], task.action):
                continue
            try:
                async with open_connector(self.ctx, plan.policy_version, task.system) as connector:
                    await connector.prepare(subject, task.action)
            except PermanentConnectorError:
                continue

    @activity.defn(name="run_system_action")
    async def run_system_action(self, task: TaskInput) -> TaskResult:
        """Carry out one action in one system. Connectors are idempotent, so a retry after a
        crash finishes the job instead of doing it twice."""
        async with heartbeating():
            return await self._run(task)

    async def _run(self, task: TaskInput) -> TaskResult:
        row, stored = await get_request_with(self.ctx.pool, task.request_id, STORED_OUTCOME, *outcome_key(task))
        if row is None:
            raise ApplicationError(f"request {task.request_id} not found", non_retryable=True)
        # A restriction's or a lift's run, from a lift's check to the result on record, one at a time
        # per system and subject (activities/restriction_lock.py), so that what acted last is recorded
        # last; nothing for other actions. (Not entered again below: a lift would wait for itself.)
        async with restriction_lock(self.ctx, subject_of(row), task.task.system, task.task.action):
            result = await self._run_locked(task, row, stored)
        if task.task.action == "restrict":
            # A person told to lift the system for this subject before (staff, a processor by
            # e-mail) would undo this restriction: told now, once (activities/lift_superseded.py).
            # After the lock: an alert may wait on the relay, and no lift need wait for it. Not the
            # task's failure: its restriction is done and on record; the start sweep tells them.
            try:
                await tell_lift_superseded(self.ctx, task.request_id, task.task.system)
            except Exception as exc:
                activity.logger.warning("a newer restriction could not yet tell staff not to lift; the start sweep does",
                                        extra={"request_id": task.request_id, "system": task.task.system,
                                               "error": type(exc).__name__})
        return result

    async def _run_locked(self, task: TaskInput, row: dict[str, Any], stored: dict[str, Any] | None) -> TaskResult:
        earlier = stored_outcome(stored)
        if earlier is not None and earlier.committed:
            result = earlier.result  # this attempt acted before its worker died: report that
        elif (closed := not_tried_after_close(task, row, tried=earlier is not None)) is not None:
            # Not asked of an attempt whose effect committed (above): that one is done, and says so.
            # Nor of a restriction's lift (`not_tried_after_close`): before, a lift whose SaaS had been
            # down was settled here unsent, and the data stayed restricted there.
            result = closed
        else:
            # A system without a transaction may have done part of what the earlier try planned:
            # this try's outcome is reported together with that plan (every try's, if it dies too).
            kind = connector_class(task.task.connector, task.task.system)
            # An http system's run carries on from its journal (http_journal.py): the last try's
            # counts are the whole run's, exact; the plan's would count a record gone before its
            # request as changed.
            resuming = None if earlier is None or kind.transactional or issubclass(kind, HttpConnector) \
                else earlier.result
            try:
                result = await self._act(task, row, resuming, tried=None if earlier is None else earlier.result)
            except TaskEnded as ended:
                return await self._ended(task, ended)
            if earlier is not None and kind.transactional and changed_nothing(result):
                # The earlier try's effect committed after its evidence was kept (had it not, this
                # try would have changed something): it is the outcome.
                result = earlier.result
            # Named by its request too: a test kills one request's try while others' go on.
            failpoint("task-effect-committed", f"{task.task.system}:{task.task.action}:{task.request_id}")
        acted(task.task.system, task.task.action, task.request_id)
        outcome = outcome_write(task, result, committed=True)
        if task.record:
            # Refused if staff resolved the task after the run's last journal write (which found it
            # not ended) and before this: the resolution stands. Neither that check nor the lock
            # is asked of a `sql` system's task (six round trips on every request's path): it runs
            # in milliseconds as a local activity of the request's workflow, which takes no
            # resolution while a try of it runs, and it keeps no journal.
            local = task.task.connector == "sql"
            record = await store_task_result(self.ctx, task.request_id, result, along=[outcome],
                                             by_attempt=not local, journaled=not local)
            if record is not None:
                return self._stands(task, record)
        else:
            await save_outcome(self.ctx.pool, task, result, committed=True)
        return result

    async def _ended(self, task: TaskInput, ended: TaskEnded) -> TaskResult:
        """A result ended the task while this attempt ran (staff resolved it): that result, as
        recorded, is the attempt's answer, and nothing of the attempt's own is stored over it."""
        result = await result_on_record(self.ctx.pool, task.request_id, task.task.system, task.task.action,
                                        task.task.recipient)
        if result is None:  # only a stored result ends a task
            raise ended
        return self._stands(task, result)

    @staticmethod
    def _stands(task: TaskInput, record: TaskResult) -> TaskResult:
        activity.logger.info("task ended while its attempt ran; the attempt stopped, the result on record stands",
                             extra={"system": task.task.system, "attempt": task.attempt})
        return record

    async def _act(self, task: TaskInput, row: dict[str, Any], resuming: TaskResult | None = None, *,
                   tried: TaskResult | None = None) -> TaskResult:
        """`tried`: what an earlier try of this attempt was about to do when it died, kept before the
        system's commit (activities/task_outcomes.py)."""
        subject = replace(subject_of(row), attempt=task.attempt)
        details = row["details"] or {}
        action = task.task.action

        def reported(outcome: ActionOutcome, kept: list[dict[str, Any]] | None = None) -> TaskResult:
            result = _result(task, outcome, kept)
            return result if resuming is None else resumed(resuming, result)

        try:
            await self._identities_agree(task.policy_version, subject)
            async with AsyncExitStack() as held:  # (under `_run`'s restriction lock)
                # A lift where another restriction of the subject holds the system leaves it: nothing
                # to open, and no job to start at a processor.
                if action == "lift_restriction" and (held_by := await lift_held_by(
                        self.ctx.pool, task.request_id, task.task.system, lifted_before=tried is not None)):
                    if tried is not None:  # it may have lifted here: what it did, and that it was undone
                        return tried.model_copy(update={"message": held_message(held_by, lifted_before=True)})
                    return reported(ActionOutcome(status="done", message=held_message(held_by)))
                connector = await held.enter_async_context(
                    open_connector(self.ctx, task.policy_version, task.task.system))
                if external := connector.job_id(subject, action):
                    await store_task_result(self.ctx, task.request_id, TaskResult(
                        system=task.task.system, action=action, status="pending",
                        external_id=external, attempt=task.attempt, recipient=task.task.recipient),
                        by_attempt=True)  # refused once the task ended: so is the attempt's result, below

                if action == "erase":
                    return await self._erase(task, subject, connector, reported)

                async def keep(outcome: ActionOutcome) -> None:
                    # As an erasure's evidence: before the system commits (or, without a
                    # transaction, before its first request), so that a retry can tell what
                    # this try did when it finds nothing left to change.
                    await save_outcome(self.ctx.pool, task, reported(outcome), committed=False)

                if action in ("rectify", "lift_restriction"):  # each leaves what a hold keeps as it is
                    # Whoever's they are: a customer number still names a record an erasure kept.
                    subject = replace(subject, held=await kept_records(
                        self.ctx.pool, system=(task.task.system, task.policy_version)))
                if action == "rectify":
                    outcome = await connector.rectify(subject, details.get("corrections", {}), before_commit=keep)
                elif action == "restrict":
                    outcome = await connector.restrict(subject, before_commit=keep)
                elif action == "lift_restriction":
                    outcome = await connector.lift_restriction(subject, before_commit=keep)
                elif action == "object":
                    outcome = await connector.object(subject, task.task.scope or "direct_marketing", before_commit=keep)
                elif action == "access" and (asked := await connector.request_export(subject)):
                    # Only processors without an API run an access task: the package reads the rest.
                    outcome = asked
                else:
                    raise ApplicationError(f"unknown action {action}", non_retryable=True)
        except PermanentConnectorError as exc:
            raise ApplicationError(str(exc), type="PermanentConnectorError", non_retryable=True) from None
        return reported(outcome)

    async def _erase(self, task: TaskInput, subject: Subject, connector: Connector,
                     reported: Callable[[ActionOutcome, list[dict[str, Any]]], TaskResult], *,
                     carrying_on: bool = False) -> TaskResult:
        """Erase in one system as of now: the legal-claims holds on the subject now, the controller's
        day, the evidence first. `carrying_on`: an erasure the system held back (a SaaS quota's
        day) carries on, at a poll days later; a hold placed meanwhile keeps what is left."""
        policy = (await self.ctx.policy(task.policy_version)).policy
        context, legal = await self.erasure_context_for(task.policy_version, task.task.system, subject)

        def result_of(outcome: ActionOutcome) -> TaskResult:
            outcome.kept = outcome.kept or len(outcome.held)
            return reported(outcome, kept_summary(policy, task.task.system, outcome.held, legal))

        def provisional(outcome: ActionOutcome) -> list[Write]:
            return [outcome_write(task, result_of(outcome), committed=False)]

        if legal and not policy.systems[task.task.system].datasets:
            # A processor we cannot ask record by record: the hold keeps it all, or all the erasure
            # had not done when the hold came while it waited. What it had done stands, and is
            # counted: the letter says it, as well as what the hold keeps (activities/letter_outcome.py).
            outcome = await connector.held_back_so_far(subject) if carrying_on else ActionOutcome(status="done")
            outcome.message = "kept under a legal-claims hold" + (
                " placed while the erasure waited to carry on: what it had done before stands"
                + (f" ({outcome.message})" if outcome.message else "") if carrying_on else "")
            outcome.held = [HeldRecord("all", "all", "legal_claims", h.id, None) for h in context.legal_holds]
            # Erased when the hold ends (activities/deferred_processors.py): without this row
            # nothing would ever ask the processor again.
            await self.keep_evidence(task.request_id, task.task.system, task.policy_version, subject, outcome)
        else:
            # The run's stored outcome is its attempt's; a poll carrying on has none of its own.
            outcome = await self.erase_with_evidence(
                connector, task.request_id, task.task.system, task.policy_version, subject, context,
                also=None if carrying_on else provisional)
        return result_of(outcome)

    async def _identities_agree(self, policy_version: str, subject: Subject) -> None:
        """Identities that point at different people in any sql system stop every task, not
        only that system's: an e-mail with another person's customer id must not erase (or
        change) the e-mail's owner elsewhere either. One identity cannot disagree with itself."""
        if not subject.customer_id:
            return
        policy = (await self.ctx.policy(policy_version)).policy
        for name, system in policy.systems.items():
            if system.connector == "sql":
                async with open_connector(self.ctx, policy_version, name) as connector:
                    assert isinstance(connector, SqlConnector)  # the sql kind
                    await connector.check_identities(subject)

    @activity.defn(name="poll_system_action")
    async def poll_system_action(self, task: TaskInput) -> TaskResult:
        row = await once_closed(task, await self._row(task.request_id), self._row)
        try:
            async with heartbeating(), open_connector(self.ctx, task.policy_version, task.task.system) as connector:
                # The attempt's http run goes on; on a request closed unanswered, nothing new is asked.
                subject = replace(subject_of(row), attempt=task.attempt, closed=closed_unanswered(task, row))
                if task.task.action == "erase" and connector.carries_on_erasing(task.external_id or ""):
                    # Not a status: an erasure, with its evidence, and as the holds stand now.
                    result = await self._erase(task, subject, connector, partial(_result, task), carrying_on=True)
                else:
                    outcome = await connector.status(subject, task.external_id or "")
                    outcome.external_id = outcome.external_id or task.external_id
                    result = _result(task, outcome)
        except TaskEnded as ended:
            return await self._ended(task, ended)
        except PermanentConnectorError as exc:
            raise ApplicationError(str(exc), type="PermanentConnectorError", non_retryable=True) from None
        if task.record and result.status != "pending":  # the pending one is on record already
            record = await store_task_result(self.ctx, task.request_id, result, by_attempt=True)
            if record is not None:
                return self._stands(task, record)
        return result

    @activity.defn(name="record_task_result")
    async def record_task_result(self, record: TaskRecord) -> None:
        """Store a system's (interim or final) result and audit it."""
        await store_task_result(self.ctx, record.request_id, await cancelled_as_known(self.ctx.pool, record))
        failpoint("task-result-recorded")  # stored, and the workflow not yet told

