"""What one action of the `http` connector has done so far, item by item (migration 0036), so that
a run longer than one activity attempt finishes.

A subject with thousands of records at a SaaS (list memberships, customers), each a request under
the service's rate limit, outlasts an attempt's time. Each read of an item is kept with the records
it found, each change's request before it goes ("sending") and its answer after ("answered"). The
next attempt reads the run back: the same records, so the same items in the same order, and sends
only what has no answer. Near the end of its time slice an attempt that has done something stops by
itself (RunContinues) and the workflow starts the next at once (workflows/system_task.py), so a run
takes as many slices as its requests need, and a worker that dies costs only the slice in flight.

Exactly once in effect: a change whose request went out while its process died is sent again; a
`missing` answer to it (404: the first request deleted it) counts as its effect, once. The records
are personal data: sealed (AES-GCM, a key of their own, bound to the row), as the mailbox's are.

A result that ends the task (`ENDS_TASK`) takes its rows: the run's own (`done`, `not_found`), or
staff's when they resolve a task that needed them (their `done`, whether or not the run got to its
end: nothing runs the task again). A result needing staff (a delete the service refused, retries
run out) keeps them, and a staff retry (the task's next attempt) goes on from them: its counts are
the whole run's, each change sent once in effect. Once a result of its attempt or a later one ended
the task, an attempt still running (staff resolved the task while it ran, or while its next slice
was due) writes nothing more: its write checks and writes in one statement, holding a lock the
ending result takes exclusively before its own (`ending_lock`), so that the result takes every row
written before it and none is written after; the attempt then stops (`TaskEnded`), sending nothing
more, and its task's result on record stands. Only rows written under the same configuration
(`config`: a hash of the system's configuration as the environment completes it, base URL and ids)
are gone on from: records read from another base URL are not this one's.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from dsrflow.crypto.filecrypt import file_key
from dsrflow.crypto.hashing import keyed_hash
from dsrflow.domain.audit import append_event, lock_chain
from dsrflow.infra.writes import Write, columns
from dsrflow.settings import Settings
from dsrflow.stores.requests_store import partial_effect
from schemas.workflow import RUNS_AFTER_CLOSE

_PURPOSE = "dsrflow-http-run-journal"
_NONCE = 12
# Of an attempt's start-to-close time, what a slice may use: the rest is for the evidence and the
# result, written after the last request.
_SLICE_SHARE = 0.8
# Reads kept in one write: fewer round trips (each a commit) at the cost of reading these again.
_READS_TOGETHER = 50
# A run's journal that this worker cannot open: sealed under another secret (a worker started
# without the shared DSRFLOW_SECRET_KEY makes its own), or a row altered. Retried, since another
# worker may hold the right key; retries running out, staff read the cause.
JOURNAL_UNREADABLE = "HttpRunJournalUnreadable"
# Rows whose request is no longer open (closed, which takes them at once, or gone) that are still
# here after this long: written by an attempt still running when its request closed, before the
# guards in `flush` (0038 and, for a close in flight, 0039). An open request's rows stay however long its run pauses (a quota day, a
# Retry-After): its workflow, or staff resuming a stopped one, carries on from them.
_ABANDONED = "7 days"
# The statuses a task's result ends it with, and its journal: only a task needing staff runs again
# (a staff retry goes on from its journal) and a pending one carries on; a task staff resolve is
# `done` however far its run got, and no retry follows a resolution.
ENDS_TASK = frozenset({"done", "not_found"})


# A run's write (`Journal.flush`): its rows, unless `refusal` gives why not ($13 the run's action,
# $14 the statuses that end a task).
_WRITE = """WITH refusal AS (SELECT {refusal} AS why),
                 kept AS (
            INSERT INTO http_run_journal (request_id, system, run, attempt, config, step, item, state, status,
                                          counted, read_bytes, sealed)
            SELECT $1, $2, $3, $4, $12, * FROM unnest($5::text[], $6::text[], $7::text[], $8::int[],
                                                      $9::boolean[], $10::bigint[], $11::bytea[])
             WHERE (SELECT why FROM refusal) IS NULL
            ON CONFLICT (request_id, system, run, attempt, step, item) DO UPDATE SET
              state = EXCLUDED.state, status = EXCLUDED.status, counted = EXCLUDED.counted,
              read_bytes = EXCLUDED.read_bytes, sealed = EXCLUDED.sealed, config = EXCLUDED.config,
              stored_at = now())
            SELECT why FROM refusal"""
_REFUSAL = "http_run_journal_refusal($1, $2, $13, $4, $14::text[])"
# The function's 'ended' alone (`Journal._write_after_close`, which holds its lock first).
_ENDED_ONLY = """CASE WHEN EXISTS (SELECT 1 FROM system_tasks WHERE request_id = $1::uuid AND system = $2 AND action = $13
                                                    AND status = ANY ($14::text[]) AND attempt >= $4)
                     THEN 'ended' END"""


class RunContinues(Exception):
    """The slice's time is up, and this attempt did part of the run: the next one carries on."""

    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


class TaskEnded(ApplicationError):
    """A result of this attempt or a later one ended the task while this attempt ran (staff
    resolved it, or another try of the attempt finished it): nothing more is written or sent, and
    the result on record stands (activities/fanout.py answers with it). Benign and final: no
    failure counted, no retry."""

    def __init__(self, system: str, attempt: int) -> None:
        super().__init__(f"system {system}: a result on record ended its task while attempt {attempt} ran "
                         "(resolved by staff, or finished by another try); the attempt stopped there",
                         type="HttpRunTaskEnded", non_retryable=True, category=ApplicationErrorCategory.BENIGN)


@dataclass(frozen=True)
class Entry:
    state: str
    status: int | None
    counted: bool | None
    read_bytes: int
    value: Any


def slice_end(settings: Settings) -> float:
    """When (time.monotonic) this attempt stops starting new items: DSRFLOW_HTTP_RUN_SLICE_SECONDS
    from now, and never past the share of the attempt's own time that leaves room to finish."""
    seconds = settings.http_run_slice_seconds
    if activity.in_activity() and (cap := activity.info().start_to_close_timeout):
        seconds = min(seconds, cap.total_seconds() * _SLICE_SHARE)
    return time.monotonic() + seconds


def config_hash(config: Any) -> str:
    """The configuration a run's rows were written under (no secret: those are read apart)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def journal_cleared(request_id: str, system: str, attempt: int) -> Write:
    """With a result that ends a task (`ENDS_TASK`, after `ending_lock`): the rows of its runs,
    this attempt's and those of the earlier ones it went on from. Only a task needing staff is run
    again, so nothing goes on from them; a result needing staff, which a retry goes on from, and a
    pending one, whose run carries on, take none."""
    return Write("DELETE FROM http_run_journal WHERE request_id = $1 AND system = $2 AND attempt <= $3",
                 (request_id, system, attempt))


async def ending_lock(conn: asyncpg.Connection, request_id: str, system: str, action: str, attempt: int) -> int:
    """Taken in the transaction of a result that ends a task, before it: the task's writes in
    flight are committed first, so that `journal_cleared` takes them, and those after it wait for
    the result and then find it (`Journal.flush`). An attempt's own result takes it too, before it
    reads whether a result ended the task (activities/task_results.py). The changes the journal of
    the task's runs up to `attempt` counted, read once the lock is held (migration 0049): what a
    result that is not the run's own success keeps of them."""
    return int(await conn.fetchval("SELECT http_run_partial($1, $2, $3, $4, true)", request_id, system, action, attempt))


class RequestClosed(ApplicationError):
    """The request closed (withdrawn, cancelled, denied) while this attempt ran, before a change it
    was about to send: the change is not sent. Benign and final: no failure counted, no retry."""

    def __init__(self, system: str, attempt: int) -> None:
        super().__init__(f"system {system}: its request was closed while attempt {attempt} ran; the attempt "
                         "stopped before its next change and sent nothing more",
                         type="HttpRunRequestClosed", non_retryable=True, category=ApplicationErrorCategory.BENIGN)


class Journal:
    """One run's journal: read back once when the run starts, written item by item."""

    def __init__(self, pool: asyncpg.Pool, secret: bytes, key: tuple[str, str, str, int], ends: float,
                 config: str) -> None:
        self._pool = pool
        self._secret = secret
        self._aead = AESGCM(file_key(secret, _PURPOSE))
        self._key = key
        self._ends = ends
        self._config = config
        self._action = key[2].partition(".")[0]  # the task's (an objection's run is named by its scope too)
        self._entries: dict[tuple[str, str], Entry] = {}
        self._steps: set[str] = set()
        self.done = 0  # items this attempt read or had answered
        self.earlier: set[int] = set()  # the task's earlier attempts this one goes on from
        self.set_aside = 0  # changes earlier attempts made under another configuration: not gone on from
        self._pending: list[tuple[str, str, str, int | None, bool | None, int, bytes | None]] = []
        self.stops_on_close = True  # whether its request's close stops it (`open`)
        self.closed_under_it = False  # whether a write found its request closed since (`flush`)

    @classmethod
    async def open(cls, pool: asyncpg.Pool, secret: bytes, key: tuple[str, str, str, int],
                   ends: float, config: str, *, after_close: bool = False) -> Journal:
        journal = cls(pool, secret, key, ends, config)
        await pool.execute(f"""DELETE FROM http_run_journal j WHERE stored_at < now() - interval '{_ABANDONED}'
                                  AND NOT EXISTS (SELECT 1 FROM dsr_requests r
                                                   WHERE r.id = j.request_id AND r.closed_at IS NULL)""")
        # Earlier attempts' rows too (a run that stopped short for staff): the later attempt's row
        # of an item is the one that counts.
        # And, in the same read, whether the request's close stops this run before its next change
        # (`flush`): it does unless the run is a hold's deferred erasure (`after_close`), a
        # restriction's lift (which runs once its request ended: completed, or closed part-way
        # with the restriction left in force, workflows/restriction_lifecycle.py; before, such a
        # lift stopped at a SaaS before its first change and left the data restricted there) or
        # began on a request that had completed. So a run that begins after a
        # withdrawal, a cancellation or a denial closed its request stops before its first change,
        # whenever it begins: a retry of a try whose worker died after the close (which took the
        # journal), a long run's next slice, a first try the workflow scheduled before it heard of
        # the close. Before, each of them went on from nothing and changed every record left.
        rows = await pool.fetch(
            """SELECT (SELECT NOT $5 AND (closed_at IS NULL OR status <> 'completed') FROM dsr_requests
                        WHERE id = $1::uuid) AS stops_on_close, j.*
                 FROM (SELECT 1) AS one LEFT JOIN LATERAL (
                      SELECT attempt, step, item, state, status, counted, read_bytes, sealed, config
                        FROM http_run_journal
                       WHERE request_id = $1 AND system = $2 AND run = $3 AND attempt <= $4) AS j ON true
                ORDER BY j.attempt""", *key, after_close or journal._action == RUNS_AFTER_CLOSE)
        journal.stops_on_close = bool(rows[0]["stops_on_close"])
        for row in rows:
            if row["attempt"] is None:  # no row yet: the request's state alone
                continue
            earlier = row["attempt"] < key[3]
            if earlier and row["config"] != config:
                journal.set_aside += row["state"] == "answered" and bool(row["counted"])
                continue
            try:
                value = (journal._open(row["step"], row["item"], row["sealed"], row["attempt"])
                         if row["sealed"] is not None else None)
            except InvalidTag:
                raise ApplicationError(
                    f"system {key[1]}: the journal of its {key[2]} run (http_run_journal) cannot be opened with "
                    "this worker's DSRFLOW_SECRET_KEY: every worker and API must share one key (docs/scaling.md); "
                    "a journal row changed in the database reads the same. Nothing was sent in this attempt",
                    type=JOURNAL_UNREADABLE) from None
            journal._entries[(row["step"], row["item"])] = Entry(
                row["state"], row["status"], row["counted"], row["read_bytes"], value)
            journal._steps.add(row["step"])
            if earlier:
                journal.earlier.add(row["attempt"])
        return journal

    def item(self, step: str, index: int, item: Any) -> str:
        """The item's name in the journal: a keyed hash (no personal data) of it and its place."""
        return keyed_hash(self._secret, _PURPOSE, step, str(index), json.dumps(item, sort_keys=True, default=str))

    def entry(self, step: str, item: str) -> Entry | None:
        return self._entries.get((step, item))

    def has_step(self, step: str) -> bool:
        return step in self._steps

    async def check_time(self) -> None:
        """Before an item this attempt has still to do: past the slice's end, and with something
        done (so that every attempt moves the run on), keep what is done and stop here."""
        if self.done and time.monotonic() >= self._ends:
            await self.flush()
            if self.closed_under_it:
                # Not continued: the next slice would begin on a closed request, whose journal the
                # close took, and go on from nothing as a hold's deferred erasure does.
                raise RequestClosed(self._key[1], self._key[3])
            raise RunContinues(self.done)

    async def read(self, step: str, item: str, records: list[dict[str, Any]], read_bytes: int) -> None:
        """Kept with the next write: a read lost with its process is only read again."""
        self._later(step, item, "read", None, None, read_bytes, records)
        if len(self._pending) >= _READS_TOGETHER:
            await self.flush()

    async def sending(self, step: str, item: str) -> None:
        """Before a change's request goes, with whatever waits to be kept: one write per request."""
        self._pending.append((step, item, "sending", None, None, 0, None))
        await self.flush()

    async def refused(self, step: str, item: str, status: int) -> None:
        """A change the service refused outright (http_client.py `refused`): not made. Its "sending"
        row keeps the refusal's status, so that a request's close does not take it for a change on
        the wire that may have been made (migration 0052); a later attempt sends it again as
        before. An earlier attempt's row of it is left: that request may have been carried out."""
        await self._pool.execute("""UPDATE http_run_journal SET status = $7 WHERE request_id = $1 AND system = $2
                                       AND run = $3 AND attempt = $4 AND step = $5 AND item = $6 AND state = 'sending'""",
                                 *self._key, step, item, status)

    async def not_sent(self, step: str, item: str) -> None:
        """A change stopped before its request went, which no earlier try had sent: its "sending"
        row goes, so that nothing says the change may have been made. A close that took the row
        first has counted it so already (0052): left, as for a try that died then."""
        await self._pool.execute("""DELETE FROM http_run_journal WHERE request_id = $1 AND system = $2 AND run = $3
                                       AND attempt = $4 AND step = $5 AND item = $6 AND state = 'sending'
                                       AND status IS NULL""", *self._key, step, item)

    def answered(self, step: str, item: str, status: int, counted: bool, values: dict[str, Any]) -> None:
        """Kept with the next request's "sending" (or the run's end): lost with its process, the
        request is sent again, and a `missing` answer then counts as its effect."""
        self._later(step, item, "answered", status, counted, 0, values)

    def _later(self, step: str, item: str, state: str, status: int | None, counted: bool | None,
               read_bytes: int, value: Any) -> None:
        self._pending.append((step, item, state, status, counted, read_bytes, self._seal(step, item, value)))
        self.done += 1

    async def flush(self) -> None:
        """Keep what waits to be kept, unless the request has closed (its journal went with it; a
        change about to be sent is not: `RequestClosed`) or the task has ended (`TaskEnded`): checked and written in one statement, under the lock an
        ending result takes (migration 0038), so that no row outlives the result, and after the
        request's row (0039): a close in flight is waited for and read, one after it takes the rows."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        if self._kept_after_close:
            refusal = await self._write_after_close(rows)
        else:
            refusal = await self._pool.fetchval(_WRITE.format(refusal=_REFUSAL), *self._key, *columns(rows),
                                                self._config, self._action, sorted(ENDS_TASK))
        # An ended task's attempt has nothing left to do. A closed request's rows are dropped; a
        # change its attempt was about to send is not sent (RequestClosed): the subject is told the
        # work stopped there (a withdrawal's letter: no further action), and the close counted
        # what the journal held. Before, the attempt carried on sending until it heard its
        # cancellation, and none of those changes was counted. Reads, and the answers of changes
        # sent before the close, are dropped and the attempt goes on: its own success stands. A run
        # the close does not stop (`stops_on_close`: a hold's deferred erasure, a restriction's lift,
        # a run on a completed request) goes on: its changes are what the close left to do. A
        # lift's rows are kept too (`_kept_after_close`).
        if refusal == "ended":
            raise TaskEnded(self._key[1], self._key[3])
        if refusal == "closed" and self.stops_on_close:
            self.closed_under_it = True
            # Each answer here is that of a change whose "sending" was kept before the close (one
            # after it is not sent), which the close could not count (migration 0052).
            if heard := [row for row in rows if row[2] == "answered"]:
                await self._counted_after_close(sum(1 for row in heard if row[4]), len(heard))
            if any(row[2] == "sending" for row in rows):
                raise RequestClosed(self._key[1], self._key[3])

    async def _write_after_close(self, rows: list[tuple[Any, ...]]) -> str | None:
        """`flush` for a lift's run on its closed request (`_kept_after_close`): its rows kept unless
        a result ended its task ('ended'), read once the lock an ending result takes is held (the
        statement after it reads what that result committed), as the refusal function does for an
        open request. That function answers 'closed' first, which a lift does not heed: a lift
        whose task staff resolved meanwhile went on sending, and its rows outlived the result."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock_shared(http_run_journal_lock($1, $2))",
                               self._key[0], self._key[1])
            refusal: str | None = await conn.fetchval(_WRITE.format(refusal=_ENDED_ONLY), *self._key, *columns(rows),
                                                      self._config, self._action, sorted(ENDS_TASK))
            return refusal

    @property
    def _kept_after_close(self) -> bool:
        """Whether this run's rows are kept on its closed request: a restriction's lift's, which
        runs there by design (its task's ending result takes them, as an open request's). Before,
        they were dropped like a withdrawn request's, so a lift longer than one attempt's slice (or
        waiting out a SaaS's outage or quota day) began again from nothing at each attempt, and
        one that needed more than a slice never ended. Not a hold's deferred erasure: no task's
        result ends its runs, and a later attempt of it goes on from nothing by design."""
        return not self.stops_on_close and self._action == RUNS_AFTER_CLOSE

    async def _counted_after_close(self, late: int, heard: int) -> None:
        """Answers heard after the request's close, of changes on the wire then, whose rows the close
        refused: the `late` ones that count added to what the close kept of the journal on the task
        (migration 0049's trigger), and the `heard` ones taken from the changes it could not know
        of (0052's `partial_unsure`), and the trail told the new count. A change on the wire as the
        request closed is answered after it, and its row was to be kept with the next change's;
        before, the record said one change fewer than the service had made. Once: the rows are gone
        from `_pending`, and a retry finds none to add."""
        request_id, system, _, attempt = self._key
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_chain(conn, request_id)  # before the task's row, as append_event takes them
            task = await conn.fetchrow(
                """INSERT INTO system_tasks AS t (request_id, system, action, status, attempt, message, partial_changed)
                   VALUES ($1, $2, $3, 'needs_attention', $4,
                           'stopped: the request was closed while its run was under way', nullif($5, 0))
                   ON CONFLICT (request_id, system, action) DO UPDATE
                      SET partial_changed = CASE WHEN $5 > 0 THEN coalesce(t.partial_changed, 0) + $5
                                                 ELSE t.partial_changed END,
                          partial_unsure = nullif(greatest(coalesce(t.partial_unsure, 0) - $6, 0), 0),
                          updated_at = now()
                   RETURNING attempt, coalesce(partial_changed, 0) AS counted, partial_unsure AS unsure""",
                request_id, system, self._action, attempt, late, heard)
            await append_event(conn, **partial_effect(request_id, system, self._action, task["attempt"],
                                                      task["counted"], task["unsure"], actor="workflow"))

    def _bound(self, step: str, item: str, attempt: int | None = None) -> bytes:
        """What a row's seal is bound to: the row's key (`attempt`: an earlier attempt's row)."""
        request_id, system, run, own = self._key
        return "\x1f".join((request_id, system, run, str(own if attempt is None else attempt), step, item)).encode()

    def _seal(self, step: str, item: str, value: Any) -> bytes:
        nonce = os.urandom(_NONCE)
        clear = json.dumps(value, separators=(",", ":"), default=str).encode()
        return nonce + self._aead.encrypt(nonce, clear, self._bound(step, item))

    def _open(self, step: str, item: str, sealed: bytes, attempt: int) -> Any:
        return json.loads(self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._bound(step, item, attempt)))
