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

from activities.mail import BeforeData, Mailer
from activities.outbox import Sent, send_once
from devstack.postgres import EmbeddedPostgres
from devstack.smtp_sink import read_mailbox
from dsrflow.infra.db import create_pool
from dsrflow.infra.writes import Write
from tests.conftest import make_database, running_postgres


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    async with running_postgres(tmp_path) as server:
        yield server


class _AckLostMailer(Mailer):
    """The real mailer, but the first time the outbox records `data_sent`, PostgreSQL commits it
    and then stops before the client hears so (a restart at that instant): the message never
    goes to the relay. The server comes back two seconds later."""

    def __init__(self, settings, server: EmbeddedPostgres, log: Path) -> None:
        super().__init__(settings)
        self.server, self.log, self.restarted = server, log, asyncio.Event()

    async def send(self, message: EmailMessage, *, before_data: BeforeData | None = None) -> None:
        async def committed_then_dropped() -> None:
            assert before_data is not None
            await before_data()
            self.server.stop()
            asyncio.get_running_loop().call_later(2, self._start_again)
            raise ConnectionResetError("the database dropped the connection")

        await super().send(message, before_data=None if self.restarted.is_set() else committed_then_dropped)

    def _start_again(self) -> None:
        self.server.start(self.log)
        self.restarted.set()


async def test_a_lost_acknowledgement_of_data_sent_still_delivers_the_message_once(
        own_postgres, settings, mail_sink, tmp_path):
    url = await make_database(own_postgres, "outbox")
    pool = await create_pool(url, min_size=1, max_size=4)
    mailer = _AckLostMailer(settings, own_postgres, tmp_path / "postgres-again.log")
    message = EmailMessage()
    message["From"], message["To"] = "privacy@onetagger.com", "ada@example.com"
    message["Subject"], message["Message-ID"] = "Your request", make_msgid(domain="dsrflow")
    message.set_content("Hello")
    key = f"outbox-test:{uuid.uuid4().hex}"

    async def recorded(conn, marked: Write) -> None:
        await marked.execute(conn)  # no evidence of its own: the outbox's mark alone

    try:
        with pytest.raises(ConnectionResetError):
            await send_once(pool, mailer, key, message, request_id=None, on_sent=recorded)
        assert mailer.restarted.is_set()  # the failure was written down after the restart
        assert await pool.fetchval("SELECT state FROM mail_outbox WHERE mail_key = $1", key) == "failed"
        # The activity's retry: the relay never had it, so it is sent now, and only now.
        assert await send_once(pool, mailer, key, message, request_id=None, on_sent=recorded) is Sent.SENT
        assert await pool.fetchval("SELECT state FROM mail_outbox WHERE mail_key = $1", key) == "sent"
        assert await send_once(pool, mailer, key, message, request_id=None, on_sent=recorded) is Sent.ALREADY
    finally:
        await pool.close()
    delivered = [m for m in read_mailbox(mail_sink.directory) if m["Message-ID"] == message["Message-ID"]]
    assert len(delivered) == 1
