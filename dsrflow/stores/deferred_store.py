"""What staff can do about an erasure a hold deferred (migrations/0005, 0032, 0033, 0040): see where each
system's stands, and, when a processor asked once the hold ended did not carry it out
(activities/deferred_processors.py), ask it again or record that it was done by other means.

These act on closed requests, long after their workflows finished, so they are Postgres writes
like staff's team work (dsrflow/stores/team_store.py), each in one transaction with its audit
event. The sweep (activities/deferred.py) reads the rows again on its next run: a retried row is
one more to ask, a settled row is done."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Literal, get_args

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from dsrflow.domain.audit import append_event, lock_chain
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.writes import Write
from dsrflow.stores.team_store import TeamRefused, insert_note
from schemas.staff_answers import STALE_ANSWER

# Where a system's deferred erasure stands as staff answer it (`standing`), in the order that
# decides it: a failure while any record failed (one to read before answering), else asked, else
# held (kept still, or asked again and not yet sent), else erased or settled, else called off
# (its request closed unanswered: `call_off_deferred`).
DeferredState = Literal["failed", "asked", "held", "erased", "settled", "called_off"]
_STANDING: tuple[DeferredState, ...] = get_args(DeferredState)


def standing(states: Iterable[str]) -> DeferredState:
    present = set(states)
    return next(state for state in _STANDING if state in present)


# The start of the key of a deferred erasure's staff alert: no other staff alert's starts so
# (theirs are `<kind>:...`).
_ALERT = "deferred-"


def alert_key(system: str, attempt: int, failure: int = 1) -> str:
    """The key of the staff alert that a system did not erase what a hold deferred
    (activities/deferred_processors.py), one per failure on record: the `failure`-th of the
    request's rows in that system at that `attempt` (rows whose statutory periods end years
    apart fail apart); `is_alert_key` knows it again. The first keeps the key it had when there
    was one alert per attempt."""
    return f"{_ALERT}{system}" + (f"-{attempt}" if attempt > 1 else "") + (f"-f{failure}" if failure > 1 else "")


def is_alert_key(key: str) -> bool:
    """Whether a staff alert's key is `alert_key`'s (api/read_models/staff_reach.py: the alert is
    read by who reads deferred erasures)."""
    return key.startswith(_ALERT) and ":" not in key


class Shown(BaseModel):
    """What a member of staff read of a system's deferred erasure, which their retry or settlement
    answers (`attempt` and `state` of `deferred_erasures`): both named only the system, so a
    "Record as erased" typed while a colleague asked the processor again settled the new job, and
    a second "Ask again" after the retry failed again asked a third time. Compared under the rows'
    lock; a field left out (a REST call from before) is not. The REST bodies are made from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    attempt: int | None = Field(None, ge=1, le=2**31 - 1, examples=[1], description=(
        "the system's `attempt` as `GET .../deferred-erasures` listed it (send it): once the processor "
        "has been asked again since, 409 and nothing is done"))
    state: DeferredState | None = Field(None, examples=["failed"], description=(
        "the system's `state` as listed (send it): once it stands otherwise (a failure since, a "
        "confirmation, a colleague's answer), 409 and nothing is done"))


class DeferredRefused(ValueError):
    """The action does not apply to the system's deferred erasure as it stands (`status`: the
    HTTP status that says so)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DeferredStale(DeferredRefused):
    """The answer was sent for the erasure as it stood before (`was`), and it stands otherwise now
    (`now`): a page gone stale, a double press, a colleague's answer meanwhile."""

    def __init__(self, system: str, was: str, now: str, failure: str | None = None) -> None:
        self.was, self.now, self.failure = was, now, failure
        super().__init__(409, self.words(system))

    def words(self, name: str, said: Callable[[str], str] = str) -> str:
        """The refusal, naming the system as `name` (the console: by its label). `said`: our own
        words as the request's law says them (the console's `in_law_words`: "deletion" under the
        CCPA), never the name nor the processor's failure, which are not ours to reword."""
        failure = f" ({self.failure})" if self.failure else ""
        return (name + said(f"'s deferred erasure this was sent for ({self.was}) has been answered or has changed "
                            f"since, and stands now at {self.now}") + failure + f": {STALE_ANSWER}")


# Each row's state, as staff read it: the sweep's view of the row (activities/deferred.py).
_STATE = """CASE WHEN done_at IS NOT NULL AND settled_by IS NOT NULL THEN 'settled'
                 WHEN done_at IS NOT NULL THEN 'erased'
                 WHEN failed_at IS NOT NULL THEN 'failed'
                 WHEN submitted_at IS NOT NULL THEN 'asked'
                 WHEN called_off_at IS NOT NULL THEN 'called_off'
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
    points at another database since has other rows under the same keys). A record whose erasure
    was called off (its request closed unanswered: `call_off_deferred`) is kept by no hold: it is
    the subject's like any other, found by their identities, and a correction changes it."""
    name, version = system or (None, None)
    rows = await pool.fetch(
        """SELECT d.system, d.dataset, array_agg(d.record_key) AS keys FROM deferred_erasures d
           LEFT JOIN policy_versions kept ON kept.version = d.policy_version
           LEFT JOIN policy_versions current ON current.version = $3
           WHERE d.done_at IS NULL AND d.called_off_at IS NULL AND ($1::text IS NULL OR d.subject_hash = $1)
             AND ($2::text IS NULL OR (d.system = $2 AND kept.content->'systems'->d.system->'config'
                                       IS NOT DISTINCT FROM current.content->'systems'->d.system->'config'))
           GROUP BY d.system, d.dataset""", subject_hash, name, version)
    return {f"{r['system']}.{r['dataset']}": list(r["keys"]) for r in rows}


async def deferred_erasures(pool: asyncpg.Pool, request_id: str) -> list[dict[str, Any]]:
    """Per system, the records a hold deferred and where they stand: `states` counts them
    (held: the hold or its date not yet over; asked: a processor asked, its answer awaited;
    failed: it did not erase, `failure` says why; erased; settled: recorded by staff; called_off,
    `unrestricted` of them no longer restricted), whether the system is ours (`own_system`: the
    sweep erases there, no processor is asked), and
    `actions` are what staff may do now (`retry` also for a retry recorded whose sweep never
    started: see `retry_deferred`)."""
    rows = await pool.fetch(
        f"""SELECT system, {_STATE} AS state, count(*) AS records, max(attempt) AS attempt,
                   min(failure) AS failure, array_agg(DISTINCT hold_ref ORDER BY hold_ref) AS holds,
                   max(settled_by) AS settled_by, bool_or({_RETRY_UNASKED}) AS unasked_retry,
                   count(unrestricted_at) AS unrestricted, bool_or(dataset = 'all') AS kept_whole,
                   bool_and(p.content->'systems'->d.system->>'connector' = 'sql') AS own_system
              FROM deferred_erasures d LEFT JOIN policy_versions p ON p.version = d.policy_version
             WHERE request_id = $1
             GROUP BY system, state ORDER BY system, state""",
        request_id)
    systems: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = systems.setdefault(row["system"], {"system": row["system"], "states": {}, "attempt": 1,
                                                   "failure": None, "holds": [], "settled_by": None,
                                                   "unasked_retry": False, "unrestricted": 0,
                                                   "kept_whole": False})
        entry["states"][row["state"]] = row["records"]
        entry["attempt"] = max(entry["attempt"], row["attempt"])
        entry["holds"] = sorted({*entry["holds"], *row["holds"]})
        entry["failure"] = entry["failure"] or row["failure"]
        entry["settled_by"] = entry["settled_by"] or row["settled_by"]
        entry["unasked_retry"] |= row["unasked_retry"]
        # Called off, their restriction lifted once the hold was released (activities/called_off_marks.py).
        entry["unrestricted"] += row["unrestricted"]
        entry["kept_whole"] |= row["kept_whole"]  # a processor's: no restriction mark of ours
        # Ours (sql): asking again asks nobody, the sweep erases again; the panel says so.
        entry["own_system"] = bool(row["own_system"])
    for entry in systems.values():
        states, unasked_retry = entry["states"], entry.pop("unasked_retry")
        # A retry whose sweep never started (see retry_deferred) is offered again: pressing it starts it.
        entry["actions"] = (["retry"] if "failed" in states or unasked_retry else []) + (
            ["settle"] if "failed" in states or "asked" in states else [])
        entry["state"] = standing(states)  # with `attempt`, what an answer sends back (`Shown`)
    return list(systems.values())


async def settling_notes(pool: asyncpg.Pool, request_id: str) -> set[str]:
    """The ids of the internal notes that settled one of the request's deferred erasures
    (`settle_deferred`): written on the deferred-erasure panel, whose readers are compliance's,
    they say how an erasure a hold kept was carried out once the hold ended. The note and its
    link are written in one transaction: read the notes first, then these."""
    rows = await pool.fetch("SELECT DISTINCT settled_note::text AS id FROM deferred_erasures "
                            "WHERE request_id = $1 AND settled_note IS NOT NULL", request_id)
    return {row["id"] for row in rows}


async def _locked_rows(conn: asyncpg.Connection, request_id: str, system: str,
                       shown: Shown | None) -> list[asyncpg.Record]:
    """The system's rows with their state, locked; refused when there are none, or when they no
    longer stand as `shown`."""
    rows = await conn.fetch(
        f"SELECT id, subject_hash, attempt, failure, {_STATE} AS state, {_RETRY_UNASKED} AS unasked_retry "
        "FROM deferred_erasures d WHERE request_id = $1 AND system = $2 ORDER BY id FOR UPDATE", request_id, system)
    if not rows:
        raise DeferredRefused(404, f"no erasure in {system} was deferred by a hold for this request")
    attempt, state = max(row["attempt"] for row in rows), standing(row["state"] for row in rows)
    said = shown or Shown()
    if said.attempt not in (None, attempt) or said.state not in (None, state):
        failure = next((row["failure"] for row in rows if row["state"] == "failed" and row["failure"]), None)
        raise DeferredStale(system, _shown_words(said.attempt, said.state), _shown_words(attempt, state), failure)
    return list(rows)


def _shown_words(attempt: int | None, state: str | None) -> str:
    return ", ".join([*([f"attempt {attempt}"] if attempt is not None else []), *([state] if state else [])])


def _chosen(rows: list[asyncpg.Record], system: str, states: tuple[str, ...], action: str) -> list[asyncpg.Record]:
    """The rows in one of `states`; refused with what the rows are instead."""
    chosen = [row for row in rows if row["state"] in states]
    if not chosen:
        now = sorted({row["state"] for row in rows})
        raise DeferredRefused(409, f"{action} applies to a deferred erasure that {' or '.join(states)}; "
                                   f"{system}'s is {', '.join(now)}")
    return chosen


async def retry_deferred(pool: asyncpg.Pool, request_id: str, system: str, *, actor: str,
                         shown: Shown | None = None) -> tuple[str, int]:
    """Ask the processor again: a new job (the next attempt), its answer awaited for the
    system's `completion_timeout_days` from now (a system the sweep cannot reach, as long from
    the first run that could not reach it); in our own system, the sweep erases again. Returns the subject's hash, for the sweep
    that asks it, and the attempt.

    A repeat while the last retry waits to be asked (its sweep never started: the API died
    after recording it, or the workflow engine was away) records nothing and returns that
    retry's attempt, so the caller starts its sweep, one per attempt. Before, the repeat was
    refused (the rows read as held) and nothing asked the processor until the next day's sweep.
    `shown`: the erasure as the caller read it; standing otherwise now, it is refused (`DeferredStale`)."""
    async with pool.acquire() as conn, conn.transaction():
        await lock_chain(conn, request_id)  # before the rows, as the sweep recording them takes them
        rows = await _locked_rows(conn, request_id, system, shown)
        unasked = [row for row in rows if row["unasked_retry"]]
        if unasked and not any(row["state"] == "failed" for row in rows):
            return str(unasked[0]["subject_hash"]), max(row["attempt"] for row in unasked)
        rows = _chosen(rows, system, ("failed",), "asking again")
        attempt = max(row["attempt"] for row in rows) + 1
        # Our own system (sql, as the rows' policy version has it): nobody is asked, the sweep erases
        # again; the trail says so (api/read_models/event_lines.py), where it said a processor was asked.
        own = await conn.fetchval(
            "SELECT bool_and(p.content->'systems'->d.system->>'connector' = 'sql') FROM deferred_erasures d "
            "JOIN policy_versions p ON p.version = d.policy_version WHERE d.id = ANY($1::bigint[])",
            [row["id"] for row in rows])
        await conn.execute(
            """UPDATE deferred_erasures SET failed_at = NULL, failure = NULL, external_id = NULL,
                      submitted_at = NULL, unreached_since = NULL, attempt = $2, retried_at = now()
                WHERE id = ANY($1::bigint[])""", [row["id"] for row in rows], attempt)
        await append_event(conn, event_key=f"{request_id}:deferred:{system}:retried:{attempt}",
                           request_id=request_id, event_type="erasure.deferred_retried", actor=actor,
                           data={"system": system, "attempt": attempt, **({"own_system": True} if own else {})})
    return str(rows[0]["subject_hash"]), attempt


async def settle_deferred(pool: asyncpg.Pool, request_id: str, system: str, note: str, *, actor: str,
                          shown: Shown | None = None) -> str:
    """Record the erasure as carried out by other means (the processor confirmed by phone, say),
    with an internal note saying how: the note is part of the evidence. Returns the note's id.
    `shown`: as `retry_deferred`'s."""
    async with pool.acquire() as conn, conn.transaction():
        await lock_chain(conn, request_id)  # before the rows, as the sweep recording them takes them
        rows = _chosen(await _locked_rows(conn, request_id, system, shown), system, ("failed", "asked"),
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


# A legal-claims hold's deferred erasure not yet begun (never asked, failed, asked again or done)
# of a request closed unanswered (withdrawn, cancelled, denied): `call_off_deferred`'s.
_CALLABLE_OFF = """d.hold_kind = 'legal_claims' AND d.called_off_at IS NULL AND d.done_at IS NULL
    AND d.failed_at IS NULL AND d.submitted_at IS NULL AND d.retried_at IS NULL
    AND EXISTS (SELECT FROM dsr_requests r WHERE r.id = d.request_id AND r.closed_at IS NOT NULL
                                              AND r.status <> 'completed')"""


async def call_off_deferred(conn: asyncpg.Connection, request_id: str, *, actor: str) -> dict[str, int]:
    """Call off what a legal-claims hold kept from the erasure of a request closed unanswered:
    the subject no longer asks for it, so the hold's release erases nothing of theirs (docs/holds.md
    "A request closed unanswered"). The rows stay, marked, with one `erasure.deferred_called_off`
    event in the statement that marks them: a process killed before it leaves them due, for the
    close's retry or the sweep (`requests_to_call_off`) to call off. What a statute kept is not
    called off: minimised already, it is kept for that obligation only, and its end is the end of
    those records, which nothing else could erase (they no longer carry the subject's identities).
    Returns the records called off per system (none: nothing left to call off)."""
    found = f"SELECT id, system FROM deferred_erasures d WHERE d.request_id = $1 AND {_CALLABLE_OFF} ORDER BY id"
    if not await conn.fetch(found, request_id):  # most closes: nothing kept, no lock taken
        return {}
    async with conn.transaction():
        await lock_chain(conn, request_id)  # before the rows, as every step recording them takes them
        rows = await conn.fetch(found + " FOR UPDATE", request_id)
        if not rows:
            return {}
        systems = dict(sorted(Counter(row["system"] for row in rows).items()))
        ids = [row["id"] for row in rows]
        failpoint("deferred-called-off", request_id)  # found, and neither marked nor recorded
        await append_event(conn, event_key=f"{request_id}:deferred:called_off:{ids[0]}", request_id=request_id,
                           event_type="erasure.deferred_called_off", actor=actor, data={"systems": systems},
                           along=[Write("UPDATE deferred_erasures SET called_off_at = now() WHERE id = ANY($1::bigint[])",
                                        (ids,))])
    return systems


async def requests_to_call_off(pool: asyncpg.Pool, subject_hash: str | None = None) -> list[str]:
    """The requests with a deferred erasure `call_off_deferred` would call off (a subject's, or
    every one): closed without the call (a worker killed after the close, a try that kept records
    after it), for the sweep to call off before it erases anything."""
    rows = await pool.fetch(f"SELECT DISTINCT d.request_id FROM deferred_erasures d WHERE {_CALLABLE_OFF} "
                            "AND ($1::text IS NULL OR d.subject_hash = $1)", subject_hash)
    return [str(row["request_id"]) for row in rows]
