"""Sending an e-mail at most once per key, across crashes, retries and database outages.

Every message dsrflow sends (letters, processor requests and reminders) goes through `send_once`:

1. Claim: a `mail_outbox` row for the key is committed in state `claimed` before any SMTP traffic.
   The claimer holds a session advisory lock on the key for the whole send, so a second, live
   attempt (a poll running beside another, an activity retried while its first attempt still
   runs) never sends alongside it: it is told the message is `busy`.
2. Send: one SMTP transaction. If the relay refused it or could not be reached, the claim is
   released (`failed`) and the error propagates: the retry sends normally.
3. Record: the claim becomes `sent`, together with the caller's own records (the letter's
   evidence row, the manual task, the audit event), in one transaction. If the database is down at
   that moment, the record is retried for up to `RECORD_PATIENCE` seconds before the attempt fails.

A row found `sent` means sent: nothing goes out again. A row found `claimed` whose lock is free
means the attempt that claimed it died inside the SMTP transaction (or the database stayed down
past the patience above), so nobody can know whether the relay accepted the message. The rule:
**send it again, with the same Message-ID**, and record `mail.resent` in the audit trail. A lost
response letter would breach the statutory deadline; a second copy of the same message (same
Message-ID, which mail systems use to recognise a duplicate) does not. The window in which this can
happen is the SMTP transaction alone.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

import aiosmtplib
import asyncpg

from activities.errors import TRANSIENT_DB_ERRORS
from activities.mail import Mailer
from dsrflow.audit import append_event
from dsrflow.failpoints import failpoint

RECORD_PATIENCE = 120.0  # seconds a sent message waits for the database to come back

# The relay answered, or was never reached: it did not accept the message.
# (A reply with an error code, HELO to DATA, is a refusal; a connection lost mid-way is not known.)
_NOT_ACCEPTED = (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError,
                 aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused,
                 aiosmtplib.SMTPNotSupported, ConnectionRefusedError)


class Sent(enum.Enum):
    SENT = "sent"  # this call sent it
    ALREADY = "already"  # an earlier attempt did
    BUSY = "busy"  # a live attempt is sending it right now


OnSent = Callable[[asyncpg.Connection], Awaitable[None]]


async def send_once(pool: asyncpg.Pool, mailer: Mailer, key: str, message: EmailMessage, *,
                    request_id: str | None, on_sent: OnSent) -> Sent:
    """Send `message` once for `key`; `on_sent(conn)` records it in the same transaction that
    marks it sent."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key):
            return Sent.BUSY
        try:
            state = await _claim(conn, key, message, request_id)
            if state == "sent":
                return Sent.ALREADY
            try:
                await mailer.send(message)
            except _NOT_ACCEPTED:
                await conn.execute("UPDATE mail_outbox SET state = 'failed' WHERE mail_key = $1", key)
                raise
            failpoint("mail-accepted")
        finally:
            await _unlock(conn, key)
    await _record_sent(pool, key, on_sent)
    return Sent.SENT


async def _claim(conn: asyncpg.Connection, key: str, message: EmailMessage, request_id: str | None) -> str:
    """Claim the key (committed before any SMTP traffic); returns the state found."""
    async with conn.transaction():
        found = await conn.fetchrow("SELECT state, attempts FROM mail_outbox WHERE mail_key = $1 FOR UPDATE", key)
        if found is None:
            await conn.execute(
                "INSERT INTO mail_outbox (mail_key, request_id, message_id, state) VALUES ($1, $2, $3, 'claimed')",
                key, request_id, message["Message-ID"])
            return "new"
        if found["state"] == "sent":
            return "sent"
        if found["state"] == "claimed":
            # Its sender died inside the SMTP transaction: the outcome is unknown (module doc).
            await append_event(
                conn, event_key=f"mail-resent:{key}:{found['attempts']}", request_id=request_id,
                event_type="mail.resent", actor="workflow",
                data={"mail_key": key, "message_id": message["Message-ID"],
                      "reason": "an earlier attempt died during the SMTP transaction; whether the "
                                "relay accepted the message is unknown, so it is sent again with "
                                "the same Message-ID"},
            )
        await conn.execute(
            "UPDATE mail_outbox SET state = 'claimed', attempts = attempts + 1, claimed_at = now() "
            "WHERE mail_key = $1", key)
        return str(found["state"])


async def _unlock(conn: asyncpg.Connection, key: str) -> None:
    try:
        await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
    except TRANSIENT_DB_ERRORS:
        pass  # the connection is gone, and its session lock with it


async def _record_sent(pool: asyncpg.Pool, key: str, on_sent: OnSent) -> None:
    """Mark the message sent, with the caller's records; the database may be restarting."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + RECORD_PATIENCE
    delay = 0.5
    while True:
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "UPDATE mail_outbox SET state = 'sent', sent_at = now() WHERE mail_key = $1", key)
                await on_sent(conn)
            return
        except TRANSIENT_DB_ERRORS:
            if loop.time() + delay > give_up:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
