"""Retention: the policy's retention periods, applied every day.

`plan_retention` (activities/retention_plan.py) finds, rule by rule, what has outlived its period
as of a moment, and changes nothing. The `retention_sweep` activity carries the plan out:
- `erase_subject`: one erasure request per subject (origin `retention`, identity attested by the
  system), started like any other request, so it reaches every system (or the rule's `systems`)
  and is hold-aware. Requests are idempotent per rule, subject (keyed hash) and last activity; a
  subject with an erasure request already open, erased by the rule since its last activity, or
  under a legal-claims hold on the systems reached, is left alone;
- `delete_rows`: the expired rows are erased in bulk by their dataset's rules, child rows first
  (deleted ones go to the erasure ledger), or with `categories` only those fields are cleared.
  Rows of a subject under a legal-claims hold that covers them stay.
Results carry counts only; addresses and record keys stay in the activity.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.connectors.base import Erased, PermanentConnectorError
from activities.connectors.sql import SqlConnector
from activities.connectors.sql_queries import Query, ident
from activities.context import ActivityContext
from activities.errors import failure_message, is_deterministic
from activities.ledger import erase_keys_with_evidence, write_ledger
from activities.restriction_guard import audit_kept_from_retention
from activities.retention_plan import (  # noqa: F401 - plan_retention re-exported for callers
    RetentionDue,
    cleared_fields,
    current_policy,
    cutoff_for,
    expired_rows,
    holds_for,
    owner_expr,
    plan_retention,
    plan_rule,
    rules_named,
    sql_connector,
)
from dsrflow.crypto.hashing import subject_hash
from dsrflow.domain.audit import append_event
from dsrflow.domain.request_start import start_request_workflow
from dsrflow.stores.requests_store import (
    IdempotencyConflict,
    create_request,
    record_policy_version,
)
from dsrflow.stores.sweep_runs import record_sweep_success
from policy.model import LoadedPolicy
from policy.systems import Dataset
from schemas.requests import (
    Channel,
    NewRequest,
    RequestType,
    SubjectIdentity,
)
from schemas.retention import RetentionReport, RetentionSweepInput, RuleOutcome

_BATCH = 1000  # rows per round trip of a bulk removal


class RetentionActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="retention_sweep")
    async def sweep(self, sweep: RetentionSweepInput) -> RetentionReport:
        ctx = self.ctx
        as_of = sweep.as_of or datetime.now(UTC)
        loaded = current_policy(ctx)
        async with ctx.pool.acquire() as conn:
            await record_policy_version(conn, loaded)
        try:
            rules = rules_named(loaded, sweep.rules)
        except ValueError as exc:
            raise ApplicationError(str(exc), non_retryable=True) from None
        outcomes, unreachable = [], []
        for rule in rules:
            try:
                due = await plan_rule(ctx, loaded, rule, as_of)
                if rule.action == "erase_subject":
                    outcome = await self._erase_subjects(loaded, due, as_of)
                else:
                    outcome = await self._remove_rows(loaded, due, as_of)
                await audit_kept_from_retention(ctx, loaded, rule, as_of)
            except Exception as exc:  # noqa: BLE001 - one rule's failure must not stop the others
                if not (isinstance(exc, PermanentConnectorError) or is_deterministic(exc)):
                    # Its system cannot be reached: the other rules run first, then the sweep is
                    # retried for this one. Before, it was retried at once, for as long as the
                    # system was away, and the rules after it never ran (freeze audit).
                    activity.logger.warning("retention rule's system unreachable", extra={"rule": rule.name})
                    unreachable.append(rule.name)
                    continue
                # A rule that cannot run (the system's schema no longer matches the policy) needs
                # a person; the other rules still run, and tomorrow's sweep tries it again.
                activity.logger.error("retention rule failed", extra={"rule": rule.name})
                outcome = RuleOutcome(rule=rule.name, action=rule.action, system=rule.system, dataset=rule.dataset,
                                      error=(str(exc) if isinstance(exc, PermanentConnectorError)
                                             else failure_message(exc))[:500])
            async with ctx.pool.acquire() as conn:
                await append_event(
                    conn, event_key=f"retention:{rule.name}:{as_of.isoformat()}",
                    event_type="retention.applied", actor="retention",
                    data={**outcome.model_dump(mode="json"), "as_of": as_of.isoformat(),
                          "policy_version": loaded.version, "reason": sweep.reason},
                )
            outcomes.append(outcome)
        if unreachable:
            raise ConnectionError(f"retention rule(s) {', '.join(unreachable)}: their system could not be reached; "
                                  "the other rules ran, and the sweep is tried again")
        report = RetentionReport(as_of=as_of, policy_version=loaded.version, rules=outcomes)
        if sweep.rules is None:  # every rule ran: what the schedule's run does (a rule's own error is on its rule)
            await record_sweep_success(ctx.pool, "retention_sweep", report,
                                       problems=sum(1 for outcome in outcomes if outcome.error))
        return report

    async def _erase_subjects(self, loaded: LoadedPolicy, due: RetentionDue, as_of: datetime) -> RuleOutcome:
        ctx, rule = self.ctx, due.rule
        client = activity.client()
        started = in_progress = 0
        for subject in due.subjects[:rule.max_per_run]:
            new = NewRequest(
                type=RequestType.erasure, regime=loaded.policy.defaults.regime, channel=Channel.api,
                subject=SubjectIdentity(email=subject.email, name=subject.name, customer_id=subject.customer_id),
                identity_attested=True,
            )
            # One request per subject and last activity: a repeat run finds it, a later activity
            # (even on the same day) opens a new one.
            key = f"{rule.name}:{subject_hash(ctx.secret, subject.email)}:{subject.last_activity.isoformat()}"
            try:
                row, _ = await create_request(
                    ctx.pool, new, loaded_policy=loaded, secret=ctx.secret, actor=f"retention:{rule.name}", idempotency_key=key,
                    origin="retention",
                    extra_details={"retention_rule": rule.name, "notify_subject": rule.notify_subject,
                                   "retention_last_activity": subject.last_activity.isoformat(),
                                   **({"systems": rule.systems} if rule.systems else {})},
                )
            except IdempotencyConflict:
                in_progress += 1  # today's request for this subject was opened with other identities
                continue
            await start_request_workflow(client, row, loaded.policy.attention_after_minutes,
                                         task_queue=activity.info().task_queue,
                                         task_timeout=ctx.settings.workflow_task_timeout)
            started += 1
            activity.heartbeat()
        return RuleOutcome(rule=rule.name, action=rule.action, system=rule.system, dataset=rule.dataset,
                           due=due.count + due.held + due.in_progress, started=started, held=due.held,
                           in_progress=due.in_progress + in_progress, unidentifiable=due.unidentifiable,
                           already_erased=due.already_erased,
                           deferred=max(due.count - rule.max_per_run, 0))

    async def _remove_rows(self, loaded: LoadedPolicy, due: RetentionDue, as_of: datetime) -> RuleOutcome:
        rule = due.rule
        removed: dict[str, int] = defaultdict(int)
        holds = await holds_for(self.ctx, loaded, rule)
        done = 0
        async with sql_connector(self.ctx, loaded, rule.system) as connector:
            plan = connector.plan
            dataset = plan.datasets[rule.dataset]
            while done < min(due.count, rule.max_per_run):
                q = Query()
                sql = (expired_rows(plan, rule, cutoff_for(rule, as_of), holds, [f"t0.{ident(dataset.key)}::text"], q)
                       + f" WHERE NOT t0.held ORDER BY t0.last_activity, t0.{ident(dataset.key)} "
                       f"LIMIT {min(_BATCH, rule.max_per_run - done)}")
                async with connector._connection() as conn:
                    with connector._mapped(dataset.name):
                        keys = [r[0] for r in await conn.fetch(sql, *q.args)]
                if not keys:
                    break
                if rule.categories is None:
                    batch = await self._erase_rows(loaded, connector, dataset, keys)
                else:
                    batch = {dataset.name: len(await connector.clear_fields(dataset, keys, cleared_fields(dataset, rule)))}
                for name, n in batch.items():
                    removed[name] += n
                done += len(keys)
                activity.heartbeat()
                if not batch.get(dataset.name):
                    break  # nothing changed: do not spin on rows the update cannot change
        return RuleOutcome(rule=rule.name, action=rule.action, system=rule.system, dataset=rule.dataset,
                           due=due.count + due.held, removed=dict(removed), held=due.held,
                           deferred=max(due.count - done, 0))

    async def _erase_rows(self, loaded: LoadedPolicy, connector: SqlConnector, dataset: Dataset,
                          keys: list[str]) -> dict[str, int]:
        """Erase the rows and their child rows by the datasets' rules; ledger what went, under
        the subject it belonged to (rows whose subject is unknown are simply expired again on
        the next run if a backup restore brings them back)."""
        plan = connector.plan
        wanted = {dataset.name: keys}
        todo = [dataset]
        async with connector._connection() as conn:
            while todo:
                parent = todo.pop(0)
                for child in plan.children[parent.name]:
                    assert child.via is not None
                    with connector._mapped(child.name):
                        link = ident(child.via.parent_column or parent.key)
                        rows = await conn.fetch(
                            f"SELECT c.{ident(child.key)}::text FROM {ident(child.table)} AS c "
                            f"WHERE c.{ident(child.via.column)} IN (SELECT p.{link} FROM {ident(parent.table)} AS p "
                            f"WHERE p.{ident(parent.key)}::text = ANY($1::text[]))",
                            wanted[parent.name])
                    wanted[child.name] = [r[0] for r in rows]
                    todo.append(child)
            owners: dict[tuple[str, str], str] = {}
            for name, these in wanted.items():
                q = Query()
                owner = owner_expr(plan, plan.datasets[name], "email", q, "t0")
                if owner is None or not these:
                    continue
                table, key = ident(plan.datasets[name].table), ident(plan.datasets[name].key)
                for r in await conn.fetch(f"SELECT t0.{key}::text, {owner} FROM {table} AS t0 "
                                          f"WHERE t0.{key}::text = ANY({q.arg(these)}::text[])", *q.args):
                    if r[1]:
                        owners[(name, r[0])] = r[1]
        async def keep(erased: Erased) -> None:
            await write_ledger(self.ctx.pool, [
                (subject_hash(self.ctx.secret, owners[(name, key)]), connector.name, name, key, action,
                 loaded.version, None, "retention")
                for name, pairs in erased.items() for key, action in pairs if (name, key) in owners])

        erased = await erase_keys_with_evidence(connector, wanted, keep)
        return {name: len(pairs) for name, pairs in erased.items() if pairs}
