"""What staff can do about an erasure a hold deferred (migrations/0005, 0032, 0033): see where each
system's stands, and, when a processor asked once the hold ended did not carry it out
(activities/deferred_processors.py), ask it again or record that it was done by other means.

These act on closed requests, long after their workflows finished, so they are Postgres writes
like staff's team work (dsrflow/stores/team_store.py), each in one transaction with its audit
event. The sweep (activities/deferred.py) reads the rows again on its next run: a retried row is
one more to ask, a settled row is done."""

from __future__ import annotations

from typing import Any

import asyncpg

from dsrflow.domain.audit import append_event
from dsrflow.stores.team_store import TeamRefused, insert_note


class DeferredRefused(ValueError):
    """The action does not apply to the system's deferred erasure as it stands (`status`: the
    HTTP status that says so)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# Each row's state, as staff read it: the sweep's view of the row (activities/deferred.py).
_STATE = """CASE WHEN done_at IS NOT NULL AND settled_by IS NOT NULL THEN 'settled'
                 WHEN done_at IS NOT NULL THEN 'erased'
                 WHEN failed_at IS NOT NULL THEN 'failed'
                 WHEN submitted_at IS NOT NULL THEN 'asked'
                 ELSE 'held' END"""


# A retried row of `deferred_erasures d` (one that failed: its hold had ended) that the sweep would
# ask now: its legal-claims hold still released and no hold in force over its system. One that
# waits so was left by a retry whose sweep never started (see `retry_deferred`); one that a hold
# keeps again waits for that hold, and asking again would change nothing.
_RETRY_UNASKED = f"""d.retried_at IS NOT NULL AND ({_STATE}) = 'held'
    AND (d.hold_kind <> 'legal_claims'
         OR EXISTS (SELECT FROM legal_holds h WHERE h.id::text = d.hold_ref AND h.released_at IS NOT NULL))
    AND NOT EXISTS (SELECT FROM legal_holds a WHERE a.subject_hash = d.subject_hash AND a.released_at IS NULL
                                                AND (a.systems IS NULL OR d.system = ANY(a.systems)))"""


async def kept_records(pool: asyncpg.Pool, *, subject_hash: str | None = None,
                       system: tuple[str, str] | None = None) -> dict[str, list[str]]:
    """The records a hold keeps since an erasure, not yet erased, as "system.dataset" -> keys:
    a subject's (they no longer carry its identities, but are still its data), or a system's,
    given as (its name, a policy version), for a correction to leave them as the law keeps them.
    A record key names a row of the system as configured when it was kept: only the records kept
    while the system's configuration was the one of that version count (a system the policy
    points at another database since has other rows under the same keys)."""
    name, version = system or (None, None)
    rows = await pool.fetch(
        """SELECT d.system, d.dataset, array_agg(d.record_key) AS keys FROM deferred_erasures d
           LEFT JOIN policy_versions kept ON kept.version = d.policy_version
           LEFT JOIN policy_versions current ON current.version = $3
           WHERE d.done_at IS NULL AND ($1::text IS NULL OR d.subject_hash = $1)
             AND ($2::text IS NULL OR (d.system = $2 AND kept.content->'systems'->d.system->'config'
                                       IS NOT DISTINCT FROM current.content->'systems'->d.system->'config'))
           GROUP BY d.system, d.dataset""", subject_hash, name, version)
    return {f"{r['system']}.{r['dataset']}": list(r["keys"]) for r in rows}


async def deferred_erasures(pool: asyncpg.Pool, request_id: str) -> list[dict[str, Any]]:
    """Per system, the records a hold deferred and where they stand: `states` counts them
    (held: the hold or its date not yet over; asked: a processor asked, its answer awaited;
    failed: it did not erase, `failure` says why; erased; settled: recorded by staff), and
    `actions` are what staff may do now (`retry` also for a retry recorded whose sweep never
    started: see `retry_deferred`)."""
    rows = await pool.fetch(
        f"""SELECT system, {_STATE} AS state, count(*) AS records, max(attempt) AS attempt,
                   min(failure) AS failure, array_agg(DISTINCT hold_ref ORDER BY hold_ref) AS holds,
                   max(settled_by) AS settled_by, bool_or({_RETRY_UNASKED}) AS unasked_retry
              FROM deferred_erasures d WHERE request_id = $1
             GROUP BY system, state ORDER BY system, state""",
        request_id)
    systems: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = systems.setdefault(row["system"], {"system": row["system"], "states": {}, "attempt": 1,
                                                   "failure": None, "holds": [], "settled_by": None,
                                                   "unasked_retry": False})
        entry["states"][row["state"]] = row["records"]
        entry["attempt"] = max(entry["attempt"], row["attempt"])
        entry["holds"] = sorted({*entry["holds"], *row["holds"]})
        entry["failure"] = entry["failure"] or row["failure"]
        entry["settled_by"] = entry["settled_by"] or row["settled_by"]
        entry["unasked_retry"] |= row["unasked_retry"]
    for entry in systems.values():
        states, unasked_retry = entry["states"], entry.pop("unasked_retry")
        # A retry whose sweep never started (see retry_deferred) is offered again: pressing it starts it.
        entry["actions"] = (["retry"] if "failed" in states or unasked_retry else []) + (
            ["settle"] if "failed" in states or "asked" in states else [])
    return list(systems.values())


async def settling_notes(pool: asyncpg.Pool, request_id: str) -> set[str]:
    """The ids of the internal notes that settled one of the request's deferred erasures
    (`settle_deferred`): written on the deferred-erasure panel, whose readers are compliance's,
    they say how an erasure a hold kept was carried out once the hold ended. The note and its
    link are written in one transaction: read the notes first, then these."""
    rows = await pool.fetch("SELECT DISTINCT settled_note::text AS id FROM deferred_erasures "
                            "WHERE request_id = $1 AND settled_note IS NOT NULL", request_id)
    return {row["id"] for row in rows}


async def _locked_rows(conn: asyncpg.Connection, request_id: str, system: str) -> list[asyncpg.Record]:
    """The system's rows with their state, locked; refused when there are none."""
    rows = await conn.fetch(
        f"SELECT id, subject_hash, attempt, {_STATE} AS state, {_RETRY_UNASKED} AS unasked_retry "
        "FROM deferred_erasures d WHERE request_id = $1 AND system = $2 ORDER BY id FOR UPDATE", request_id, system)
    if not rows:
        raise DeferredRefused(404, f"no erasure in {system} was deferred by a hold for this request")
    return list(rows)


def _chosen(rows: list[asyncpg.Record], system: str, states: tuple[str, ...], action: str) -> list[asyncpg.Record]:
    """The rows in one of `states`; refused with what the rows are instead."""
    chosen = [row for row in rows if row["state"] in states]
    if not chosen:
        now = sorted({row["state"] for row in rows})
        raise DeferredRefused(409, f"{action} applies to a deferred erasure that {' or '.join(states)}; "
                                   f"{system}'s is {', '.join(now)}")
    return chosen


async def retry_deferred(pool: asyncpg.Pool, request_id: str, system: str, *, actor: str) -> tuple[str, int]:
    """Ask the processor again: a new job (the next attempt), its answer awaited for the
    system's `completion_timeout_days` from now. Returns the subject's hash, for the sweep
    that asks it, and the attempt.

    A repeat while the last retry waits to be asked (its sweep never started: the API died
    after recording it, or the workflow engine was away) records nothing and returns that
    retry's attempt, so the caller starts its sweep, one per attempt. Before, the repeat was
    refused (the rows read as held) and nothing asked the processor until the next day's sweep."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await _locked_rows(conn, request_id, system)
        unasked = [row for row in rows if row["unasked_retry"]]
        if unasked and not any(row["state"] == "failed" for row in rows):
            return str(unasked[0]["subject_hash"]), max(row["attempt"] for row in unasked)
        rows = _chosen(rows, system, ("failed",), "asking again")
        attempt = max(row["attempt"] for row in rows) + 1
        await conn.execute(
            """UPDATE deferred_erasures SET failed_at = NULL, failure = NULL, external_id = NULL,
                      submitted_at = NULL, attempt = $2, retried_at = now()
                WHERE id = ANY($1::bigint[])""", [row["id"] for row in rows], attempt)
        await append_event(conn, event_key=f"{request_id}:deferred:{system}:retried:{attempt}",
                           request_id=request_id, event_type="erasure.deferred_retried", actor=actor,
                           data={"system": system, "attempt": attempt})
    return str(rows[0]["subject_hash"]), attempt


async def settle_deferred(pool: asyncpg.Pool, request_id: str, system: str, note: str, *, actor: str) -> str:
    """Record the erasure as carried out by other means (the processor confirmed by phone, say),
    with an internal note saying how: the note is part of the evidence. Returns the note's id."""
    async with pool.acquire() as conn, conn.transaction():
        rows = _chosen(await _locked_rows(conn, request_id, system), system, ("failed", "asked"),
                       "recording it as erased")
        try:
            note_id = await insert_note(conn, request_id, note, actor=actor)
        except TeamRefused as refused:
            raise DeferredRefused(422, str(refused)) from None
        await conn.execute(
            "UPDATE deferred_erasures SET done_at = now(), settled_by = $2, settled_note = $3 "
            "WHERE id = ANY($1::bigint[])", [row["id"] for row in rows], actor, note_id)
        await append_event(conn, event_key=f"{request_id}:deferred:{system}:settled:{note_id}", request_id=request_id,
                           event_type="erasure.deferred_settled", actor=actor,
                           data={"system": system, "note_id": note_id,
                                 "attempt": max(row["attempt"] for row in rows)})
    return note_id
