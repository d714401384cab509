"""The outbox (activities/outbox.py) against a real PostgreSQL that goes away at its worst moment,
and the real SMTP sink: a message is delivered once, never lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import aiosmtplib
import pytest

from activities.mail import Handed, Mailer
from activities.outbox import SENDER_LIFETIME, Sent, send_once
from activities.outbox_withdrawal import withdraw
from devstack.postgres import EmbeddedPostgres
from devstack.smtp_sink import read_mailbox
from dsrflow.infra.writes import Write
from tests.conftest import database_pool, running_postgres


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    async with running_postgres(tmp_path) as server:
        yield server


def _letter() -> tuple[EmailMessage, str]:
    """A message and a fresh outbox key for it."""
    message = EmailMessage()
    message["From"], message["To"] = "privacy@onetagger.com", "ada@example.com"
    message["Subject"], message["Message-ID"] = "Your request", make_msgid(domain="dsrflow")
    message.set_content("Hello")
    return message, f"outbox-test:{uuid.uuid4().hex}"


async def recorded(conn, marked: Write) -> None:
    await marked.execute(conn)  # no evidence of its own: the outbox's mark alone


class _RestartingMailer(Mailer):
    """The real mailer, but the first time a message is handed to the relay PostgreSQL stops:
    just before the outbox records `data_sent`, or just after it committed it (before the client
    hears the answer of anything else). The server comes back two seconds later."""

    def __init__(self, settings, server: EmbeddedPostgres, log: Path, *, stop_first: bool) -> None:
        super().__init__(settings)
        self.server, self.log, self.stop_first = server, log, stop_first
        self.restarted = asyncio.Event()

    async def send(self, message: EmailMessage, *, handed: Handed | None = None) -> None:
        async def with_a_restart() -> None:
            assert handed is not None
            if self.stop_first:
                self.server.stop()
            await handed()
            if not self.stop_first:
                self.server.stop()
            asyncio.get_running_loop().call_later(2, self._start_again)

        await super().send(message, handed=handed if self.restarted.is_set() else with_a_restart)

    def _start_again(self) -> None:
        self.server.start(self.log)
        self.restarted.set()


@pytest.mark.parametrize("stop_first", [pytest.param(True, id="down-before-data_sent"),
                                        pytest.param(False, id="down-after-data_sent")])
async def test_a_database_restart_as_the_relay_gets_the_message_delivers_it_once(
        own_postgres, settings, mail_sink, tmp_path, stop_first):
    """The relay has the message whether or not `data_sent` could be written: the outbox waits
    for the database and records it as sent, and a retry does not send it again."""
    mailer = _RestartingMailer(settings, own_postgres, tmp_path / "postgres-again.log", stop_first=stop_first)
    message, key = _letter()
    async with database_pool(own_postgres, "outbox") as (_, pool):
        assert await send_once(pool, mailer, key, message, request_id=None, on_sent=recorded) is Sent.SENT
        assert mailer.restarted.is_set()  # recorded after the restart
        assert await pool.fetchval("SELECT state FROM mail_outbox WHERE mail_key = $1", key) == "sent"
        assert await send_once(pool, mailer, key, message, request_id=None, on_sent=recorded) is Sent.ALREADY
    delivered = [m for m in read_mailbox(mail_sink.directory) if m["Message-ID"] == message["Message-ID"]]
    assert len(delivered) == 1


class _StalledMailer(Mailer):
    """A relay that never answers: the send waits until it is cancelled."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.waiting = asyncio.Event()

    async def send(self, message: EmailMessage, *, handed: Handed | None = None) -> None:
        self.waiting.set()
        await asyncio.Event().wait()


async def test_a_send_cancelled_while_it_lets_go_of_its_lock_leaves_no_lock_behind(
        own_postgres, settings):
    """Pooled connections go back without a session reset (dsrflow/infra/db.py), so the outbox's
    session lock must never outlive its send: an activity cancelled twice, the second time while
    the lock is being released, closes the connection and the lock with it. Otherwise the key
    would stay `busy` for every later attempt that draws another connection."""
    mailer = _StalledMailer(settings)
    message, key = _letter()
    async with database_pool(own_postgres, "outbox_cancel", max_size=2) as (_, pool):
        sending = asyncio.create_task(send_once(pool, mailer, key, message, request_id=None, on_sent=recorded))
        await asyncio.wait_for(mailer.waiting.wait(), 10)
        sending.cancel()
        await asyncio.sleep(0)  # the send unwinds into its `finally`, the unlock under way
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        # The closed session's backend lets go of its lock as it notices the connection gone:
        # at once, or a moment later on a loaded machine.
        for _ in range(100):
            if not await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"):
                break
            await asyncio.sleep(0.05)
        assert await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
        # The retry's attempt, on whichever connection, is not told the message is busy.
        assert await send_once(pool, Mailer(settings), key, message, request_id=None,
                               on_sent=recorded) is Sent.SENT


class _RefusingMailer(Mailer):
    async def send(self, message: EmailMessage, *, handed: Handed | None = None) -> None:
        raise aiosmtplib.SMTPRecipientsRefused([])


def _delivered(mail_sink, message: EmailMessage) -> int:
    return sum(m["Message-ID"] == message["Message-ID"] for m in read_mailbox(mail_sink.directory))


async def test_a_withdrawn_message_never_goes_and_one_that_went_stays_sent(pool, settings, mail_sink):
    """`withdraw` settles a message whose step gave up on it (a resent verification code): one
    not sent yet, or refused by the relay, never goes, even if an attempt comes for it later; one
    that went is left as it is, and the caller learns it went."""
    mailer = Mailer(settings)
    unsent, key = _letter()
    assert await withdraw(pool, key, unsent["Message-ID"], request_id=None) is Sent.WITHDRAWN
    assert await send_once(pool, mailer, key, unsent, request_id=None, on_sent=recorded) is Sent.WITHDRAWN
    assert await withdraw(pool, key, unsent["Message-ID"], request_id=None) is Sent.WITHDRAWN

    refused, refused_key = _letter()
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await send_once(pool, _RefusingMailer(settings), refused_key, refused, request_id=None, on_sent=recorded)
    assert await withdraw(pool, refused_key, refused["Message-ID"], request_id=None) is Sent.WITHDRAWN
    assert await send_once(pool, mailer, refused_key, refused, request_id=None, on_sent=recorded) is Sent.WITHDRAWN

    went, went_key = _letter()
    assert await send_once(pool, mailer, went_key, went, request_id=None, on_sent=recorded) is Sent.SENT
    assert await withdraw(pool, went_key, went["Message-ID"], request_id=None) is Sent.ALREADY

    # A sender that died right after handing the message to the relay: it went, unrecorded. The
    # caller records it as a retry would (send_once sends nothing then), and the audit trail says
    # so once, whoever asks again.
    handed, handed_key = _letter()
    await pool.execute("INSERT INTO mail_outbox (mail_key, message_id, state) VALUES ($1, $2, 'data_sent')",
                       handed_key, handed["Message-ID"])
    for _ in range(2):
        assert await withdraw(pool, handed_key, handed["Message-ID"], request_id=None) is Sent.ALREADY
        assert await send_once(pool, mailer, handed_key, handed, request_id=None, on_sent=recorded) is Sent.ALREADY
    unconfirmed = await pool.fetch("SELECT data FROM audit_events WHERE event_type = 'mail.unconfirmed' "
                                   "AND data->>'mail_key' = $1", handed_key)
    assert [r["data"]["message_id"] for r in unconfirmed] == [handed["Message-ID"]]

    states = await pool.fetch("SELECT mail_key, state FROM mail_outbox WHERE mail_key = ANY($1)",
                              [key, refused_key, went_key, handed_key])
    assert dict(states) == {key: "withdrawn", refused_key: "withdrawn", went_key: "sent", handed_key: "sent"}
    assert [_delivered(mail_sink, m) for m in (unsent, refused, went, handed)] == [0, 0, 1, 0]


class _SlowMailer(Mailer):
    """A relay that answers once `go` is set."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.waiting, self.go = asyncio.Event(), asyncio.Event()

    async def send(self, message: EmailMessage, *, handed: Handed | None = None) -> None:
        self.waiting.set()
        await self.go.wait()
        await super().send(message, handed=handed)


async def test_a_message_being_sent_is_busy_to_withdraw_until_its_sender_is_done(pool, settings, mail_sink):
    """The attempt still under way holds the outbox's lock for its whole send: `withdraw` is told
    to ask again, and then learns that the message went."""
    mailer = _SlowMailer(settings)
    message, key = _letter()
    sending = asyncio.create_task(send_once(pool, mailer, key, message, request_id=None, on_sent=recorded))
    await asyncio.wait_for(mailer.waiting.wait(), 10)
    assert await withdraw(pool, key, message["Message-ID"], request_id=None) is Sent.BUSY
    mailer.go.set()
    assert await sending is Sent.SENT
    assert await withdraw(pool, key, message["Message-ID"], request_id=None) is Sent.ALREADY
    assert _delivered(mail_sink, message) == 1


@pytest.mark.parametrize("asker", ["settle", "retry"])
async def test_a_claim_whose_lock_a_restart_took_is_busy_until_its_sender_cannot_be_alive(
        own_postgres, settings, mail_sink, tmp_path, asker):
    """PostgreSQL restarts while a sender is inside the SMTP transaction: its session, and the
    lock with it, are gone, but the sender goes on, hands the message to the relay and waits to
    record it. A settle (`withdraw`) or a retry (`send_once`) asking meanwhile is told `BUSY`:
    before, the settle withdrew the message (a verification round settled as unsent, its code in
    the subject's inbox counted as wrong) and the sender then recorded it sent; the retry sent a
    second copy, its `mail.resent` saying the sender had ended. A claim older than any sender is
    dead: withdrawn, or sent again; one whose lock its sender's death freed, since the restart,
    is sent again at once."""
    mailer = _RestartingMailer(settings, own_postgres, tmp_path / "postgres-again.log", stop_first=True)
    message, key = _letter()
    asked = asyncio.Event()

    async def after_the_settle(conn, marked: Write) -> None:
        await asked.wait()  # the sender records only once the other has asked
        await marked.execute(conn)

    async with database_pool(own_postgres, "outbox_fence") as (_, pool):
        def ask(key: str, message: EmailMessage) -> Awaitable[Sent]:
            if asker == "settle":
                return withdraw(pool, key, message["Message-ID"], request_id=None)
            return send_once(pool, mailer, key, message, request_id=None, on_sent=recorded)

        sending = asyncio.create_task(send_once(pool, mailer, key, message, request_id=None,
                                                on_sent=after_the_settle))
        await asyncio.wait_for(mailer.restarted.wait(), 60)
        await own_postgres.wait_ready()
        assert await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
        settled = await ask(key, message)
        asked.set()
        assert settled is Sent.BUSY
        assert await sending is Sent.SENT
        assert await ask(key, message) is Sent.ALREADY

        dead, dead_key = _letter()  # a sender that died before the relay had it, long ago
        await pool.execute("INSERT INTO mail_outbox (mail_key, message_id, state, claimed_at) "
                           "VALUES ($1, $2, 'claimed', now() - make_interval(secs => $3 + 1))",
                           dead_key, dead["Message-ID"], SENDER_LIFETIME)
        assert await ask(dead_key, dead) is (Sent.WITHDRAWN if asker == "settle" else Sent.SENT)
        if asker == "retry":
            died, died_key = _letter()  # its sender killed just now, the database up all along
            await pool.execute("INSERT INTO mail_outbox (mail_key, message_id, state) VALUES ($1, $2, 'claimed')",
                               died_key, died["Message-ID"])
            assert await ask(died_key, died) is Sent.SENT
            assert _delivered(mail_sink, died) == 1
        events = await pool.fetch("SELECT data->>'mail_key' AS key FROM audit_events WHERE event_type = 'mail.resent'")
    assert _delivered(mail_sink, message) == 1
    assert _delivered(mail_sink, dead) == (0 if asker == "settle" else 1)
    assert sorted(e["key"] for e in events) == ([] if asker == "settle" else sorted([dead_key, died_key]))
