"""What a chaos pass left behind, read back for comparison: the letters in the mailbox and in the
app database, each request's task results, erasure ledger and deferred erasures, and every row of
the demo processor systems.

The demo systems' rows are attributed to subjects once, on the freshly seeded data (before any
erasure removes the address that links a row to its subject): a sql system through the policy's
own `identify`/`via` description of its datasets, the OpenDSR demo service through its schema.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from bench.chaos_stack import DEMO_DATABASES, ChaosStack
from devstack.smtp_sink import read_mailbox
from policy.model import load_policy
from policy.systems import Dataset

RowKey = tuple[str, str, tuple[str, ...]]  # (database, table, primary key values as text)
# Bookkeeping, not subjects' data: seed markers, and the OpenDSR service's log of our requests
# (keyed by our request ids, so different in every pass; its outcome is in system_tasks).
_NOT_DATA = {("email_marketing", "dsr_requests"), ("email_marketing", "demo_seed")}
_NOT_DATA_TABLES = {"demo_meta"}
DURING_PASS = "<set during the pass>"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CLOCK = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( ?UTC|Z|[+-]\d{2}:?\d{2})?")

_EMAIL_MARKETING_OWNERS = {
    "subscribers": "SELECT id::text AS pk, lower(email) AS email FROM subscribers",
    "campaign_activity": "SELECT a.id::text AS pk, lower(s.email) AS email FROM campaign_activity a "
                         "JOIN subscribers s ON s.id = a.subscriber_id",
    # Written by an erasure, keyed by the hash the service computes from the address.
    "suppressions": "SELECT email_sha256 AS pk, lower(email) AS email FROM subscribers",
}


@dataclass
class Letter:
    request_id: str
    purpose: str
    recipient: str
    message_id: str


@dataclass
class PassState:
    subjects: dict[str, str]  # request id -> subject's e-mail address
    mailbox: list[Letter]  # every .eml the sink kept for these requests, duplicates included
    recorded: list[Letter]  # sent_letters and manual_tasks rows: what the app says it sent
    tasks: dict[str, dict[str, dict[str, Any]]]  # subject -> "system:action" -> result
    ledger: dict[str, Counter]  # subject -> erasure ledger entries
    deferred: dict[str, Counter]  # subject -> erasures deferred under a hold
    rows: dict[RowKey, dict[str, Any]] = field(default_factory=dict)
    events: Counter = field(default_factory=Counter)  # audit event types over these requests


def _owner_sql(dataset: Dataset, datasets: dict[str, Dataset]) -> str:
    """(pk, email) for every row of a policy dataset, through its parents when it has no address."""
    if "email" in dataset.identify:
        return (f'SELECT "{dataset.key}"::text AS pk, lower("{dataset.identify["email"]}") AS email '
                f'FROM "{dataset.table}"')
    assert dataset.via is not None
    parent = datasets[dataset.via.dataset]
    return (f'SELECT c."{dataset.key}"::text AS pk, p.email FROM "{dataset.table}" c '
            f'JOIN ({_owner_sql(parent, datasets)}) p ON p.pk = c."{dataset.via.column}"::text')


def owner_queries() -> dict[tuple[str, str], str]:
    queries = {("email_marketing", table): sql for table, sql in _EMAIL_MARKETING_OWNERS.items()}
    for system in load_policy().policy.systems.values():
        if system.connector != "sql":
            continue
        datasets = {d.name: d for d in system.datasets}
        for dataset in system.datasets:
            queries[(system.config["database"], dataset.table)] = _owner_sql(dataset, datasets)
    return queries


async def row_owners(stack: ChaosStack) -> dict[RowKey, str]:
    """Which subject each row of the demo systems belongs to, read on freshly seeded data."""
    owners: dict[RowKey, str] = {}
    for (database, table), sql in owner_queries().items():
        async with stack.connection(database) as conn:
            for row in await conn.fetch(sql):
                owners[(database, table, (row["pk"],))] = row["email"]
    return owners


def _value(value: Any, since: datetime) -> Any:
    # A time the pass itself wrote (now() in an UPDATE) differs between passes by nature.
    if isinstance(value, datetime) and value >= since:
        return DURING_PASS
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


async def demo_rows(stack: ChaosStack, since: datetime) -> dict[RowKey, dict[str, Any]]:
    """Every row of every table of the demo systems, by primary key."""
    rows: dict[RowKey, dict[str, Any]] = {}
    for database in DEMO_DATABASES:
        async with stack.connection(database) as conn:
            keys = await conn.fetch(
                """SELECT c.relname AS table, array_agg(a.attname::text ORDER BY k.ord) AS columns
                     FROM pg_index i
                     JOIN pg_class c ON c.oid = i.indrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
                     CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                    WHERE i.indisprimary GROUP BY c.relname""")
            for key in keys:
                table = key["table"]
                if table in _NOT_DATA_TABLES or (database, table) in _NOT_DATA:
                    continue
                for row in await conn.fetch(f'SELECT * FROM "{table}"'):
                    pk = tuple(str(row[column]) for column in key["columns"])
                    rows[(database, table, pk)] = {k: _value(v, since) for k, v in row.items()}
    return rows


def _task_result(row: Any, request_id: str) -> dict[str, Any]:
    """A task's result as a clean run can reproduce it: not the ids derived from the request (an
    external id is compared by presence), nor the clock in a confirmation message."""
    message = row["message"]
    if message is not None:
        message = _CLOCK.sub("<time>", message.replace(request_id, "<request>"))
    return {"status": row["status"], "found": row["found"], "changed": row["changed"], "kept": row["kept"],
            "datasets": row["datasets"], "kept_records": row["kept_records"], "attempt": row["attempt"],
            "external_id": row["external_id"] is not None, "message": message}


async def pass_state(stack: ChaosStack, subjects: dict[str, str], since: datetime) -> PassState:
    ids = list(subjects)
    mailbox = [
        Letter(m["X-DSR-Request-Id"], m["X-DSR-Purpose"], parseaddr(m["To"])[1].lower(), m["Message-ID"])
        for m in read_mailbox(stack.mail) if m["X-DSR-Request-Id"] in subjects
    ]
    async with stack.connection() as conn:
        letters = await conn.fetch(
            """SELECT request_id::text, purpose, lower(recipient) AS recipient, message_id FROM sent_letters
                WHERE request_id = ANY($1::uuid[])
               UNION ALL
               SELECT request_id::text, 'processor_request', lower(contact_email), message_id FROM manual_tasks
                WHERE request_id = ANY($1::uuid[])""", ids)
        tasks = await conn.fetch("SELECT *, request_id::text AS rid FROM system_tasks WHERE request_id = ANY($1::uuid[])", ids)
        ledger = await conn.fetch(
            "SELECT request_id::text, system, dataset, record_key, action, origin FROM erasure_ledger "
            "WHERE request_id = ANY($1::uuid[])", ids)
        deferred = await conn.fetch(
            "SELECT request_id::text, system, dataset, record_key, hold_kind, hold_ref, erase_after::text "
            "FROM deferred_erasures WHERE request_id = ANY($1::uuid[])", ids)
        events = await conn.fetch(
            "SELECT event_type, count(*) AS n FROM audit_events WHERE request_id = ANY($1::uuid[]) GROUP BY 1", ids)
    state = PassState(
        subjects=subjects, mailbox=mailbox,
        recorded=[Letter(r["request_id"], r["purpose"], r["recipient"], r["message_id"]) for r in letters],
        tasks={email: {} for email in subjects.values()},
        ledger={email: Counter() for email in subjects.values()},
        deferred={email: Counter() for email in subjects.values()},
        rows=await demo_rows(stack, since),
        events=Counter({row["event_type"]: row["n"] for row in events}),
    )
    for row in tasks:
        state.tasks[subjects[row["rid"]]][f"{row['system']}:{row['action']}"] = _task_result(row, row["rid"])
    for row in ledger:
        state.ledger[subjects[row["request_id"]]][tuple(row.values())[1:]] += 1
    for row in deferred:
        state.deferred[subjects[row["request_id"]]][tuple(row.values())[1:]] += 1
    return state
