"""Sending an e-mail at most once per key, across crashes, retries and database outages.

Every message dsrflow sends (letters, processor requests and reminders) goes through `send_once`.
Its `mail_outbox` row moves through these states:

1. `claimed`, committed before any SMTP traffic. The claimer holds a session advisory lock on the
   key for the whole send, so a second, live attempt (a poll beside another, an activity retried
   while its first attempt still runs) never sends alongside it: it is told the message is `busy`.
2. `data_sent`: the relay has the message. The statement that records it is written to the
   database's connection in the same step as the message's end mark to the relay's, the end mark
   first (activities/mail.py): a process killed at any instant after that step leaves both on their
   way, since the kernel delivers what was written to a socket after its process is gone.
3. `sent`: the relay accepted the message; written with the caller's own records (the letter's
   evidence row, the manual task, the audit event) in one statement. A database down at that
   moment is waited for, up to `RECORD_PATIENCE` seconds. A database down when `data_sent` was to
   be recorded is waited for the same way: the message is out by then.
   If the relay refused the message, or the connection failed and this process saw it, the row
   becomes `failed` (waited for through a database restart, like `sent`) and the error
   propagates: the retry sends again.

A retry that finds the row with its lock free (the attempt that wrote it has died) acts on the
state it finds, and the audit trail says what it did:
- `sent`: nothing; `failed`: it sends;
- `claimed`: the sender died before the relay had the message, so it sends (`mail.resent`);
- `data_sent`: the sender died after handing the relay the message, before hearing its answer. A
  relay keeps a message it received in full, so **it is recorded as sent and not sent again**
  (`mail.unconfirmed`, which names the Message-ID for staff to check with the relay).

A message can also be withdrawn before it goes (`withdraw`): the row becomes `withdrawn`, under
the same lock, so that an attempt still running (an activity whose step has given up on it) finds
it so and sends nothing; a claim is taken for dead only once its lock is free and no sender can
still be alive (`SENDER_LIFETIME`: a database restart frees the lock of a sender still at work).
One that went out already (`sent`, `data_sent`) stays as it is: the caller learns it went, and
records one that a dead sender handed over (`data_sent`) as a retry would, through `send_once`,
so that it has its evidence like any message that went. A staff alert keeps its stored copy with
its claim (`send_once`'s `copy`), so that one a dead sender handed over is recorded even when
nobody asks for it again (`handed_over`, read by the start sweep every few minutes).

What is left: a death in the microseconds between the two writes, or while the database is down
and the message already out, leaves `claimed` with the message at the relay, and the retry sends a
second copy. That side was chosen over the other (`data_sent` recorded first, the message lost if
the process dies before its end mark goes): a subject may get a letter twice, but never misses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable
from email.message import Message
from typing import Any

import asyncpg

from activities.errors import TRANSIENT_DB_ERRORS
from activities.mail import Mailer
from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.writes import Write

RECORD_PATIENCE = 120.0  # seconds a sent message waits for the database to come back
# The longest a sender can be alive after its claim: its SMTP transaction (aiosmtplib's 30 s per
# command, about nine commands at most; the mail step's 4-minute timeout cancels it sooner) and
# then RECORD_PATIENCE for its record, with a minute to spare.
SENDER_LIFETIME = 4 * 60 + RECORD_PATIENCE + 60


class Sent(enum.Enum):
    SENT = "sent"  # this call sent it
    ALREADY = "already"  # an earlier attempt did (or, dying, handed it to the relay)
    BUSY = "busy"  # a live attempt is sending it right now
    WITHDRAWN = "withdrawn"  # withdrawn before it went (`withdraw`): it never goes


# Records a sent message: `marked` (the outbox's row marked sent) written with the caller's rows
# and audit event in one statement (`append_event(..., along=[marked, ...])`), so a message is
# never marked sent without its evidence, nor the other way round.
OnSent = Callable[[asyncpg.Connection, Write], Awaitable[object]]


async def send_once(pool: asyncpg.Pool, mailer: Mailer, key: str, message: Message, *,
                    request_id: str | None, on_sent: OnSent, copy: dict[str, Any] | None = None) -> Sent:
    """Send `message` once for `key`; `on_sent` records it with the outbox's mark. `copy`, what
    `on_sent` stores, is kept with the claim until then, for `handed_over` to record it by."""
    async with pool.acquire() as conn:
        try:
            held, claimed = await conn.fetchrow(_LOCK_AND_CLAIM, key, request_id, message["Message-ID"], copy)
        except BaseException:
            _close(conn)  # the lock may have been taken unheard: it goes with the session
            raise
        if not held:
            return Sent.BUSY
        try:
            state = "new" if claimed else await _claim_again(conn, key, message, request_id, copy)
            if state not in ("sent", "data_sent", "withdrawn"):
                await _send(pool, conn, mailer, key, message)
        finally:
            await _unlock(conn, key)
    if state == "sent":
        return Sent.ALREADY
    if state == "withdrawn":
        return Sent.WITHDRAWN
    # Recorded on a connection of its own, the claim's given back: letters waiting for the
    # database must not hold the pool's connections between them.
    await _record_sent(pool, key, on_sent)
    # A message a dead sender handed to the relay is recorded, not sent again (module doc).
    return Sent.ALREADY if state == "data_sent" else Sent.SENT


async def _send(pool: asyncpg.Pool, conn: asyncpg.Connection, mailer: Mailer, key: str,
                message: Message) -> None:
    # A query without parameters goes to the socket as `execute` is called; one with parameters
    # may be prepared first, a round trip during which the message is out and not recorded. The
    # key is spelled in hexadecimal, so nothing in it can be read as SQL.
    handed_over = ("UPDATE mail_outbox SET state = 'data_sent' WHERE mail_key = "
                   f"convert_from(decode('{key.encode().hex()}', 'hex'), 'UTF8')")

    async def handed() -> None:
        try:
            await conn.execute(handed_over)
        except TRANSIENT_DB_ERRORS:
            return  # the message is out: recorded as sent once the database is back (module doc)
        failpoint("mail-handed", key)

    failpoint("mail-claimed", key)
    try:
        await mailer.send(message, handed=handed)
    except Exception:
        # Seen failing by this process: the relay did not confirm it, so a retry sends. This
        # must be written down even through a database restart: a `data_sent` left behind (the
        # relay dropped the connection after the end mark, without an answer) would be read by
        # the retry as handed to the relay, and never sent.
        await _patiently(pool, lambda c: c.execute(
            "UPDATE mail_outbox SET state = 'failed' WHERE mail_key = $1 AND state <> 'sent'", key))
        raise
    failpoint("mail-accepted", key)


# The usual case, a first attempt, in one round trip: the session lock, then (only if it was
# free) the claim, committed before any SMTP traffic. The lock's CTE is evaluated once, before
# the insert that reads it.
_LOCK_AND_CLAIM = """
    WITH lock AS (SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS held),
         claim AS (INSERT INTO mail_outbox (mail_key, request_id, message_id, state, copy)
                   SELECT $1, $2, $3, 'claimed', $4 FROM lock WHERE held
                   ON CONFLICT (mail_key) DO NOTHING RETURNING true)
    SELECT (SELECT held FROM lock), EXISTS (SELECT FROM claim)"""


async def _claim_again(conn: asyncpg.Connection, key: str, message: Message, request_id: str | None,
                       copy: dict[str, Any] | None) -> str:
    """Claim a key claimed before (under the lock); returns the state found."""
    async with conn.transaction():
        found = await conn.fetchrow("SELECT state, attempts FROM mail_outbox WHERE mail_key = $1 FOR UPDATE", key)
        state = str(found["state"])  # outbox rows are never deleted
        if state in ("sent", "withdrawn"):
            return state
        outcome = _DIED.get(state)
        if outcome is not None:
            event_type, reason = outcome
            await append_event(
                conn, event_key=f"{event_type}:{key}:{found['attempts']}", request_id=request_id,
                event_type=event_type, actor="workflow",
                data={"mail_key": key, "message_id": message["Message-ID"], "reason": reason})
        if state != "data_sent":
            await conn.execute(
                "UPDATE mail_outbox SET state = 'claimed', attempts = attempts + 1, claimed_at = now(), copy = $2 "
                "WHERE mail_key = $1", key, copy)
        return state


async def withdraw(pool: asyncpg.Pool, key: str, message_id: str, *, request_id: str | None) -> Sent:
    """Make sure the message for `key` never goes, unless it went already: `WITHDRAWN` (it will
    not go), `ALREADY` (it went, or a dead sender handed it to the relay) or `BUSY` (a live
    attempt is sending it, or may be, after a database restart: ask again later). A message a
    dead sender handed over is left `data_sent`: the caller records it as a retry would, with its
    own records, by calling `send_once` (which sends nothing then, and writes `mail.unconfirmed`)."""
    held, state = await pool.fetchrow(_LOCK_AND_WITHDRAW, key, request_id, message_id, SENDER_LIFETIME)
    if not held or state == "claimed":  # a sender may still be at it (_LOCK_AND_WITHDRAW)
        return Sent.BUSY
    return Sent.ALREADY if state in ("sent", "data_sent") else Sent.WITHDRAWN


async def settle(pool: asyncpg.Pool, key: str, message_id: str, *, request_id: str | None,
                 record: Callable[[], Awaitable[object]]) -> Sent:
    """Settle a message its sender gave up on, or left unfinished as it died (`withdraw`): it
    never goes from now on, unless it went already, and then `record` records it as a retry would
    (its own `send_once`, which sends nothing and writes `mail.unconfirmed`)."""
    settled = await withdraw(pool, key, message_id, request_id=request_id)
    if settled is Sent.ALREADY:
        await record()
    return settled


async def handed_over(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Messages a dead sender handed to the relay (`data_sent`, no sender alive any more:
    `SENDER_LIFETIME`) that nobody has asked for since, with the copy kept with their claim
    (`send_once`'s `copy`): the caller records each as a retry would, through `send_once`
    (which sends nothing then, and writes `mail.unconfirmed`). A staff alert whose condition
    passed before its sweep ran again is never asked for again: before, it stayed `data_sent`
    for good, with no stored copy of what staff were told."""
    return await pool.fetch(
        "SELECT mail_key, request_id::text, message_id, copy FROM mail_outbox WHERE state = 'data_sent' "
        "AND copy IS NOT NULL AND claimed_at < now() - make_interval(secs => $1) ORDER BY claimed_at",
        SENDER_LIFETIME)


# Under the lock a sender holds for its whole send, taken for this statement only: a row not yet
# there is written `withdrawn`, one a sender left unsent (`failed`, or `claimed` by one that died
# before the relay had it) becomes so; the state the row ends in comes back. A `claimed` row whose
# lock is free may still have a live sender: a database restart ends the session, and the lock
# with it, while the sender goes on handing the message to the relay (its `data_sent` unwritten)
# and waits to record it. So a claim is taken for dead only once no sender can still be alive
# ($4 seconds, `SENDER_LIFETIME`); until then the row stays `claimed` and the caller hears `BUSY`.
_LOCK_AND_WITHDRAW = """
    WITH lock AS (SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS held),
         fence AS (INSERT INTO mail_outbox (mail_key, request_id, message_id, state)
                   SELECT $1, $2, $3, 'withdrawn' FROM lock WHERE held
                   ON CONFLICT (mail_key) DO UPDATE SET state = 'withdrawn'
                   WHERE mail_outbox.state = 'failed'
                      OR (mail_outbox.state = 'claimed'
                          AND mail_outbox.claimed_at < now() - make_interval(secs => $4))
                   RETURNING state)
    SELECT (SELECT held FROM lock),
           coalesce((SELECT state FROM fence), (SELECT state FROM mail_outbox WHERE mail_key = $1))"""


# What a retry does about a message whose sender died, by the state the sender left (module doc).
_DIED = {
    "claimed": ("mail.resent", "an earlier attempt died before the relay received the message; "
                               "it is sent now"),
    "data_sent": ("mail.unconfirmed", "an earlier attempt died after handing the message to the "
                                      "relay, before hearing its answer; it is recorded as sent and "
                                      "not sent again (check with the relay by its Message-ID)"),
}


async def _unlock(conn: asyncpg.Connection, key: str) -> None:
    try:
        await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
    except BaseException as exc:
        # The pool gives connections back without resetting their session (dsrflow/infra/db.py):
        # a lock this session may still hold (the unlock cancelled, refused) would keep the key
        # busy for whoever draws the connection next. Closed, the session takes its lock along.
        _close(conn)
        if not isinstance(exc, TRANSIENT_DB_ERRORS):
            raise


def _close(conn: asyncpg.Connection) -> None:
    with contextlib.suppress(asyncpg.InterfaceError):  # closed already: the pool took it back
        conn.terminate()


async def _record_sent(pool: asyncpg.Pool, key: str, on_sent: OnSent) -> None:
    """Mark the message sent, with the caller's records; the database may be restarting."""
    marked = Write("UPDATE mail_outbox SET state = 'sent', sent_at = now(), copy = NULL WHERE mail_key = $1", (key,))
    await _patiently(pool, lambda conn: on_sent(conn, marked))


async def _patiently(pool: asyncpg.Pool, write: Callable[[asyncpg.Connection], Awaitable[object]]) -> None:
    """Run `write` (one statement: atomic on its own), waiting up to `RECORD_PATIENCE` seconds for
    a database that is restarting."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + RECORD_PATIENCE
    delay = 0.5
    while True:
        try:
            async with pool.acquire() as conn:
                await write(conn)
            return
        except TRANSIENT_DB_ERRORS:
            if loop.time() + delay > give_up:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
