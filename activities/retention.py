"""Retention: the policy's retention periods, applied every day.

`plan_retention` finds, rule by rule, what has outlived its period as of a moment, and changes
nothing (read-only transactions, SELECTs only). The `retention_sweep` activity carries the plan out:
- `erase_subject`: one erasure request per subject (origin `retention`, identity attested by the
  system), started like any other request, so it reaches every system and is hold-aware. Requests
  are idempotent per rule, subject (keyed hash) and day; a subject with an erasure request already
  open, or under a legal-claims hold on the rule's system, is left alone;
- `delete_rows`: the expired rows are erased in bulk by their dataset's rules, child rows first
  (deleted ones go to the erasure ledger), or with `categories` only those fields are cleared.
  Rows of a subject under a legal-claims hold that covers them stay.
Results carry counts only; addresses and record keys stay in this module.
"""

from __future__ import annotations

import re
from collections import defaultdict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from pydantic import EmailStr, TypeAdapter, ValidationError
from temporalio import activity
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.connectors import build_connector
from activities.connectors.base import ConnectorEnv, PermanentConnectorError
from activities.connectors.sql import SqlConnector
from activities.connectors.sql_queries import Plan, Query, as_text, ident, update_by_key
from activities.context import ActivityContext
from dsrflow.audit import append_event
from dsrflow.holds_store import subject_hash
from dsrflow.requests_store import IdempotencyConflict, create_request, record_policy_version
from policy.model import Dataset, LoadedPolicy, RetentionRule, load_policy
from schemas.requests import Channel, NewRequest, RequestStatus, RequestType, SubjectIdentity
from schemas.retention import RetentionReport, RetentionSweepInput, RuleOutcome
from schemas.workflow import StartRequest, workflow_id_for

_EMAIL = TypeAdapter(EmailStr)
_DIGEST = r"^[0-9a-f]{64}$"
_OPEN = [s.value for s in RequestStatus if not s.is_closed]
_BATCH = 1000  # rows per round trip of a bulk removal


@dataclass(frozen=True)
class DueSubject:
    """Whose erasure a rule asks for. Personal data: never leaves this module's activity."""

    email: str
    name: str | None = None
    customer_id: str | None = None


@dataclass
class RetentionDue:
    """What one rule would do now."""

    rule: RetentionRule
    system: str
    dataset: str
    count: int  # subjects (erase_subject) or rows of the rule's dataset (delete_rows) due now
    subjects: list[DueSubject] = field(default_factory=list)  # erase_subject, oldest activity first
    datasets: dict[str, int] = field(default_factory=dict)  # delete_rows: rows per dataset, children too
    held: int = 0
    in_progress: int = 0
    unidentifiable: int = 0


def current_policy(ctx: ActivityContext) -> LoadedPolicy:
    """Retention follows the policy file as it is today (each request records the version)."""
    return load_policy(ctx.settings.policy_path)


@asynccontextmanager
async def _sql(ctx: ActivityContext, loaded: LoadedPolicy, system: str):
    connector = build_connector(ConnectorEnv(
        system_name=system, system=loaded.policy.systems[system], policy=loaded.policy,
        settings=ctx.settings, secret=ctx.secret, callback_url="", pool=ctx.pool,
    ))
    assert isinstance(connector, SqlConnector)
    try:
        yield connector
    finally:
        await connector.close()


# SQL, built from the validated policy like the connector's own ---------------------------------

def _last_activity(plan: Plan, rule: RetentionRule, q: Query, alias: str) -> str:
    """The row's last activity: the latest of the rule's sources (NULLs ignored)."""
    dataset = plan.datasets[rule.dataset]
    parts = []
    for source in rule.last_activity:
        if source.dataset is None:
            parts.append(f"{alias}.{ident(source.column)}")
            continue
        child, c = plan.datasets[source.dataset], q.alias()
        assert child.via is not None
        parts.append(f"(SELECT max({c}.{ident(source.column)}) FROM {ident(child.table)} AS {c} "
                     f"WHERE {c}.{ident(child.via.column)} = {alias}.{ident(child.via.parent_column or dataset.key)})")
    return parts[0] if len(parts) == 1 else f"GREATEST({', '.join(parts)})"


def _owner(plan: Plan, dataset: Dataset, identity: str, q: Query, alias: str) -> str | None:
    """An expression for the subject identity of a row: its own column, or its parent's."""
    if identity in dataset.identify:
        return f"{alias}.{ident(dataset.identify[identity])}::text"
    if dataset.via is None:
        return None
    parent, p = plan.datasets[dataset.via.dataset], q.alias()
    inner = _owner(plan, parent, identity, q, p)
    if inner is None:
        return None
    return (f"(SELECT {inner} FROM {ident(parent.table)} AS {p} WHERE "
            f"{p}.{ident(dataset.via.parent_column or parent.key)} = {alias}.{ident(dataset.via.column)} LIMIT 1)")


def _changing(plan: Plan, rule: RetentionRule, q: Query, alias: str) -> str:
    """Rows the action would still change: every expired row when rows are deleted; otherwise
    those with a field not yet erased, so a row already done is not counted again."""
    dataset = plan.datasets[rule.dataset]
    if rule.categories is None and plan.erasure[dataset.name] == "delete":
        return "TRUE"
    clauses = []
    for column, f in _cleared_fields(dataset, rule).items():
        col = f"{alias}.{ident(column)}"
        if f.erase == "null":
            clauses.append(f"{col} IS NOT NULL")
        elif f.erase == "fixed":
            clauses.append(f"{col}::text IS DISTINCT FROM {q.arg(as_text(f.value))}::text")
        else:  # hash: a digest is what erasure leaves
            clauses.append(f"({col} IS NOT NULL AND {col}::text !~ '{_DIGEST}')")
    return "(" + " OR ".join(clauses) + ")" if clauses else "FALSE"


def _cleared_fields(dataset: Dataset, rule: RetentionRule) -> dict[str, Any]:
    return {c: f for c, f in dataset.fields.items()
            if f.erase != "keep" and (rule.categories is None or f.category in rule.categories)}


def _held(plan: Plan, dataset: Dataset, holds: tuple[list[str], list[str]], q: Query, alias: str) -> str:
    emails, customers = holds
    clauses = []
    for identity, values in (("email", emails), ("customer_id", customers)):
        owner = _owner(plan, dataset, identity, q, alias)
        if owner is not None and values:
            clauses.append(f"coalesce(lower({owner}) = ANY({q.arg(values)}::text[]), false)")
    return "(" + " OR ".join(clauses) + ")" if clauses else "FALSE"


def _expired_rows(plan: Plan, rule: RetentionRule, cutoff: datetime, holds: tuple[list[str], list[str]],
                  columns: list[str], q: Query) -> str:
    """SELECT `columns` (t0 is the row; `last_activity` and `held` are there too) of the rule's
    expired rows."""
    dataset = plan.datasets[rule.dataset]
    last = _last_activity(plan, rule, q, "t0")
    held = _held(plan, dataset, holds, q, "t0")
    where = f"{last} < {q.arg(cutoff)}::timestamptz AND {_changing(plan, rule, q, 't0')}"
    return (f"SELECT {', '.join(columns)} FROM (SELECT t0.*, {last} AS last_activity, {held} AS held "
            f"FROM {ident(dataset.table)} AS t0 WHERE {where}) AS t0")


# Planning ---------------------------------------------------------------------------------------

async def _holds_for(ctx: ActivityContext, loaded: LoadedPolicy, rule: RetentionRule) -> tuple[list[str], list[str]]:
    """Subjects (addresses, customer ids) under an active legal-claims hold that covers what the
    rule would touch."""
    system = loaded.policy.systems[rule.system]
    touched = set(rule.categories or [f.category for d in system.datasets for f in d.fields.values()])
    emails, customers = [], []
    for h in await ctx.pool.fetch("SELECT subject_email, customer_id, systems, categories "
                                  "FROM legal_holds WHERE released_at IS NULL"):
        if h["systems"] and rule.system not in h["systems"]:
            continue
        if h["categories"] and not touched & set(h["categories"]):
            continue
        if h["subject_email"]:
            emails.append(h["subject_email"].strip().lower())
        if h["customer_id"]:
            customers.append(h["customer_id"].strip().lower())
    return emails, customers


async def _plan_subjects(ctx: ActivityContext, connector: SqlConnector, rule: RetentionRule,
                         cutoff: datetime, holds: tuple[list[str], list[str]]) -> RetentionDue:
    plan = connector.plan
    dataset = plan.datasets[rule.dataset]
    q = Query()
    ids = {i: f"t0.{ident(c)}::text AS {i}" for i, c in dataset.identify.items()}
    sql = _expired_rows(plan, rule, cutoff, holds, [*ids.values(), "held"], q)
    sql += f" ORDER BY t0.last_activity, t0.{ident(dataset.key)}"
    async with connector._connection() as conn, conn.transaction(readonly=True):
        with connector._mapped(dataset.name):
            rows = await conn.fetch(sql, *q.args)
    due = RetentionDue(rule=rule, system=rule.system, dataset=rule.dataset, count=0)
    seen: dict[str, DueSubject] = {}
    held: set[str] = set()
    for row in rows:
        try:
            email = str(_EMAIL.validate_python(row["email"])).lower()
        except ValidationError:
            due.unidentifiable += 1  # no address (e.g. already minimised): nobody to open a request for
            continue
        if row["held"]:
            held.add(email)
        seen.setdefault(email, DueSubject(email=email, name=_bounded(row.get("name"), 200),
                                          customer_id=_bounded(row.get("customer_id"), 100)))
    open_now = {r[0] for r in await ctx.pool.fetch(
        """SELECT DISTINCT lower(subject_email) FROM dsr_requests
           WHERE request_type = 'erasure' AND status = ANY($1::text[]) AND lower(subject_email) = ANY($2::text[])""",
        _OPEN, list(seen))}
    for email, subject in seen.items():
        if email in held:
            due.held += 1
        elif email in open_now:
            due.in_progress += 1
        else:
            due.subjects.append(subject)
    due.count = len(due.subjects)
    return due


def _bounded(value: str | None, length: int) -> str | None:
    """An extra identity for the request, when it fits the request's contract."""
    value = (value or "").strip()
    return value if 0 < len(value) <= length else None


async def _plan_rows(connector: SqlConnector, rule: RetentionRule, cutoff: datetime,
                     holds: tuple[list[str], list[str]]) -> RetentionDue:
    """Counts of the expired rows and, when whole rows go, of the child rows that go with them."""
    plan = connector.plan
    dataset = plan.datasets[rule.dataset]
    q = Query()
    ctes = [f"d0 AS ({_expired_rows(plan, rule, cutoff, holds, ['t0.*'], q)})"]
    counts = ["(SELECT count(*) FROM d0 WHERE NOT held)", "(SELECT count(*) FROM d0 WHERE held)"]
    names = [dataset.name]
    if rule.categories is None:
        todo, refs = [(dataset, "d0", "NOT held")], 0
        while todo:
            parent, cte, condition = todo.pop(0)
            for child in plan.children[parent.name]:
                assert child.via is not None
                refs += 1
                name = f"d{refs}"
                ctes.append(f"{name} AS (SELECT c.* FROM {ident(child.table)} AS c WHERE c.{ident(child.via.column)} IN "
                            f"(SELECT {ident(child.via.parent_column or parent.key)} FROM {cte} WHERE {condition}))")
                counts.append(f"(SELECT count(*) FROM {name})")
                names.append(child.name)
                todo.append((child, name, "TRUE"))
    sql = f"WITH {', '.join(ctes)} SELECT {', '.join(counts)}"
    async with connector._connection() as conn, conn.transaction(readonly=True):
        with connector._mapped(dataset.name):
            row = await conn.fetchrow(sql, *q.args)
    values = list(row)
    due, held, children = values[0], values[1], values[2:]
    datasets = {dataset.name: due, **{n: c for n, c in zip(names[1:], children, strict=True) if c}}
    return RetentionDue(rule=rule, system=rule.system, dataset=rule.dataset, count=due,
                        datasets=datasets if due else {}, held=held)


def cutoff_for(rule: RetentionRule, as_of: datetime) -> datetime:
    return as_of.astimezone(UTC) - relativedelta(months=rule.months)


def rules_named(loaded: LoadedPolicy, names: list[str] | None) -> list[RetentionRule]:
    unknown = sorted(set(names or []) - {r.name for r in loaded.policy.retention})
    if unknown:
        raise ValueError(f"no retention rule named {', '.join(unknown)}")
    return [r for r in loaded.policy.retention if names is None or r.name in names]


async def plan_rule(ctx: ActivityContext, loaded: LoadedPolicy, rule: RetentionRule, as_of: datetime) -> RetentionDue:
    """What one rule would do as of `as_of`. Changes nothing."""
    holds = await _holds_for(ctx, loaded, rule)
    async with _sql(ctx, loaded, rule.system) as connector:
        if rule.action == "erase_subject":
            return await _plan_subjects(ctx, connector, rule, cutoff_for(rule, as_of), holds)
        return await _plan_rows(connector, rule, cutoff_for(rule, as_of), holds)


async def plan_retention(ctx: ActivityContext, loaded: LoadedPolicy, as_of: datetime,
                         rules: list[str] | None = None) -> list[RetentionDue]:
    """What each rule (or each named one) would do as of `as_of`. Changes nothing."""
    return [await plan_rule(ctx, loaded, rule, as_of) for rule in rules_named(loaded, rules)]


# Carrying it out --------------------------------------------------------------------------------

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
        outcomes = []
        for rule in rules:
            try:
                due = await plan_rule(ctx, loaded, rule, as_of)
                if rule.action == "erase_subject":
                    outcome = await self._erase_subjects(loaded, due, as_of)
                else:
                    outcome = await self._remove_rows(loaded, due, as_of)
            except PermanentConnectorError as exc:
                # A rule that cannot run (the system's schema no longer matches the policy) needs
                # a person; the other rules still run, and tomorrow's sweep tries it again.
                activity.logger.error("retention rule failed", extra={"rule": rule.name})
                outcome = RuleOutcome(rule=rule.name, action=rule.action, system=rule.system,
                                      dataset=rule.dataset, error=str(exc)[:500])
            async with ctx.pool.acquire() as conn:
                await append_event(
                    conn, event_key=f"retention:{rule.name}:{as_of.isoformat()}",
                    event_type="retention.applied", actor="retention",
                    data={**outcome.model_dump(mode="json"), "as_of": as_of.isoformat(),
                          "policy_version": loaded.version, "reason": sweep.reason},
                )
            outcomes.append(outcome)
        return RetentionReport(as_of=as_of, policy_version=loaded.version, rules=outcomes)

    async def _erase_subjects(self, loaded: LoadedPolicy, due: RetentionDue, as_of: datetime) -> RuleOutcome:
        ctx, rule = self.ctx, due.rule
        day = as_of.astimezone(ZoneInfo(loaded.policy.defaults.timezone)).date().isoformat()
        client = activity.client()
        started = in_progress = 0
        for subject in due.subjects[:rule.max_per_run]:
            new = NewRequest(
                type=RequestType.erasure, regime=loaded.policy.defaults.regime, channel=Channel.api,
                subject=SubjectIdentity(email=subject.email, name=subject.name, customer_id=subject.customer_id),
                identity_attested=True,
            )
            key = f"{rule.name}:{subject_hash(ctx.secret, subject.email)}:{day}"
            try:
                row, _ = await create_request(
                    ctx.pool, new, loaded_policy=loaded, actor=f"retention:{rule.name}", idempotency_key=key,
                    origin="retention",
                    extra_details={"retention_rule": rule.name, "notify_subject": rule.notify_subject},
                )
            except IdempotencyConflict:
                in_progress += 1  # today's request for this subject was opened with other identities
                continue
            if not RequestStatus(row["status"]).is_closed:
                request_id = str(row["id"])
                try:
                    await client.start_workflow(
                        "DataSubjectRequestWorkflow",
                        StartRequest(request_id=request_id, policy_version=row["policy_version"]),
                        id=workflow_id_for(request_id), task_queue=activity.info().task_queue,
                        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    )
                except WorkflowAlreadyStartedError:
                    pass  # it ran and finished already: a repeat must not erase again
            started += 1
            activity.heartbeat()
        return RuleOutcome(rule=rule.name, action=rule.action, system=rule.system, dataset=rule.dataset,
                           due=due.count + due.held + due.in_progress, started=started, held=due.held,
                           in_progress=due.in_progress + in_progress, unidentifiable=due.unidentifiable,
                           deferred=max(due.count - rule.max_per_run, 0))

    async def _remove_rows(self, loaded: LoadedPolicy, due: RetentionDue, as_of: datetime) -> RuleOutcome:
        rule = due.rule
        removed: dict[str, int] = defaultdict(int)
        holds = await _holds_for(self.ctx, loaded, rule)
        done = 0
        async with _sql(self.ctx, loaded, rule.system) as connector:
            plan = connector.plan
            dataset = plan.datasets[rule.dataset]
            while done < min(due.count, rule.max_per_run):
                q = Query()
                sql = (_expired_rows(plan, rule, cutoff_for(rule, as_of), holds, [f"t0.{ident(dataset.key)}::text"], q)
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
                    batch = {dataset.name: await _clear_fields(connector, rule, dataset, keys)}
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
                        rows = await conn.fetch(
                            f"SELECT c.{ident(child.key)}::text FROM {ident(child.table)} AS c "
                            f"WHERE c.{ident(child.via.column)} IN (SELECT p.{ident(child.via.parent_column or parent.key)} "
                            f"FROM {ident(parent.table)} AS p WHERE p.{ident(parent.key)}::text = ANY($1::text[]))",
                            wanted[parent.name])
                    wanted[child.name] = [r[0] for r in rows]
                    todo.append(child)
            owners: dict[tuple[str, str], str] = {}
            for name, these in wanted.items():
                q = Query()
                owner = _owner(plan, plan.datasets[name], "email", q, "t0")
                if owner is None or not these:
                    continue
                table, key = ident(plan.datasets[name].table), ident(plan.datasets[name].key)
                for r in await conn.fetch(f"SELECT t0.{key}::text, {owner} FROM {table} AS t0 "
                                          f"WHERE t0.{key}::text = ANY({q.arg(these)}::text[])", *q.args):
                    if r[1]:
                        owners[(name, r[0])] = r[1]
        erased = await connector.erase_keys(wanted)
        await self.ctx.pool.executemany(
            """INSERT INTO erasure_ledger (subject_hash, system, dataset, record_key, action,
                                           policy_version, request_id, origin)
               VALUES ($1, $2, $3, $4, $5, $6, NULL, 'retention')""",
            [(subject_hash(self.ctx.secret, owners[(name, key)]), connector.name, name, key, action, loaded.version)
             for name, pairs in erased.items() for key, action in pairs if (name, key) in owners])
        return {name: len(pairs) for name, pairs in erased.items() if pairs}


async def _clear_fields(connector: SqlConnector, rule: RetentionRule, dataset: Dataset, keys: list[str]) -> int:
    """Apply the erase rules of the rule's categories' fields to these rows; the rows stay."""
    cleared = _cleared_fields(dataset, rule)
    hashed = [c for c, f in cleared.items() if f.erase == "hash"]
    values = {c: (None if f.erase == "null" else f.value) for c, f in cleared.items() if f.erase != "hash"}
    key = ident(dataset.key)
    async with connector._connection() as conn, conn.transaction():
        with connector._mapped(dataset.name):
            selected = ", ".join([key, *(ident(c) for c in hashed)])
            rows = await conn.fetch(
                f"SELECT {selected} FROM {ident(dataset.table)} WHERE {key}::text = ANY($1::text[])", keys)
            update_sql, constant_args = update_by_key(dataset, hashed, values, connector._column_types(dataset))
            await conn.executemany(update_sql, [
                (row[0], *(connector._hash(dataset, c, row[i + 1]) for i, c in enumerate(hashed)), *constant_args)
                for row in rows
            ])
    return len(rows)


def describe(planned: list[RetentionDue], as_of: datetime, loaded: LoadedPolicy) -> str:
    """The plan in words, for `dsrflow retention plan`: counts per system and dataset, no
    addresses."""
    lines = [f"retention plan as of {as_of.isoformat(timespec='seconds')} (policy {loaded.version[:12]})"]
    subjects = rows = 0
    for due in planned:
        rule = due.rule
        after = ", ".join(f"max({s.dataset}.{s.column})" if s.dataset else s.column for s in rule.last_activity)
        limit = f" (at most {rule.max_per_run} this run)" if due.count > rule.max_per_run else ""
        lines.append(f"{rule.name}: {rule.action} {due.system}.{due.dataset}, "
                     f"{rule.months} months after the latest of {after}")
        if rule.action == "erase_subject":
            subjects += due.count
            lines.append(f"  {due.system}.{due.dataset}: {due.count} subject(s): an erasure request each, "
                         f"in every system (records under a hold are kept){limit}")
            lines.append(f"  left alone: {due.held} under a legal-claims hold, {due.in_progress} with an "
                         f"erasure request open, {due.unidentifiable} row(s) without a usable e-mail address")
            continue
        what = f"{', '.join(rule.categories)} fields cleared" if rule.categories else "erased"
        for name, n in (due.datasets or {due.dataset: 0}).items():
            rows += n
            lines.append(f"  {due.system}.{name}: {n} row(s): {what}{limit if name == due.dataset else ''}")
        lines.append(f"  left alone: {due.held} row(s) under a legal-claims hold")
    lines.append(f"total: {subjects} subject(s) to erase, {rows} row(s) to erase or clear")
    return "\n".join(lines)
