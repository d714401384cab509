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

A retry that finds the row with its lock free (the attempt that wrote it ended without finishing:
its worker died, or its database session was lost) acts on the state it finds, and the audit trail
says what it did:
- `sent`: nothing; `failed`: it sends;
- `claimed`: the sender ended before recording that the relay had the message, so it sends
  (`mail.resent`);
- `data_sent`: the sender ended after handing the relay the message, before recording its answer.
  A relay keeps a message it received in full, so **it is recorded as sent and not sent again**
  (`mail.unconfirmed`, which names the Message-ID for staff to check with the relay).
A lock is also freed by a restart of the database, which ends every session, its sender's process
alive or not. A `claimed` row claimed before the database's last start is therefore left to its
sender (the retry hears `busy`) until no sender can still be alive (`SENDER_LIFETIME`): a sender
at work records what it did once the database is back, and a retry that sent beside it would make
a second copy. A dead one's message goes that much later.

A sender can also be stopped while it runs (cancelled: its activity cancelled or timed out, its
worker shutting down). It stops at once only inside the SMTP transaction, and leaves no state a
retry would mistake for a death:
- before the message itself was written (before any SMTP byte, or at MAIL, RCPT, DATA): nothing
  reached the relay, so its claim becomes `failed` and the retry sends, with no `mail.resent`;
- once it was (mid-DATA, activities/mail.py writes the withheld end mark all the same, and
  `handed` runs), the relay has the message, its answer unheard: the sender records the message
  as sent itself, as a retry would, with a `mail.unconfirmed` saying it was stopped (unless the
  relay stopped reading: mail.py then cuts the connection before the end mark, and it is `failed`);
- while it claims or records (the relay's answer heard, or a dead sender's `data_sent` found), it
  finishes that first, waiting for a database that is restarting as it would anyway: the trail
  never calls unconfirmed a message the relay confirmed.
The record is written under the claim's lock, so a retry meanwhile hears `busy`; a database gone
meanwhile is waited for on connections of their own, the lock given up with its session.

Withdrawing a message before it goes, and settling one its sender left unfinished, are
activities/outbox_withdrawal.py.

What is left: a death in the microseconds between the two writes, or while the database is down
and the message already out, leaves `claimed` with the message at the relay, and the retry sends a
second copy (so does a sender stopped after the hand-over while the database is down; after a
restart, only once `SENDER_LIFETIME` has passed). That
side was chosen over the other (`data_sent` recorded first, the message lost if the process dies
before its end mark goes): a subject may get a letter twice, but never misses one.
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
from activities.mail import Mailer, outlast
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


class _Attempt:
    """How far a send has got, read as its caller is cancelled (`send_once`)."""

    def __init__(self) -> None:
        self.stop = False  # the caller was cancelled: stop where it is safe
        self.in_smtp = False  # inside the SMTP transaction: stopped at once
        self.handed = False  # the message's end mark went: the relay may have it


async def send_once(pool: asyncpg.Pool, mailer: Mailer, key: str, message: Message, *,
                    request_id: str | None, on_sent: OnSent, copy: dict[str, Any] | None = None) -> Sent:
    """Send `message` once for `key`; `on_sent` records it with the outbox's mark. `copy`, what
    `on_sent` stores, is kept with the claim until then, for `handed_over` to record it by.
    Cancelled, it stops where the module doc says, and then raises the cancellation."""
    attempt = _Attempt()
    work = asyncio.ensure_future(_send_once(pool, mailer, key, message, request_id, on_sent, copy, attempt))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        attempt.stop = True
        if attempt.in_smtp:
            work.cancel()
        try:
            await outlast(work)
        finally:
            if not work.cancelled():
                work.exception()  # the cancellation is what the caller hears
        raise


async def _send_once(pool: asyncpg.Pool, mailer: Mailer, key: str, message: Message, request_id: str | None,
                     on_sent: OnSent, copy: dict[str, Any] | None, attempt: _Attempt) -> Sent:
    recorded = False
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
            if state == "busy":
                return Sent.BUSY
            if state not in ("sent", "data_sent", "withdrawn"):
                if not await _send(pool, conn, mailer, key, message, request_id, attempt):
                    state = "data_sent"  # stopped once the relay had it: recorded as a retry would
            if state not in ("sent", "withdrawn"):
                # Under the claim's lock, so that a retry meanwhile hears `busy` rather than
                # finding a message the relay confirmed `data_sent`, its sender's lock free.
                recorded = await _record_sent_here(conn, key, on_sent)
        finally:
            await _unlock(conn, key)
    if state == "sent":
        return Sent.ALREADY
    if state == "withdrawn":
        return Sent.WITHDRAWN
    if not recorded:
        # The database went away: waited for on a connection of its own, the claim's given back
        # (letters waiting for the database must not hold the pool's connections between them).
        await _record_sent(pool, key, on_sent)
    # A message a dead or stopped sender handed to the relay is recorded, not sent again (module doc).
    return Sent.ALREADY if state == "data_sent" else Sent.SENT


async def _send(pool: asyncpg.Pool, conn: asyncpg.Connection, mailer: Mailer, key: str, message: Message,
                request_id: str | None, attempt: _Attempt) -> bool:
    """Hand `message` to the relay: True once the relay accepted it. A send stopped after the
    handover returns False, the trail told (`mail.unconfirmed`); stopped before it, the claim is
    given back (`failed`: nothing went) and the cancellation raised."""
    # A query without parameters goes to the socket as `execute` is called; one with parameters
    # may be prepared first, a round trip during which the message is out and not recorded. The
    # key is spelled in hexadecimal, so nothing in it can be read as SQL.
    handed_over = ("UPDATE mail_outbox SET state = 'data_sent' WHERE mail_key = "
                   f"convert_from(decode('{key.encode().hex()}', 'hex'), 'UTF8')")

    async def handed() -> None:
        attempt.handed = True
        try:
            await conn.execute(handed_over)
        except TRANSIENT_DB_ERRORS:
            return  # the message is out: recorded as sent once the database is back (module doc)
        failpoint("mail-handed", key)

    if attempt.stop:  # cancelled while it claimed
        await _give_back(conn, key)
        raise asyncio.CancelledError
    failpoint("mail-claimed", key)
    attempt.in_smtp = True
    try:
        await mailer.send(message, handed=handed)
    except asyncio.CancelledError:
        attempt.in_smtp = False
        if not attempt.handed:
            await _give_back(conn, key)
            raise
        # The end mark went (mail.py waits for `handed` to be done even when stopped): the relay
        # has the message, its answer unheard.
        # Recorded as a retry would, saying why; `send_once` then raises the cancellation.
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        await _tell_unconfirmed(conn, key, message, request_id, _STOPPED)
        return False
    except Exception:
        attempt.in_smtp = False
        # Seen failing by this process: the relay did not confirm it, so a retry sends. This
        # must be written down even through a database restart: a `data_sent` left behind (the
        # relay dropped the connection after the end mark, without an answer) would be read by
        # the retry as handed to the relay, and never sent.
        await _patiently(pool, lambda c: c.execute(
            "UPDATE mail_outbox SET state = 'failed' WHERE mail_key = $1 AND state <> 'sent'", key))
        raise
    attempt.in_smtp = False
    failpoint("mail-accepted", key)
    return True


async def _give_back(conn: asyncpg.Connection, key: str) -> None:
    """A claim given up before the message's end mark went: nothing reached the relay, so it
    becomes `failed`, as a send this process saw fail, and the retry sends without calling it a
    death. Tried once: a database gone meanwhile leaves it `claimed` (module doc)."""
    with contextlib.suppress(*TRANSIENT_DB_ERRORS):
        await conn.execute("UPDATE mail_outbox SET state = 'failed' WHERE mail_key = $1 AND state = 'claimed'", key)


# The usual case, a first attempt, in one round trip: the session lock, then (only if it was
# free) the claim, committed before any SMTP traffic. The lock's CTE is evaluated once, before
# the insert that reads it.
_LOCK_AND_CLAIM = """
    WITH lock AS (SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS held),
         claim AS (INSERT INTO mail_outbox (mail_key, request_id, message_id, state, copy)
                   SELECT $1, $2, $3, 'claimed', $4 FROM lock WHERE held
                   ON CONFLICT (mail_key) DO NOTHING RETURNING true)
    SELECT (SELECT held FROM lock), EXISTS (SELECT FROM claim)"""


# A claim's lock free means its sender's session ended: its process died, or was stopped (and then
# gave the claim back, `_give_back`). Unless the database restarted since the claim: a restart
# ends every session, so the sender may still be in its SMTP transaction, or waiting to record
# what the relay answered. Sending again then could make a second copy; the claim is left to its
# sender until no sender can still be alive (`SENDER_LIFETIME`), as `withdraw` leaves it.
_FOUND = """
    SELECT state, attempts,
           claimed_at < pg_postmaster_start_time() AND claimed_at > now() - make_interval(secs => $2) AS lock_lost
      FROM mail_outbox WHERE mail_key = $1 FOR UPDATE"""


async def _claim_again(conn: asyncpg.Connection, key: str, message: Message, request_id: str | None,
                       copy: dict[str, Any] | None) -> str:
    """Claim a key claimed before (under the lock); returns the state found, or `busy` for a
    claim whose sender may still be at work."""
    async with conn.transaction():
        found = await conn.fetchrow(_FOUND, key, SENDER_LIFETIME)
        state = str(found["state"])  # outbox rows are never deleted
        if state in ("sent", "withdrawn"):
            return state
        if state == "claimed" and found["lock_lost"]:
            return "busy"
        if state == "claimed":
            await _tell(conn, "mail.resent", key, found["attempts"], message, request_id, _RESENT)
        elif state == "data_sent":
            await _tell(conn, "mail.unconfirmed", key, found["attempts"], message, request_id, _ENDED)
        if state != "data_sent":
            await conn.execute(
                "UPDATE mail_outbox SET state = 'claimed', attempts = attempts + 1, claimed_at = now(), copy = $2 "
                "WHERE mail_key = $1", key, copy)
        return state


async def _tell_unconfirmed(conn: asyncpg.Connection, key: str, message: Message, request_id: str | None,
                            reason: str) -> None:
    """Say in the trail that the message went to the relay unconfirmed, and mark it handed over
    (its `data_sent` may not have been written: the database was away)."""
    async with conn.transaction():
        attempts = await conn.fetchval("SELECT attempts FROM mail_outbox WHERE mail_key = $1 FOR UPDATE", key)
        await _tell(conn, "mail.unconfirmed", key, attempts, message, request_id, reason)
        await conn.execute("UPDATE mail_outbox SET state = 'data_sent' WHERE mail_key = $1", key)


async def _tell(conn: asyncpg.Connection, event_type: str, key: str, attempts: int, message: Message,
                request_id: str | None, reason: str) -> None:
    # Keyed by the claim's attempt: a retry finding what a stopped sender told is not told twice.
    await append_event(conn, event_key=f"{event_type}:{key}:{attempts}", request_id=request_id,
                       event_type=event_type, actor="workflow",
                       data={"mail_key": key, "message_id": message["Message-ID"], "reason": reason})


# What the trail says of a message a sender left unfinished (module doc): found by a retry
# `claimed` (sent again) or `data_sent` (recorded as sent), or stopped by its own sender after the
# handover (recorded as sent).
_RESENT = ("an earlier attempt ended, its worker dead or its database gone, before recording that the "
           "relay had the message; it is sent again")
_ENDED = ("an earlier attempt ended, its worker dead or its database gone, after handing the message to "
          "the relay and before recording its answer; it is recorded as sent and not sent again (check "
          "with the relay by its Message-ID)")
_STOPPED = ("the attempt was stopped after handing the message to the relay, before hearing its answer; "
            "it is recorded as sent and not sent again (check with the relay by its Message-ID)")


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


def _marked(key: str) -> Write:
    return Write("UPDATE mail_outbox SET state = 'sent', sent_at = now(), copy = NULL WHERE mail_key = $1", (key,))


async def _record_sent_here(conn: asyncpg.Connection, key: str, on_sent: OnSent) -> bool:
    """Mark the message sent, with the caller's records, on the claim's connection: False if the
    database went away (`_record_sent` then waits for it)."""
    try:
        await on_sent(conn, _marked(key))
    except TRANSIENT_DB_ERRORS:
        return False
    return True


async def _record_sent(pool: asyncpg.Pool, key: str, on_sent: OnSent) -> None:
    """Mark the message sent, with the caller's records; the database may be restarting."""
    await _patiently(pool, lambda conn: on_sent(conn, _marked(key)))


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
