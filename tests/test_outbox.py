"""The outbox (activities/outbox.py) against a real PostgreSQL that goes away at its worst moment,
and the real SMTP sink: a message is delivered once, never lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from activities.mail import Handed, Mailer
from activities.outbox import Sent, send_once
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
