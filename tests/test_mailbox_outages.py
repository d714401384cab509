"""A privacy mailbox that cannot be read is an outage on record (migration 0043), not one
worker's memory: a worker restarted goes on with the outage its predecessor began, staff are
alerted once it has lasted 15 minutes and again each morning while it lasts, and the alert and
its record are once in effect across a worker killed as the relay took it. Before, a restarted
worker started its 15 minutes anew, the alert went once per UTC day at most, and one a killed
worker had handed to the relay was never recorded (docs/mailbox.md, "If the worker dies")."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from activities.letters import message_id_for
from activities.mail import Mailer
from activities.mailbox_alerts import alert_unreadable
from devstack.smtp_sink import read_mailbox
from policy.model import load_policy
from tests.support import settings_env
from tests.test_mailbox_reader import (  # noqa: F401 (imap: the IMAP stand-in, a fixture)
    _true,
    eventually,
    imap,
    make_reader,
    reader_settings,
    running,
)

REFUSED = "MailboxError: the IMAP server refused the login: NO"


async def failed_once(reader) -> None:
    """The reader's sessions run until one has failed (a refused login)."""
    async with running(reader):
        await eventually(lambda: _true(reader.failing_since is not None))


async def read_through(settings, pool, server, reader) -> None:
    """The password is put right: the reader reads the mailbox through, which ends its outage."""
    reader.settings = reader_settings(settings, server, imap_folder=reader.settings.imap_folder)
    async with running(reader):
        await eventually(lambda: pool.fetchval("SELECT NOT EXISTS (SELECT FROM mailbox_outages WHERE mailbox = $1 "
                                               "AND ended_at IS NULL)", reader.cursor_key))


async def test_an_outage_outlives_its_worker_and_is_alerted_each_morning_while_it_lasts(
        settings, pool, imap, mail_sink):  # noqa: F811 (the fixture imported)
    """A worker killed ten minutes into an outage left it on record; the next worker's reader
    fails too, and the outage keeps its start: staff are alerted 15 minutes after it began, not
    after this worker's own 15 minutes. On a fixed clock: once that day, none the next day before
    09:00 in the controller's timezone, one at 09:00, one the day after; once the reader reads the
    mailbox through again, the outage's end is recorded once, and no alert follows."""
    policy = load_policy(settings.policy_path).policy
    tz, mailer = ZoneInfo(policy.defaults.timezone), Mailer(settings)
    reader = make_reader(settings, pool, imap, password="rotated-away-xyz")
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    await pool.execute("INSERT INTO mailbox_outages (mailbox, since, failure) VALUES ($1, $2, $3)",
                       reader.cursor_key, since, REFUSED)  # what the killed worker's reader left
    await failed_once(reader)
    outage, kept = await pool.fetchrow("SELECT id, since FROM mailbox_outages WHERE mailbox = $1 "
                                       "AND ended_at IS NULL", reader.cursor_key)
    assert kept == since

    async def alerted(now: datetime) -> int:
        before = len(read_mailbox(mail_sink.directory))
        sent = await alert_unreadable(pool, mailer, policy, reader, now)
        assert len(read_mailbox(mail_sink.directory)) - before == int(sent)
        return int(sent)

    first = since + timedelta(minutes=15, seconds=1)  # this worker's reader: failing for 5 minutes
    assert await alerted(since + timedelta(minutes=14)) == 0
    assert await alerted(first) == 1 and await alerted(first + timedelta(minutes=10)) == 0
    day = first.astimezone(tz).date()
    morning = [datetime.combine(day + timedelta(days=1), at, tz) for at in (time(8, 59), time(9), time(9, 10))]
    assert [await alerted(now) for now in morning] == [0, 1, 0]
    assert await alerted(datetime.combine(day + timedelta(days=2), time(9, 30), tz)) == 1

    await read_through(settings, pool, imap, reader)
    assert await alerted(datetime.combine(day + timedelta(days=3), time(9, 30), tz)) == 0
    recorded = await pool.fetch("SELECT event_key, data FROM audit_events WHERE event_key LIKE $1 ORDER BY seq",
                                f"mailbox-unreadable:{outage}:%")
    assert [r["event_key"] for r in recorded] == [
        f"mailbox-unreadable:{outage}:{(day + timedelta(days=n)).isoformat()}" for n in range(3)]
    assert {(r["data"]["since"], r["data"]["failure"]) for r in recorded} == {(since.isoformat(), REFUSED)}
    [ended] = await pool.fetch("SELECT data FROM audit_events WHERE event_type = 'mail.readable' "
                               "AND data->>'outage' = $1", str(outage))
    assert ended["data"]["since"] == since.isoformat()


# A worker's reader and its check in a process of its own, on a fixed clock for the check
# (argv[1]), to be killed at a failpoint (DSRFLOW_FAILPOINTS, dsrflow/infra/failpoints.py).
CHECK = """
import asyncio, sys
from datetime import datetime
from activities.mail import Mailer
from activities.mailbox_alerts import alert_unreadable
from activities.mailbox_reader import MailboxReader
from dsrflow.crypto.keys import load_secret_key
from dsrflow.infra.db import create_pool
from dsrflow.settings import Settings
from policy.mailbox import load_mailbox_policy
from policy.model import load_policy

async def check() -> None:
    settings = Settings()
    pool = await create_pool(settings.database_url)
    policy = load_policy(settings.policy_path).policy
    reader = MailboxReader(settings, pool, load_secret_key(settings), load_mailbox_policy(),
                           our_sender=policy.controller.sender_email)
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    while reader.failing_since is None:
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await alert_unreadable(pool, Mailer(settings), policy, reader, datetime.fromisoformat(sys.argv[1]))

asyncio.run(check())
"""


async def test_an_alert_a_killed_worker_handed_to_the_relay_is_recorded_once_the_mailbox_reads_again(
        settings, pool, imap, mail_sink, tmp_path):  # noqa: F811 (the fixture imported)
    """The worker's reader fails, and its check dies as the relay accepted the alert, before it was
    recorded; the next worker's reader reads the mailbox through. Before, the outage and the alert
    were that worker's memory: `mail.unreadable` was never written. Now the next check records it
    (with `mail.unconfirmed`) without sending it again, and the outage's end once."""
    policy = load_policy(settings.policy_path).policy
    reader = make_reader(settings, pool, imap, password="rotated-away-xyz")
    now = datetime.now(UTC) + timedelta(minutes=16)
    env = {**os.environ, **settings_env(reader.settings), "DSRFLOW_FAILPOINTS": "mail-accepted~mailbox-unreadable:"}
    before = len(read_mailbox(mail_sink.directory))
    with open(tmp_path / "check.log", "wb") as log:
        killed = await asyncio.create_subprocess_exec(sys.executable, "-c", CHECK, now.isoformat(), env=env,
                                                      stdout=log, stderr=log)
        assert await asyncio.wait_for(killed.wait(), 60) == -9, (tmp_path / "check.log").read_text()[-3000:]
    [went] = read_mailbox(mail_sink.directory)[before:]
    assert went["Subject"] == "[dsrflow] The privacy mailbox cannot be read"

    await read_through(settings, pool, imap, reader)
    outage = await pool.fetchval("SELECT id FROM mailbox_outages WHERE mailbox = $1 AND ended_at IS NOT NULL",
                                 reader.cursor_key)
    key = f"mailbox-unreadable:{outage}:{now.astimezone(ZoneInfo(policy.defaults.timezone)).date().isoformat()}"
    assert went["Message-ID"] == message_id_for(key)

    async def recorded_by_a_check() -> list:
        """The next check's records. The dead sender's lock on its message lasts until PostgreSQL
        has ended its session, which a loaded machine may not have yet: a check then hears that a
        sender may be at it and records nothing, and the check after it (a minute on) does."""
        for _ in range(50):
            assert not await alert_unreadable(pool, Mailer(settings), policy, reader, now + timedelta(minutes=10))
            recorded = await pool.fetch("SELECT event_type, data FROM audit_events WHERE event_key IN ($1, $2) "
                                        "OR data->>'mail_key' = $1 ORDER BY seq", key, f"mailbox-readable:{outage}")
            if len(recorded) > 1:
                return recorded
            await asyncio.sleep(0.2)
        return recorded

    recorded = await recorded_by_a_check()
    assert len(read_mailbox(mail_sink.directory)) == before + 1  # not sent again
    assert [r["event_type"] for r in recorded] == ["mail.readable", "mail.unconfirmed", "mail.unreadable"]
    assert recorded[2]["data"]["message_id"] == went["Message-ID"]
