"""The evidence pack of one request: everything compliance needs to show how it was handled,
read from Postgres (a read model: nothing here changes anything).

Request (a complaint's reasons as the subject wrote them), identity verification (times and
method; codes and link tokens never exist outside the e-mail, and stored letters show them
withheld), deadlines and the extension, the plan under its policy version, each system's result, what holds kept, the letters sent, the package, and the
request's audit chain with the result of checking it and the anchor that covers it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import asyncpg

# The response letter's own reading of a kept record's basis, and of an erasure a hold cut short,
# so the pack states what the letter did.
from activities.letter_labels import kind_word
from activities.letter_outcome import _kept_texts as kept_texts
from activities.recipients_told import ART19_ACTIONS, acted_on_nothing, cut_short, untold_because
from api.read_models.evidence_deadlines import (
    complaint_progress_days,
    complaint_target,
    deadlines,
    kept_informed,
    policy_defaults,
)
from api.read_models.evidence_decisions import decisions
from api.read_models.evidence_names import WHOLE_SYSTEM, Labels, labels, planned_policy, version_policy
from api.read_models.evidence_results import with_contents, with_history
from api.read_models.inbox_queries import evidence_messages
from dsrflow.crypto.hashing import subject_hash
from dsrflow.domain.audit_verify import verify_request_chain
from dsrflow.i18n import ENGLISH
from dsrflow.stores.requests_store import get_request
from policy.model import Policy
from schemas.dataset_split import SPLIT_ACTIONS
from schemas.requests import without_complaint_reasons
from schemas.workflow import TaskResult, records_left
from workflows.complaint_progress import PURPOSE as PROGRESS
from workflows.complaint_progress import TOLD_BY_HAND

_VERIFICATION_EVENTS = ("verification.succeeded", "verification.failed", "verification.locked",
                        "verification.resent", "status.closed_unverified")


def _request(row: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    opened = next((e for e in events if e["event_type"] == "request.created"), None)
    return {
        "id": str(row["id"]), "type": row["request_type"], "regime": row["regime"],
        # The type as a person reads it, in the words of its law ("deletion" under the CCPA); `type` keeps the code.
        "type_words": kind_word(row["request_type"], row["regime"]),
        "country": row["country"], "language": row["language"], "channel": row["channel"],
        "origin": row["origin"],
        # Who recorded it (a phone call, a letter, an e-mail converted): the page named "staff" only.
        "opened_by": opened["actor"] if opened else None,
        "status": row["status"], "details": without_complaint_reasons(row["details"]),
        # A complaint's reasons (UK GDPR, DPA 2018 s. 164A), as the subject wrote them: apart from
        # the details, which the console shows every role (api/console/request_context.py).
        "complaint_reasons": (row["details"] or {}).get("complaint_reasons"),
        "policy_version": row["policy_version"],
        "subject": {"email": row["subject_email"], "name": row["subject_name"],
                    "customer_id": row["customer_id"]},
        "received_at": row["received_at"], "created_at": row["created_at"], "closed_at": row["closed_at"],
    }


def _verification(row: dict[str, Any], events: list[dict[str, Any]],
                  letters: list[dict[str, Any]]) -> dict[str, Any]:
    succeeded = next((e for e in events if e["event_type"] == "verification.succeeded"), None)
    return {
        "required": row["attested_by"] is None,
        "attested_by": row["attested_by"],
        "method": "attested" if row["attested_by"] else (succeeded["data"].get("method") if succeeded else None),
        "verified_at": row["verified_at"],
        "codes_sent": [{"purpose": letter["purpose"], "sent_at": letter["sent_at"]}
                       for letter in letters if letter["purpose"] in ("verification", "reminder")],
        # `refuses` ("codes": a lock that left the latest e-mail's link working), `after_lock`
        # (confirmed by that link after it), `earlier_link` and `earlier_code` (an earlier e-mail's
        # link or code, refused and not counted), as the trail has them: the page said "locked" and
        # then "verified" with nothing to say how, and an old link's press read as a wrong attempt.
        "attempts": [{"at": e["occurred_at"], "event": e["event_type"], "actor": e["actor"],
                      "method": e["data"].get("method"), "attempts_left": e["data"].get("attempts_left"),
                      "refuses": e["data"].get("refuses"), "after_lock": bool(e["data"].get("after_lock")),
                      "earlier_link": bool(e["data"].get("earlier_link")),
                      "earlier_code": bool(e["data"].get("earlier_code"))}
                     for e in events if e["event_type"] in _VERIFICATION_EVENTS],
    }


def _by_hand(letters: list[dict[str, Any]], events: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    """Each letter with `by_hand`: who sent it from the console or the API, when, and the note it
    quotes (a UK complaint's progress letter staff sent: workflows/complaint_progress.py, keyed
    `<request>:complaint_progress:<letter>`); None for the workflow's own. The pack listed such a
    letter as any other, and only its audit line named who wrote it."""
    told = {f"{request_id}:{PROGRESS}:{e['data'].get('letter')}": e for e in events if e["event_type"] == TOLD_BY_HAND}
    return [{**letter, "by_hand": None if (e := told.get(letter["letter_key"])) is None else
             {"by": e["actor"], "at": e["occurred_at"], "note": e["data"].get("note")}} for letter in letters]


def _as_told(kept: dict[str, Any], policy: Policy | None, regime: str) -> dict[str, str | None]:
    """A kept record's basis and law as its response letter stated them, in the request's law
    (activities/letter_outcome.py, in English): the record keeps them as the policy words them,
    citing the GDPR, so a UK GDPR or VCDPA erasure's pack gave "Art. 17(3)(b) GDPR" beside a letter
    that gave the UK GDPR's article, or none. A legal-claims hold's law is None: the letter names
    no law for it (a claim is none). A version no longer readable: as recorded, but for that."""
    if policy is None:
        return {"basis": kept["basis"], "law": None if kept["hold_kind"] == "legal_claims" else kept["law"]}
    basis, law = kept_texts(kept, policy, policy, ENGLISH, regime)
    return {"basis": basis, "law": law}


def uncorrected_systems(tasks: list[dict[str, Any]]) -> dict[str, int]:
    """Per system, the records a correction left as an earlier erasure kept them (the connectors'
    per-dataset `left`), which the response letter names as not corrected."""
    left = {task["system"]: records_left(task["action"], task["datasets"]) for task in tasks}
    return {system: n for system, n in left.items() if n}


def _result(task: dict[str, Any]) -> TaskResult:
    return TaskResult.model_validate({name: task[name] for name in (
        "system", "action", "status", "found", "changed", "kept", "datasets", "kept_records")})


def recipients_told(plan: dict[str, Any] | None, tasks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The Art. 19 recipients the response letter names as told, by the letter's own rule
    (activities/letter_outcome.py `response_outcome`), and those it does not name, and why: the
    system held nothing of the subject, its task not done, a processor kept whole under a hold (asked
    nothing), a correction or restriction that acted on nothing there ("nothing to restrict", every
    record left as an erasure kept it).
    The pack's Plan named every planned recipient, as if each had been told."""
    recipient_of = {(t["system"], t["action"]): t.get("recipient") for t in (plan or {}).get("tasks", [])}
    connectors = connectors_of(plan)
    told: dict[str, list[dict[str, Any]]] = {"told": [], "not_told": []}
    for task in tasks:
        recipient = recipient_of.get((task["system"], task["action"]))
        if not recipient or task["action"] not in ART19_ACTIONS:
            continue
        why = untold_because(_result(task), connectors.get(task["system"]))  # the letter's rule, with its reason
        entry = {"system": task["system"], "action": task["action"], "recipient": recipient}
        told["not_told" if why else "told"].append({**entry, "why": why} if why else entry)
    return told


def connectors_of(plan: dict[str, Any] | None) -> dict[str, str]:
    """Each planned system's connector (the letter's rule asks it: `acted_on_nothing`)."""
    return {t["system"]: t["connector"] for t in (plan or {}).get("tasks", []) if t.get("connector")}


def restricted_nothing_in(plan: dict[str, Any] | None, tasks: list[dict[str, Any]]) -> list[str]:
    """The systems a restriction reached (its task done, so the record names them) and restricted
    nothing in: their lookup read the subject's records and no step set them ("nothing to
    restrict", as the response letter says). The pack said the restriction was in force there."""
    connectors = connectors_of(plan)
    return sorted(t["system"] for t in tasks if t["action"] == "restrict" and t["status"] == "done"
                  and acted_on_nothing(_result(t), connectors.get(t["system"])))


def cut_short_systems(tasks: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per system, an erasure a legal-claims hold cut short, as the response letter reads it from
    the task (activities/recipients_told.py `cut_short`): its "all" record, and the erasure deferred
    until the hold ends, keep the data under the identifiers not sent, not all the system holds.
    The pack said "all the data it holds, kept whole" beside a letter that said part was erased;
    the console's request page reads it too (its Systems and deferred-erasure tables)."""
    found = {}
    for task in tasks:
        if (short := cut_short(_result(task))) is not None:
            found[task["system"]] = asdict(short)
    return found


async def request_cut_short(pool: asyncpg.Pool, request_id: str) -> dict[str, dict[str, int]]:
    """`cut_short_systems` of one request's tasks, for a reader without its evidence pack: the REST
    listing of deferred erasures (api/rest/deferred_erasures.py), which said only "held: 1"."""
    tasks = [dict(r) for r in await pool.fetch(
        """SELECT system, action, status, found, changed, kept, datasets, kept_records
             FROM system_tasks WHERE request_id = $1""", request_id)]
    return cut_short_systems(tasks)


async def _holds(conn: asyncpg.Connection, row: dict[str, Any], secret: bytes,
                 tasks: list[dict[str, Any]]) -> dict[str, Any]:
    deferred = await conn.fetch(
        """SELECT system, dataset, hold_kind, hold_ref, erase_after, count(*) AS records,
                  count(done_at) AS erased_since, max(done_at) AS last_erased_at,
                  -- a processor asked to erase once the hold ended: confirmed (erased_since),
                  -- still awaited, or failed and why (activities/deferred_processors.py)
                  count(*) FILTER (WHERE submitted_at IS NOT NULL AND done_at IS NULL
                                     AND failed_at IS NULL) AS awaiting_processor,
                  min(failure) FILTER (WHERE failed_at IS NOT NULL) AS failure,
                  -- asked again by compliance (attempt 2 on), or recorded by them as erased by
                  -- other means, with the internal note that says how (dsrflow/stores/deferred_store.py)
                  max(attempt) AS attempts,
                  count(*) FILTER (WHERE settled_by IS NOT NULL) AS settled_by_staff,
                  min(settled_by) AS settled_by, min(settled_note::text) AS settled_note,
                  -- called off by the request's close unanswered (dsrflow/stores/deferred_store.py
                  -- `call_off_deferred`): not to be erased when the hold ends
                  count(*) FILTER (WHERE called_off_at IS NOT NULL AND done_at IS NULL) AS called_off,
                  min(called_off_at) AS called_off_at,
                  -- their restriction lifted once the hold was released (activities/called_off_marks.py)
                  count(unrestricted_at) AS unrestricted, max(unrestricted_at) AS unrestricted_at
             FROM deferred_erasures WHERE request_id = $1
            GROUP BY system, dataset, hold_kind, hold_ref, erase_after
            ORDER BY system, dataset""",
        row["id"],
    )
    # A legal-claims hold acts on erasures only (Art. 17(3)(e): activities/fanout.py): on any other
    # request it kept nothing, and the pack, which goes to auditors, named the subject's other legal
    # matters all the same (a hold's reason: "dispute over a support contract, claim 2026/17").
    legal = [] if row["request_type"] != "erasure" else await conn.fetch(
        """SELECT id, systems, categories, basis, reason, review_date, placed_by, placed_at,
                  released_by, released_at, release_reason
             FROM legal_holds
            WHERE subject_hash = $1 AND placed_at <= coalesce($2, now())
              AND (released_at IS NULL OR released_at >= $3)
            ORDER BY placed_at""",
        subject_hash(secret, row["subject_email"]), row["closed_at"], row["received_at"],
    )
    # The basis and law of each kept record in the request's law, as its response letter gave them.
    loaded = await version_policy(conn, row["policy_version"])
    short = cut_short_systems(tasks)

    def cut(system: str, dataset: str) -> dict[str, int] | None:
        return short.get(system) if dataset == WHOLE_SYSTEM else None

    def own(system: str, dataset: str) -> bool:  # a system the version no longer names: kept whole is a processor's
        named = None if loaded is None else loaded.policy.systems.get(system)
        return named.connector == "sql" if named is not None else dataset != WHOLE_SYSTEM

    # A kept record whose erasure was called off (every row of it): its "until" is no longer the
    # hold's release, which erases nothing of it now.
    called_off = {(r["system"], r["dataset"], r["hold_ref"]): r["called_off_at"] for r in deferred
                  if r["called_off"] and r["called_off"] == r["records"]}
    return {
        "kept_records": [{**kept, "as_told": _as_told(kept, None if loaded is None else loaded.policy, row["regime"]),
                          "cut_short": cut(kept["system"], kept["dataset"]),
                          "called_off_at": called_off.get((kept["system"], kept["dataset"], kept.get("hold_ref")))}
                         for task in tasks for kept in task["kept_records"]],
        # `own_system`: ours (sql), where the sweep erases; no processor was asked or failed there.
        "deferred_erasures": [{**dict(r), "cut_short": cut(r["system"], r["dataset"]),
                               "own_system": own(r["system"], r["dataset"])} for r in deferred],
        "legal_claims_holds": [{**dict(r), "id": str(r["id"])} for r in legal],
    }


async def _labels(conn: asyncpg.Connection, row: dict[str, Any], plan: dict[str, Any] | None,
                  tasks: list[dict[str, Any]], confirmations: list[dict[str, Any]], holds: dict[str, Any],
                  packages: list[dict[str, Any]], decided: dict[str, Any]) -> Labels:
    """The labels of every system, dataset, statutory hold and category the pack names, from the
    policy version its plan ran under (else the request's)."""
    tasks_planned = (plan or {}).get("tasks", [])
    kept = [*holds["kept_records"], *holds["deferred_erasures"]]
    legal = holds["legal_claims_holds"]
    restriction = decided["restriction"] or {}
    systems = {*(t["system"] for t in [*tasks, *confirmations, *kept]),
               *(s for hold in legal for s in hold["systems"] or []),
               *(restriction.get("systems") or []), *(restriction.get("lifted_in") or []),
               *(k["system"] for k in restriction.get("kept_from_erasure", []) if k["system"]),
               *(s for p in packages for part in ("systems", "processor_files", "missing") for s in p[part])}
    version = (plan or {}).get("policy_version") or row["policy_version"]
    return labels(await planned_policy(conn, version), tasks_planned, systems=systems,
                  datasets={*((k["system"], k["dataset"]) for k in [*kept, *restriction.get("kept_from_erasure", [])]
                              if k["dataset"]),
                            # Named beside a task's Changed count as its letter named them (`split_words`).
                            *((t["system"], d) for t in tasks if t["action"] in SPLIT_ACTIONS
                              for d in t["datasets"] or {})},
                  statutes={k["hold_ref"] for k in kept if k["hold_kind"] == "statutory" and k.get("hold_ref")},
                  categories={c for hold in legal for c in hold["categories"] or []})


async def assemble_evidence(pool: asyncpg.Pool, request_id: str, *, secret: bytes) -> dict[str, Any] | None:
    """The evidence pack as plain data (JSON-ready with FastAPI's encoder); None if no request."""
    async with pool.acquire() as conn:
        row = await get_request(conn, request_id)
        if row is None:
            return None
        audit = await verify_request_chain(conn, request_id)
        events, chain = audit.events, audit.report
        letters = [dict(r) for r in await conn.fetch(
            """SELECT letter_key, purpose, recipient, subject, message_id, sent_at, body_text, body_html
                 FROM sent_letters WHERE request_id = $1 ORDER BY sent_at, letter_key""", request_id)]
        plan = await conn.fetchrow("SELECT plan, created_at FROM request_plans WHERE request_id = $1", request_id)
        tasks = [dict(r) for r in await conn.fetch(
            """SELECT system, action, status, found, changed, kept, datasets, message, attempt,
                      updated_at, kept_records, partial_changed, partial_unsure
                 FROM system_tasks WHERE request_id = $1 ORDER BY system, action""", request_id)]
        confirmations = [dict(r) for r in await conn.fetch(
            """SELECT system, action, sent_at, reminders, confirmed_at
                 FROM manual_tasks WHERE request_id = $1 ORDER BY system""", request_id)]
        packages = [dict(r) for r in await conn.fetch(
            """SELECT kind, records, size_bytes, created_at, expires_at, downloaded_at
                 FROM packages WHERE request_id = $1 ORDER BY created_at""", request_id)]
        holds = await _holds(conn, row, secret, tasks)
        defaults = await policy_defaults(conn, row["policy_version"])
        target_days = await complaint_target(conn, row)
        progress_days = await complaint_progress_days(conn, row)
        built = with_contents(packages, events)
        decided = await decisions(conn, row, events, letters, defaults.timezone, kept=holds["kept_records"],
                                  missing=built[0]["missing"] if built else {}, uncorrected=uncorrected_systems(tasks))
        if decided["restriction"] is not None:
            decided["restriction"]["restricted_nothing_in"] = restricted_nothing_in(
                None if plan is None else plan["plan"], tasks)
        named = await _labels(conn, row, None if plan is None else plan["plan"], tasks, confirmations, holds,
                              built, decided)
        emails = await evidence_messages(conn, secret, request_id)
        # Staff's internal notes (never sent to the subject); each is an audit event with its sha256.
        notes = [{**dict(r), "id": str(r["id"])} for r in await conn.fetch(
            "SELECT id, author, body, created_at FROM request_notes WHERE request_id = $1 ORDER BY created_at, id",
            request_id)]
    sent = _by_hand(letters, events, request_id)
    return {
        "generated_at": datetime.now(UTC),
        "request": _request(row, events),
        "verification": _verification(row, events, letters),
        "deadlines": {**deadlines(row, events, letters, defaults, target_days),
                      "kept_informed": kept_informed(row, sent, progress_days)},
        "decisions": decided,
        "plan": None if plan is None else {**plan["plan"], "planned_at": plan["created_at"]},
        "results": with_history(tasks, events, row["regime"]),
        # Whom the response letter names as told of the erasure, correction or restriction (Art. 19).
        # None until the response letter went (a closing letter tells of what was done so far).
        "recipients_told": None if not any(letter["purpose"] == "response" for letter in letters)
        else recipients_told(None if plan is None else plan["plan"], tasks),
        "processor_confirmations": confirmations,
        "holds": holds,
        "packages": built,
        "letters": sent,
        # The subject's e-mails that opened the request or were attached to it (docs/mailbox.md).
        "emails": emails,
        "notes": notes,
        # What the policy calls each system, dataset, statutory hold and category the pack names by code.
        "labels": named.as_json(),
        "audit": {
            "events": events,
            "verification": {"ok": chain.ok, "events": chain.count, "broken_seq": chain.broken_seq,
                             "reason": chain.reason, "summary": chain.describe()},
            # The latest anchor naming each chain the request's events are in (usually one).
            "anchors": audit.anchors,
            "not_yet_anchored": chain.unanchored,
        },
    }


async def planned_recipients(pool: asyncpg.Pool, pack: dict[str, Any]) -> dict[str, Any]:
    """The Art. 19 recipients of the policy version the request was planned under (its pack's
    plan, else its own): a recipient named since in the policy is not who its tasks told."""
    version = (pack["plan"] or {}).get("policy_version") or pack["request"]["policy_version"]
    return await pool.fetchval("SELECT content->'recipients' FROM policy_versions WHERE version = $1", version) or {}
