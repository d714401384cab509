"""Withdrawing a message before it goes, and settling one its sender left unfinished: the
outbox's other side (activities/outbox.py sends).

A message can be withdrawn before it goes (`withdraw`): the row becomes `withdrawn`, under the
lock its sender holds for the whole send, so that an attempt still running (an activity whose
step has given up on it) finds it so and sends nothing; a claim is taken for dead only once its
lock is free and no sender can still be alive (`SENDER_LIFETIME`: a database restart frees the
lock of a sender still at work). A claim a stopped sender gave back (`failed`: nothing went) is
withdrawn at once. One that went out already (`sent`, `data_sent`) stays as it is: the caller
learns it went, and records one that a sender handed over without recording it (`data_sent`) as a
retry would, through `send_once`, so that it has its evidence like any message that went. A staff
alert keeps its stored copy with its claim (`send_once`'s `copy`), so that one a dead sender
handed over is recorded even when nobody asks for it again (`handed_over`, read by the start
sweep every few minutes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from activities.outbox import SENDER_LIFETIME, Sent


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
