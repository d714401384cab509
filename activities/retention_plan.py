"""What the policy's retention rules would do as of a moment: the read-only half of retention.

A row expires when its last activity (the latest of the rule's `last_activity` sources: a column of
its own, or the latest value over a child dataset's rows) is more than the rule's months before the
moment. Rows and subjects under an active legal-claims hold that covers what the rule touches are
counted apart and left alone. Everything here reads (SELECTs, read-only transactions); the SQL is
built from the validated policy, identifiers quoted and values passed as parameters, like the sql
connector's own. `activities/retention.py` carries the plan out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dateutil.relativedelta import relativedelta
from pydantic import EmailStr, TypeAdapter, ValidationError

from activities.connectors import build_connector
from activities.connectors.base import ConnectorEnv
from activities.connectors.sql import SqlConnector
from activities.connectors.sql_queries import Plan, Query, as_text, ident
from activities.context import ActivityContext
from dsrflow.stores.restrictions_store import keeping_from_erasure
from policy.keeping import RetentionRule
from policy.model import LoadedPolicy, load_policy
from policy.systems import Dataset
from schemas.requests import RequestStatus

_EMAIL = TypeAdapter(EmailStr)
_DIGEST = r"^[0-9a-f]{64}$"
_OPEN = [s.value for s in RequestStatus if not s.is_closed]


@dataclass(frozen=True)
class DueSubject:
    """Whose erasure a rule asks for. Personal data: it never leaves the retention activity."""

    email: str
    last_activity: datetime
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
    already_erased: int = 0  # erase_subject: a retention request of this rule since the last activity


def current_policy(ctx: ActivityContext) -> LoadedPolicy:
    """Retention follows the policy file as it is today (each request records the version)."""
    return load_policy(ctx.settings.policy_path)


@asynccontextmanager
async def sql_connector(ctx: ActivityContext, loaded: LoadedPolicy, system: str) -> AsyncIterator[SqlConnector]:
    """The system's connector under the policy as loaded (not `open_connector`, which needs the
    version stored first: planning writes nothing at all)."""
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


def owner_expr(plan: Plan, dataset: Dataset, identity: str, q: Query, alias: str) -> str | None:
    """An expression for the subject identity of a row: its own column, or its parent's."""
    if identity in dataset.identify:
        return f"{alias}.{ident(dataset.identify[identity])}::text"
    if dataset.via is None:
        return None
    parent, p = plan.datasets[dataset.via.dataset], q.alias()
    inner = owner_expr(plan, parent, identity, q, p)
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
    for column, f in cleared_fields(dataset, rule).items():
        col = f"{alias}.{ident(column)}"
        if f.erase == "null":
            clauses.append(f"{col} IS NOT NULL")
        elif f.erase == "fixed":
            clauses.append(f"{col}::text IS DISTINCT FROM {q.arg(as_text(f.value))}::text")
        else:  # hash: a digest is what erasure leaves
            clauses.append(f"({col} IS NOT NULL AND {col}::text !~ '{_DIGEST}')")
    return "(" + " OR ".join(clauses) + ")" if clauses else "FALSE"


def cleared_fields(dataset: Dataset, rule: RetentionRule) -> dict[str, Any]:
    return {c: f for c, f in dataset.fields.items()
            if f.erase != "keep" and (rule.categories is None or f.category in rule.categories)}


def _held(plan: Plan, dataset: Dataset, holds: tuple[list[str], list[str]], q: Query, alias: str) -> str:
    emails, customers = holds
    clauses = []
    for identity, values in (("email", emails), ("customer_id", customers)):
        owner = owner_expr(plan, dataset, identity, q, alias)
        if owner is not None and values:
            clauses.append(f"coalesce(lower({owner}) = ANY({q.arg(values)}::text[]), false)")
    return "(" + " OR ".join(clauses) + ")" if clauses else "FALSE"


def expired_rows(plan: Plan, rule: RetentionRule, cutoff: datetime, holds: tuple[list[str], list[str]],
                  columns: list[str], q: Query) -> str:
    """SELECT `columns` (t0 is the row; `last_activity` and `held` are there too) of the rule's
    expired rows."""
    dataset = plan.datasets[rule.dataset]
    last = _last_activity(plan, rule, q, "t0")
    held = _held(plan, dataset, holds, q, "t0")
    where = f"{last} < {q.arg(cutoff)}::timestamptz AND {_changing(plan, rule, q, 't0')}"
    if rule.only_where_set:
        where += " AND (" + " OR ".join(f"t0.{ident(c)} IS NOT NULL" for c in rule.only_where_set) + ")"
    return (f"SELECT {', '.join(columns)} FROM (SELECT t0.*, {last} AS last_activity, {held} AS held "
            f"FROM {ident(dataset.table)} AS t0 WHERE {where}) AS t0")


# Planning ---------------------------------------------------------------------------------------

async def holds_for(ctx: ActivityContext, loaded: LoadedPolicy, rule: RetentionRule) -> tuple[list[str], list[str]]:
    """Subjects (addresses, customer ids) under an active legal-claims hold that covers what the
    rule would touch, or under a restriction that keeps their records from erasure."""
    systems = rule.systems or [rule.system]
    touched = set(rule.categories or [f.category for name in systems
                                      for d in loaded.policy.systems[name].datasets for f in d.fields.values()])
    emails, customers = [], []
    for h in await ctx.pool.fetch("SELECT subject_email, customer_id, systems, categories "
                                  "FROM legal_holds WHERE released_at IS NULL"):
        if h["systems"] and not set(systems) & set(h["systems"]):
            continue
        # A system without datasets (a processor) may hold any category.
        if h["categories"] and touched and not touched & set(h["categories"]):
            continue
        if h["subject_email"]:
            emails.append(h["subject_email"].strip().lower())
        if h["customer_id"]:
            customers.append(h["customer_id"].strip().lower())
    # A restriction that keeps the subject's records from erasure keeps them like a hold, in every
    # system (activities/restriction_guard.py).
    for r in await keeping_from_erasure(ctx.pool, loaded.policy.restriction.keeps_from_erasure):
        emails += [r["email"]] if r["email"] else []
        customers += [r["customer_id"]] if r["customer_id"] else []
    return emails, customers


async def _plan_subjects(ctx: ActivityContext, connector: SqlConnector, rule: RetentionRule,
                         cutoff: datetime, holds: tuple[list[str], list[str]]) -> RetentionDue:
    plan = connector.plan
    dataset = plan.datasets[rule.dataset]
    q = Query()
    ids = {i: f"t0.{ident(c)}::text AS {i}" for i, c in dataset.identify.items()}
    sql = expired_rows(plan, rule, cutoff, holds, [*ids.values(), "held", "last_activity"], q)
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
        # Rows come oldest activity first: the subject's last activity is that of its last row.
        seen.pop(email, None)
        seen[email] = DueSubject(email=email, last_activity=row["last_activity"],
                                 name=_bounded(row.get("name"), 200), customer_id=_bounded(row.get("customer_id"), 100))
    open_now = {r[0] for r in await ctx.pool.fetch(
        """SELECT DISTINCT lower(subject_email) FROM dsr_requests
           WHERE request_type = 'erasure' AND status = ANY($1::text[]) AND lower(subject_email) = ANY($2::text[])""",
        _OPEN, list(seen))}
    # Erased once for this last activity (done, or closed by staff) is enough; a later activity
    # makes the subject due again when its own period ends.
    erased_for = dict(await ctx.pool.fetch(
        """SELECT lower(subject_email), max((details->>'retention_last_activity')::timestamptz)
           FROM dsr_requests WHERE origin = 'retention' AND details->>'retention_rule' = $1
             AND status <> ALL($2::text[]) AND lower(subject_email) = ANY($3::text[])
           GROUP BY 1""",
        rule.name, _OPEN, list(seen)))
    for email, subject in sorted(seen.items(), key=lambda item: item[1].last_activity):
        if email in held:
            due.held += 1
        elif email in open_now:
            due.in_progress += 1
        elif erased_for.get(email) is not None and erased_for[email] >= subject.last_activity:
            due.already_erased += 1
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
    ctes = [f"d0 AS ({expired_rows(plan, rule, cutoff, holds, ['t0.*'], q)})"]
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
                link = ident(child.via.parent_column or parent.key)
                ctes.append(f"{name} AS (SELECT c.* FROM {ident(child.table)} AS c WHERE "
                            f"c.{ident(child.via.column)} IN (SELECT {link} FROM {cte} WHERE {condition}))")
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
    holds = await holds_for(ctx, loaded, rule)
    async with sql_connector(ctx, loaded, rule.system) as connector:
        if rule.action == "erase_subject":
            return await _plan_subjects(ctx, connector, rule, cutoff_for(rule, as_of), holds)
        return await _plan_rows(connector, rule, cutoff_for(rule, as_of), holds)


async def plan_retention(ctx: ActivityContext, loaded: LoadedPolicy, as_of: datetime,
                         rules: list[str] | None = None) -> list[RetentionDue]:
    """What each rule (or each named one) would do as of `as_of`. Changes nothing."""
    return [await plan_rule(ctx, loaded, rule, as_of) for rule in rules_named(loaded, rules)]


# What `held` counts (`holds_for`): a subject a restriction keeps from erasure is left alone as one
# under a hold is, and the words must not tell an operator it is under a hold it is not under.
_HELD = "under a legal-claims hold or a restriction that keeps them from erasure"


def describe(planned: list[RetentionDue], as_of: datetime, loaded: LoadedPolicy) -> str:
    """The plan in words, for `dsrflow retention plan`: counts per system and dataset, no
    addresses."""
    lines = [f"retention plan as of {as_of.isoformat(timespec='seconds')} (policy {loaded.version[:12]})"]
    subjects = rows = 0
    for due in planned:
        rule = due.rule
        after = ", ".join(f"max({s.dataset}.{s.column})" if s.dataset else s.column for s in rule.last_activity)
        limit = f" (at most {rule.max_per_run} this run)" if due.count > rule.max_per_run else ""
        scope = f" (rows with {' or '.join(rule.only_where_set)} set)" if rule.only_where_set else ""
        lines.append(f"{rule.name}: {rule.action} {due.system}.{due.dataset}{scope}, "
                     f"{rule.months} months after the latest of {after}")
        if rule.action == "erase_subject":
            subjects += due.count
            reach = f"in {', '.join(rule.systems)}" if rule.systems else "in every system"
            lines.append(f"  {due.system}.{due.dataset}: {due.count} subject(s): an erasure request each, "
                         f"{reach} (records under a hold are kept){limit}")
            lines.append(f"  left alone: {due.held} {_HELD}, {due.in_progress} with an "
                         f"erasure request open, {due.already_erased} erased since their last activity, "
                         f"{due.unidentifiable} row(s) without a usable e-mail address")
            continue
        what = f"{', '.join(rule.categories)} fields cleared" if rule.categories else "erased"
        for name, n in (due.datasets or {due.dataset: 0}).items():
            rows += n
            lines.append(f"  {due.system}.{name}: {n} row(s): {what}{limit if name == due.dataset else ''}")
        lines.append(f"  left alone: {due.held} row(s) {_HELD}")
    lines.append(f"total: {subjects} subject(s) to erase, {rows} row(s) to erase or clear")
    return "\n".join(lines)
