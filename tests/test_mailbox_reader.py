"""The privacy mailbox's IMAP reader against a real IMAP4rev1 server over loopback TLS
(tests/imap_stand_in.py): messages filed once and marked read, IDLE and polling, a server
restart, a crash between storing and marking read, a refused login that never logs the password
and, lasting, is alerted to staff."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest
import structlog
from pydantic import SecretStr

from activities.letter_templates import render_template_set
from activities.mail import Mailer
from activities.mailbox_alerts import alert_unreadable
from activities.mailbox_intake import file_message
from activities.mailbox_reader import MailboxReader
from devstack.smtp_sink import read_mailbox
from dsrflow.crypto.hashing import keyed_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.inbound_mail import content_fingerprint
from dsrflow.infra.metrics import REGISTRY
from policy.mailbox import load_mailbox_policy
from policy.model import load_policy
from schemas.vocabulary import Language
from tests.imap_stand_in import ImapStandIn
from tests.support import OUR_SENDER
from workers.mailbox_tasks import mailbox_tasks

PASSWORD = "s3cret-imap-password"


def mail(text: str, *, sender: str = "ada@example.com", subject: str = "My data", date: datetime | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = f"Ada <{sender}>"
    message["To"] = "privacy@onetagger.com"
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content(f"{text}\n{uuid.uuid4()}")
    return message.as_bytes()


async def rows_for(pool, settings, raw: bytes) -> list:
    digest = keyed_hash(load_secret_key(settings), "mail-content", content_fingerprint(raw))
    return await pool.fetch("SELECT * FROM mailbox_messages WHERE content_hash = $1", digest)


async def eventually(check, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        assert loop.time() < end, "not within the time allowed"
        await asyncio.sleep(0.05)


@pytest.fixture
async def imap(tmp_path) -> AsyncIterator[ImapStandIn]:
    server = ImapStandIn(tmp_path, user="privacy@onetagger.com", password=PASSWORD)
    await server.start()
    yield server
    with contextlib.suppress(AssertionError):
        await server.stop()


def reader_settings(settings, imap: ImapStandIn, **extra):
    return settings.model_copy(update={
        "imap_host": "127.0.0.1", "imap_port": imap.port, "imap_username": imap.user,
        "imap_password": SecretStr(extra.pop("password", PASSWORD)),
        "imap_ca_file": imap.cert, "imap_poll_seconds": extra.pop("poll", 0.2),
        # Each test its own folder name: its own cursor.
        "imap_folder": f"INBOX-{uuid.uuid4().hex[:6]}", **extra})


@contextlib.asynccontextmanager
async def running(reader: MailboxReader) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def make_reader(settings, pool, imap, **extra) -> MailboxReader:
    s = reader_settings(settings, imap, **extra)
    return MailboxReader(s, pool, load_secret_key(s), load_mailbox_policy(), our_sender=OUR_SENDER)


async def test_messages_are_filed_once_marked_read_and_new_ones_arrive_by_idle(settings, pool, imap):
    first = mail("Please delete my data.")
    imap.deliver(first)
    reader = make_reader(settings, pool, imap)
    async with running(reader):
        await eventually(lambda: _count(pool, settings, first))
        second = mail("Verwijder mijn gegevens alstublieft.", subject="Verzoek")
        imap.deliver(second)  # while the reader idles: the server's EXISTS wakes it
        await eventually(lambda: _count(pool, settings, second))
    assert any(c.startswith("IDLE") for c in imap.commands)
    limit = load_mailbox_policy().limits.message_bytes + 1
    assert f"UID FETCH 1 (UID INTERNALDATE RFC822.SIZE BODY.PEEK[]<0.{limit}>)" in imap.commands
    assert imap.seen() == [1, 2]
    [row] = await rows_for(pool, settings, second)
    assert (row["source"], row["status"], row["suggested_type"], row["suggested_language"]) == (
        "imap", "new", "erasure", "nl")
    # Reading the whole mailbox again (a lost cursor) stores nothing twice.
    await pool.execute("DELETE FROM mailbox_cursors WHERE mailbox = $1", reader.cursor_key)
    async with running(reader):
        await eventually(lambda: _cursor_at(pool, reader, 2))
    assert len(await rows_for(pool, settings, first)) == 1 and len(await rows_for(pool, settings, second)) == 1


async def test_the_worker_runs_a_reader_only_when_imap_host_names_a_mailbox(settings, pool, imap):
    """workers/mailbox_tasks.py imports the reader only then (a worker without it starts 15 ms
    of CPU sooner): both ways, the tasks the worker runs."""
    policy = load_policy(settings.policy_path).policy
    stop = asyncio.Event()
    stop.set()  # each task ends at once
    without = mailbox_tasks(settings.model_copy(update={"imap_host": None}), pool, stop, policy)
    reading = mailbox_tasks(reader_settings(settings, imap), pool, stop, policy)
    await asyncio.wait_for(asyncio.gather(*without, *reading), 10)
    assert [t.get_name() for t in without] == ["inbox alerts"]
    assert [t.get_name() for t in reading] == ["inbox alerts", "mailbox reader"]


async def test_a_message_over_the_size_limit_is_fetched_no_further_than_the_limit(settings, pool, imap):
    """A message of any size was fetched whole into the worker's memory (200 MB for a 200 MB one)
    only to be filed with its headers alone, being over the limit. Now only the limit and one byte
    are fetched (a partial fetch): the message is filed as before, with its own size, and what was
    read is that beginning alone (the stored content hash is of those bytes)."""
    rules = load_mailbox_policy()
    limit = 100_000
    rules = rules.model_copy(update={"limits": rules.limits.model_copy(update={"message_bytes": limit})})
    big = mail("Please delete my data.") + b"x" * 1_000_000
    imap.deliver(big)
    s = reader_settings(settings, imap)
    reader = MailboxReader(s, pool, load_secret_key(s), rules, our_sender=OUR_SENDER)
    async with running(reader):
        await eventually(lambda: _count(pool, settings, big[:limit + 1]))
    assert f"UID FETCH 1 (UID INTERNALDATE RFC822.SIZE BODY.PEEK[]<0.{limit + 1}>)" in imap.commands
    [row] = await rows_for(pool, settings, big[:limit + 1])
    assert row["size_bytes"] == len(big) and await rows_for(pool, settings, big) == []


async def _count(pool, settings, raw) -> bool:
    return len(await rows_for(pool, settings, raw)) == 1


async def _cursor_at(pool, reader, uid) -> bool:
    return await pool.fetchval("SELECT last_uid FROM mailbox_cursors WHERE mailbox = $1", reader.cursor_key) == uid


async def test_a_crash_after_storing_before_marking_read_files_nothing_twice(settings, pool, imap):
    raw = mail("I want a copy of my data.")
    imap.deliver(raw)
    reader = make_reader(settings, pool, imap)
    # The crash: the message was stored, then the process died before \Seen and the cursor.
    stored = await file_message(pool, reader.secret, reader.rules, raw, arrived_at=datetime.now(UTC), source="imap",
                                our_sender=OUR_SENDER)
    assert stored is not None and stored.created
    async with running(reader):
        await eventually(lambda: _cursor_at(pool, reader, 1))
    assert [r["id"] for r in await rows_for(pool, settings, raw)] == [uuid.UUID(stored.message_id)]
    assert imap.seen() == [1]


async def test_polling_without_idle_and_a_server_restart(settings, pool, tmp_path):
    imap = ImapStandIn(tmp_path, user="privacy@onetagger.com", password=PASSWORD, idle=False)
    await imap.start()
    reader = make_reader(settings, pool, imap)
    async with running(reader):
        first = mail("Auskunft bitte.")
        imap.deliver(first)
        await eventually(lambda: _count(pool, settings, first))
        await eventually(lambda: _true("NOOP" in imap.commands))
        assert not any(c.startswith("IDLE") for c in imap.commands)
        await imap.stop()  # the mail server restarts; mail arrives meanwhile
        second = mail("Je demande le droit d'accès.")
        imap.deliver(second)
        await asyncio.sleep(0.5)
        await imap.start()
        await eventually(lambda: _count(pool, settings, second), timeout=20)
    await imap.stop()
    assert reader.sessions >= 2


async def test_a_refused_login_is_retried_and_never_logs_the_password(settings, pool, imap):
    reader = make_reader(settings, pool, imap, password="wrong-password-xyz")
    with structlog.testing.capture_logs() as logs:
        async with running(reader):
            await eventually(lambda: _true(reader.sessions >= 2), timeout=10)
    refused = [e for e in logs if e["event"] == "mailbox session ended"]
    assert refused and refused[0]["error"] == "MailboxError" and "login" in refused[0]["refused"]
    assert "wrong-password-xyz" not in repr(logs) and PASSWORD not in repr(logs)
    assert "wrong-password-xyz" not in repr(reader.settings)


async def _true(value: bool) -> bool:
    return value


async def test_the_arrival_is_the_servers_internal_date(settings, pool, imap):
    arrived = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    raw = mail("Delete my data.", date=datetime(2001, 1, 1, tzinfo=UTC))  # a forged, ancient Date
    imap.deliver(raw, internal_date=arrived)
    async with running(make_reader(settings, pool, imap)):
        await eventually(lambda: _count(pool, settings, raw))
    [row] = await rows_for(pool, settings, raw)
    assert row["arrived_at"] == arrived and row["received_at"] == arrived


async def test_a_mailbox_that_cannot_be_read_is_alerted_to_staff_once_and_cleared_once_read(
        settings, pool, imap, mail_sink):
    """A refused login (a rotated password) used to be a log line only, while the privacy e-mails
    it kept out of the Inbox ran their statutory clocks. After 15 minutes staff get one alert
    saying which mailbox and why (never the login), then one each morning while it lasts
    (tests/test_mailbox_outages.py); the gauge the alert rule reads is 1; once the reader reads
    the mailbox through again, both clear."""
    policy = load_policy(settings.policy_path).policy
    reader = make_reader(settings, pool, imap, password="rotated-away-xyz")
    async with running(reader):
        await eventually(lambda: _true(reader.failing_since is not None))
    since = reader.failing_since
    assert since is not None and reader.failure and "refused the login" in reader.failure
    assert REGISTRY.get_sample_value("dsrflow_mailbox_reader_failing") == 1
    before = len(read_mailbox(mail_sink.directory))
    mailer = Mailer(settings)
    assert not await alert_unreadable(pool, mailer, policy, reader, since + timedelta(minutes=5))  # not yet
    assert await alert_unreadable(pool, mailer, policy, reader, since + timedelta(minutes=16))
    assert not await alert_unreadable(pool, mailer, policy, reader, since + timedelta(minutes=26))  # once that day
    [alert] = read_mailbox(mail_sink.directory)[before:]
    assert alert["Subject"] == "[dsrflow] The privacy mailbox cannot be read" and alert["To"] == policy.controller.staff_email
    body = " ".join(alert.get_body(preferencelist=("plain",)).get_content().split())
    assert reader.settings.imap_folder in body and "refused the login" in body and "It keeps trying" in body
    assert "rotated-away-xyz" not in alert.as_string() and imap.user not in body  # (the staff address is the login here)

    reader.settings = reader_settings(settings, imap, imap_folder=reader.settings.imap_folder)  # the right password
    async with running(reader):
        await eventually(lambda: _true(reader.failing_since is None))
    assert reader.failure is None and REGISTRY.get_sample_value("dsrflow_mailbox_reader_failing") == 0
    assert not await alert_unreadable(pool, mailer, policy, reader, since + timedelta(hours=2))


@pytest.mark.parametrize("language", [lang.value for lang in Language])
def test_the_unreadable_mailbox_alert_reads_in_each_staff_language(language: str):
    """The alert goes in the policy's staff language: each of them renders with the folder, the
    server and the failure, and says it in its own words (not the English text)."""
    context = {"since": datetime(2026, 12, 4, 9, 30, tzinfo=UTC), "failure": "LOGIN refused: AUTHENTICATIONFAILED",
               "folder": "INBOX", "host": "imap.example.net"}
    rendered = render_template_set("mailbox_unreadable", context, language)
    english = render_template_set("mailbox_unreadable", context, "en")
    for part in (rendered.text, rendered.html):
        assert "INBOX" in part and "imap.example.net" in part and "AUTHENTICATIONFAILED" in part
    assert (rendered.subject != english.subject) == (language != "en")
