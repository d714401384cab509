"""Exactly once over many processes: what a set of erasures left behind, read back from every
place an effect lands, and the verdicts on it.

Unlike the chaos suite (bench/chaos_checks.py), which compares a pass under faults with a clean
pass, these verdicts are absolute: two APIs and two workers must leave what one request run
alone leaves, per request. The collection (`collect`) reads the stack; the checks (`findings`)
are pure functions over an Outcome, so tests/test_multi_process.py also runs them on doctored
outcomes: a check that cannot fail would be worth nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from temporalio.api.enums.v1 import EventType

from bench.chaos_snapshot import Letter, owner_queries
from bench.multi_stack import MultiProcessStack
from devstack.smtp_sink import read_mailbox
from schemas.workflow import workflow_id_for

# What one erasure writes to the subject, over the bench policy (no processor reached by e-mail).
LETTERS = {"acknowledgement": 1, "response": 1}
SYSTEMS = ("crm", "billing", "analytics", "email_marketing")
OPENDSR = "email_marketing"
# A system's erasure ends `done` (it erased or minimised something) or `not_found`.
TASK_ENDS = ("done", "not_found")
# The audit events every completed erasure has, each once; `what` is the event type and, where it
# names one, the system or the letter's purpose. Besides these, one task.done or task.not_found
# per system.
REQUIRED_EVENTS = ("request.created", "request.received", "letter.sent:acknowledgement", "plan.created",
                   "letter.sent:response", "status.completed")
KINDS = ("not_completed", "letters", "tasks", "ledger", "processor", "residue", "audit", "workers")


@dataclass
class Outcome:
    subjects: dict[str, str]  # request id -> subject's address
    statuses: dict[str, str]  # request id -> dsr_requests.status
    mailbox: list[Letter]  # every .eml the sink kept for these requests
    recorded: list[Letter]  # sent_letters: what the app says it sent
    tasks: dict[str, dict[str, dict[str, Any]]]  # request -> system -> {status, attempt, erased}
    ledger: list[tuple[str, str, str, str]]  # (request, system, dataset, record key), every row
    processor_seen: Counter = field(default_factory=Counter)  # request -> its completed requests in the OpenDSR demo
    events: dict[str, list[str]] = field(default_factory=dict)  # request -> `what` of each audit event
    held_before: Counter = field(default_factory=Counter)  # address -> demo rows linked to it, seeded
    held_after: Counter = field(default_factory=Counter)  # ... after the erasures
    worker_tasks: dict[str, Counter] = field(default_factory=dict)  # worker -> workflow/activity tasks


async def held_rows(stack: MultiProcessStack, addresses: set[str]) -> Counter:
    """Per address, the rows of the demo systems linked to it, directly or through a parent row
    (the policy's own `identify`/`via` description, bench/chaos_snapshot.py)."""
    held: Counter = Counter()
    for (database, _table), sql in owner_queries().items():
        async with stack.connection(database) as conn:
            for row in await conn.fetch(f"SELECT email FROM ({sql}) o WHERE email = ANY($1::text[])",
                                        sorted(addresses)):
                held[row["email"]] += 1
    return held


def _what(event_type: str, data: dict[str, Any]) -> str:
    detail = data.get("system") or data.get("purpose")
    return f"{event_type}:{detail}" if detail else event_type


async def collect(stack: MultiProcessStack, subjects: dict[str, str], held_before: Counter) -> Outcome:
    ids = sorted(subjects)
    mailbox = [Letter(m["X-DSR-Request-Id"], m["X-DSR-Purpose"], parseaddr(m["To"])[1].lower(), m["Message-ID"])
               for m in read_mailbox(stack.mail) if m["X-DSR-Request-Id"] in subjects]
    async with stack.connection() as conn:
        statuses = {r["id"]: r["status"] for r in await conn.fetch(
            "SELECT id::text, status FROM dsr_requests WHERE id = ANY($1::uuid[])", ids)}
        recorded = [Letter(r["request_id"], r["purpose"], r["recipient"], r["message_id"]) for r in await conn.fetch(
            "SELECT request_id::text, purpose, lower(recipient) AS recipient, message_id FROM sent_letters "
            "WHERE request_id = ANY($1::uuid[])", ids)]
        tasks: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        external: dict[str, str] = {}
        for r in await conn.fetch("SELECT request_id::text AS rid, system, status, attempt, datasets, external_id "
                                  "FROM system_tasks WHERE request_id = ANY($1::uuid[]) AND action = 'erase'", ids):
            # What the system reports it deleted or anonymised: each such record is ledgered once.
            erased = sum(d.get("deleted", 0) + d.get("anonymised", 0) for d in r["datasets"].values())
            tasks[r["rid"]][r["system"]] = {"status": r["status"], "attempt": r["attempt"], "erased": erased}
            if r["system"] == OPENDSR and r["external_id"]:
                external[r["external_id"]] = r["rid"]
        ledger = [tuple(r.values()) for r in await conn.fetch(
            "SELECT request_id::text, system, dataset, record_key FROM erasure_ledger WHERE request_id = ANY($1::uuid[])",
            ids)]
        events: dict[str, list[str]] = defaultdict(list)
        for r in await conn.fetch("SELECT request_id::text AS rid, event_type, data FROM audit_events "
                                  "WHERE request_id = ANY($1::uuid[]) ORDER BY seq", ids):
            events[r["rid"]].append(_what(r["event_type"], r["data"] or {}))
    # The processor's own log, keyed by the subject_request_id the connector derives from our
    # request (activities/connectors/opendsr.py), so a resubmission finds the first one.
    async with stack.connection(OPENDSR) as conn:
        processor_seen = Counter(external[r["id"]] for r in await conn.fetch(
            "SELECT subject_request_id::text AS id FROM dsr_requests WHERE subject_request_id = ANY($1::uuid[]) "
            "AND request_status = 'completed' AND subject_request_type = 'erasure'", list(external)))
    return Outcome(subjects=subjects, statuses=statuses, mailbox=mailbox, recorded=recorded, tasks=dict(tasks),
                   ledger=ledger, processor_seen=processor_seen, events=dict(events), held_before=held_before,
                   held_after=await held_rows(stack, set(subjects.values())))


async def tasks_per_worker(stack: MultiProcessStack, request_ids: list[str]) -> dict[str, Counter]:
    """Per worker of the stack, the workflow and activity tasks it ran for these requests, by
    the identity Temporal recorded in their histories (the request's and its children's)."""
    assert stack.client is not None
    client = stack.client
    names = {identity: w.name for w in stack.workers for identity in w.identities}
    counts: dict[str, Counter] = {name: Counter() for name in names.values()}
    limit = asyncio.Semaphore(8)

    async def count(workflow_id: str) -> None:
        async with limit:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        children = []
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                kind, identity = "workflow", event.workflow_task_started_event_attributes.identity
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                kind, identity = "activity", event.activity_task_started_event_attributes.identity
            else:
                if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                    children.append(event.start_child_workflow_execution_initiated_event_attributes.workflow_id)
                continue
            counts.setdefault(names.get(identity, f"other ({identity})"), Counter())[kind] += 1
        await asyncio.gather(*(count(child) for child in children))

    await asyncio.gather(*(count(workflow_id_for(rid)) for rid in request_ids))
    return counts


def findings(o: Outcome) -> dict[str, list[str]]:
    """Per kind, what is not exactly once; empty lists when every request left what it should."""
    found: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for rid in o.subjects:
        if o.statuses.get(rid) != "completed":
            found["not_completed"].append(f"{rid}: {o.statuses.get(rid, 'no row')}")
    _letters(o, found["letters"])
    _effects(o, found)
    for rid in o.subjects:
        seen = Counter(o.events.get(rid, []))
        twice = sorted(what for what, n in seen.items() if n > 1)
        missing = [what for what in REQUIRED_EVENTS if not seen[what]]
        missing += [f"task end:{s}" for s in SYSTEMS if sum(seen[f"task.{end}:{s}"] for end in TASK_ENDS) != 1]
        if twice or missing:
            found["audit"].append(f"{rid}: twice {twice}, missing {missing}")
    for worker, done in o.worker_tasks.items():
        if worker.startswith("other") or not (done["workflow"] and done["activity"]):
            found["workers"].append(f"{worker}: {dict(done)}")
    return found


def _letters(o: Outcome, found: list[str]) -> None:
    """Each request's letters to its subject exactly as LETTERS says, each message delivered once
    and recorded once, nothing delivered unrecorded or recorded undelivered."""
    kinds: dict[str, Counter] = {rid: Counter() for rid in o.subjects}
    for letter in o.mailbox:
        to = "subject" if letter.recipient == o.subjects[letter.request_id] else letter.recipient
        kinds[letter.request_id][(letter.purpose, to)] += 1
    for rid, got in kinds.items():
        want = Counter({(purpose, "subject"): n for purpose, n in LETTERS.items()})
        if got != want:
            found.append(f"{rid}: {dict(got)}, expected {dict(want)}")
    delivered = Counter(letter.message_id for letter in o.mailbox)
    recorded = Counter(letter.message_id for letter in o.recorded)
    for message_id in sorted(set(delivered) | set(recorded)):
        if delivered[message_id] != 1 or recorded[message_id] != 1:
            found.append(f"{message_id}: delivered {delivered[message_id]}x, recorded {recorded[message_id]}x")


def _effects(o: Outcome, found: dict[str, list[str]]) -> None:
    """Every system's erasure once (one task, first attempt, done), every record it erased in the
    ledger once and by one request only, the OpenDSR processor asked once, and no demo system
    still linking a row to the subject."""
    for rid in o.subjects:
        tasks = o.tasks.get(rid, {})
        if sorted(tasks) != sorted(SYSTEMS) or any(t["status"] not in TASK_ENDS or t["attempt"] != 1
                                                   for t in tasks.values()):
            found["tasks"].append(f"{rid}: {tasks}")
        if o.processor_seen[rid] != 1:
            found["processor"].append(f"{rid}: the OpenDSR service completed {o.processor_seen[rid]} erasures for it")
    per_record = Counter(o.ledger)
    across = Counter((system, dataset, key) for _, system, dataset, key in per_record)
    found["ledger"] += [f"{entry}: ledgered {n} times" for entry, n in per_record.items() if n > 1]
    found["ledger"] += [f"{entry}: erased by {n} requests" for entry, n in across.items() if n > 1]
    ledgered = Counter((rid, system) for rid, system, _, _ in o.ledger)
    for rid, tasks in o.tasks.items():
        for system, task in tasks.items():
            if system != OPENDSR and ledgered[(rid, system)] != task["erased"]:
                found["ledger"].append(f"{rid} {system}: erased {task['erased']}, ledgered {ledgered[(rid, system)]}")
    for address, n in sorted(o.held_after.items()):
        if n:
            found["residue"].append(f"{address}: {n} demo rows still linked")


def coverage(o: Outcome) -> dict[str, Any]:
    """How much the checks had to look at: a check over nothing would pass whatever happened."""
    return {
        "requests": len(o.subjects),
        "letters_delivered": len(o.mailbox),
        "ledger_entries": len(o.ledger),
        "audit_events": sum(len(e) for e in o.events.values()),
        "demo_rows_linked_before": sum(o.held_before[a] for a in o.subjects.values()),
        "subjects_held_nowhere_before": sum(1 for a in o.subjects.values() if not o.held_before[a]),
        "worker_tasks": {worker: dict(done) for worker, done in o.worker_tasks.items()},
    }
