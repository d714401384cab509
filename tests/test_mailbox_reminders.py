"""An e-mail in the privacy inbox that nobody files, once alerted, is named in one reminder each
day until it is filed or dismissed, with how many days it has waited and, where it reads like a
request, that the time to answer it may run from its receipt. Before, it was alerted once and never again,
while its statutory clock ran (RELIABILITY.md, row 34). The reminder goes at the start of the
controller's morning, and one a killed worker handed to the relay is recorded with what it named,
whenever the next check comes. One database of their own for the module: a reminder names every
message alerted and unfiled in it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import aiosmtplib
import pytest

from activities.letter_templates import longdate, render_template_set
from activities.letters import message_id_for
from activities.mail import Mailer
from activities.mailbox_alerts import REMIND_AT, alert_waiting, remind_waiting
from devstack.smtp_sink import read_mailbox
from dsrflow.domain.deadlines import receipt_date, working_days_after
from dsrflow.stores.mailbox_store import decide
from policy.mailbox import load_mailbox_policy
from policy.model import load_policy
from schemas.vocabulary import Language
from tests.conftest import database_pool
from tests.support import settings_env, unique_email
from tests.test_mailbox_console import filed, raw_mail
from workers.mailbox_tasks import check_inbox


@pytest.fixture(scope="module")
async def inbox(postgres, settings) -> AsyncIterator[tuple]:
    async with database_pool(postgres, "mailbox_reminders") as (url, pool):
        yield settings.model_copy(update={"database_url": url}), pool


@pytest.fixture
async def clear(inbox) -> tuple:
    """The module's database with no message and no day's list in it: each test its own."""
    await inbox[1].execute("TRUNCATE mailbox_messages, mailbox_reminders")
    return inbox


def sent_since(mail_sink, before: int) -> list:
    return read_mailbox(mail_sink.directory)[before:]


async def test_an_unfiled_message_is_reminded_each_day_until_filed(clear, mail_sink):
    settings, pool = clear
    policy = load_policy(settings.policy_path).policy
    tz = policy.defaults.timezone
    arrived = datetime.now(UTC) - timedelta(days=10)
    senders = [unique_email("erase"), unique_email("lunch")]
    erase = await filed(settings, pool, raw_mail(senders[0], "Delete my data", date=arrived), arrived=arrived)
    lunch = await filed(settings, pool, raw_mail(senders[1], "Thanks for the lovely lunch yesterday",
                                                 date=arrived), arrived=arrived)
    today = datetime.now(ZoneInfo(tz)).date()

    async def checked(day) -> list:
        """The mail one morning's check on `day` sends (the worker checks every 10 minutes)."""
        before = len(read_mailbox(mail_sink.directory))
        await alert_waiting(pool, Mailer(settings), policy, load_mailbox_policy(), day, settings.base_url)
        await remind_waiting(pool, Mailer(settings), policy, datetime.combine(day, time(9, 30), ZoneInfo(tz)),
                             settings.base_url)
        return sent_since(mail_sink, before)

    [alert] = await checked(today)
    assert alert["Subject"] == "[dsrflow] E-mails waiting in the privacy inbox: 2"
    assert await checked(today) == []  # alerted today: no reminder the same day

    received = receipt_date(arrived, tz)
    [reminder] = await checked(today + timedelta(days=1))
    assert reminder["Subject"] == "[dsrflow] Still waiting in the privacy inbox: 2"
    assert reminder["To"] == policy.controller.staff_email
    body = " ".join(reminder.get_body(preferencelist=("plain",)).get_content().split())
    waited = (today + timedelta(days=1) - received).days
    assert body.count(f"Reached us on {longdate(received, 'en')}, {waited} days ago.") == 2
    # The erasure request's month may run; the thank-you note is not a request.
    assert body.count("It reads like a request: the time to answer it may run from") == 1
    assert not any(sender in reminder.as_string() for sender in senders)  # no personal data
    event = await pool.fetchrow("SELECT data FROM audit_events WHERE event_type = 'mail.reminded'")
    assert sorted(event["data"]["messages"]) == sorted([erase, lunch])
    assert await checked(today + timedelta(days=1)) == []  # once a day, however many checks

    async with pool.acquire() as conn:  # the erasure request is dismissed (say, sent again by post)
        assert await decide(conn, erase, "dismissed", actor="agent:test", reason="duplicate")
    [reminder] = await checked(today + timedelta(days=2))
    assert reminder["Subject"] == "[dsrflow] Still waiting in the privacy inbox: 1"
    body = " ".join(reminder.get_body(preferencelist=("plain",)).get_content().split())
    assert f"{waited + 1} days ago." in body and "It reads like a request" not in body

    async with pool.acquire() as conn:
        assert await decide(conn, lunch, "dismissed", actor="agent:test", reason="not a request")
    assert await checked(today + timedelta(days=3)) == []  # nothing waits: no reminder


async def alerted_yesterday(settings, pool, tag: str) -> str:
    """A message whose alert went the day before the real one (the reminders' days are ahead)."""
    arrived = datetime.now(UTC) - timedelta(days=10)
    message = await filed(settings, pool, raw_mail(unique_email(tag), "Erase me", date=arrived), arrived=arrived)
    await pool.execute("UPDATE mailbox_messages SET alerted_at = now() - interval '1 day' WHERE id = $1", message)
    return message


async def test_the_reminder_goes_at_the_start_of_the_controllers_morning_once(clear, mail_sink):
    """Before, the first check after the controller's midnight sent it, at 00:0x. Now the first
    check at 09:00 or later does, on a fixed clock: none before, one after, still one on the
    checks after it; a worker down at 09:00 sends it when it is back that day."""
    settings, pool = clear
    policy = load_policy(settings.policy_path).policy
    tz = ZoneInfo(policy.defaults.timezone)
    waiting = await alerted_yesterday(settings, pool, "morning")
    day = datetime.now(tz).date() + timedelta(days=5)

    async def reminded(on: date, at: time) -> list:
        before = len(read_mailbox(mail_sink.directory))
        named = await remind_waiting(pool, Mailer(settings), policy, datetime.combine(on, at, tz), settings.base_url)
        assert len(sent_since(mail_sink, before)) == (1 if named else 0)
        return named

    assert REMIND_AT == time(9)
    assert await reminded(day, time(0, 5)) == [] and await reminded(day, time(8, 59, 59)) == []
    assert await reminded(day, time(9, 0)) == [waiting]
    assert await reminded(day, time(9, 10)) == [] and await reminded(day, time(23, 50)) == []
    # The next day the worker is down at 09:00 and back at 15:40 (in UTC, a clock of another zone).
    back = datetime.combine(day + timedelta(days=1), time(15, 40), tz).astimezone(UTC)
    assert await remind_waiting(pool, Mailer(settings), policy, back, settings.base_url) == [waiting]
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_type = 'mail.reminded' "
                               "AND data->'messages' ? $1", waiting) == 2


async def test_a_messages_first_alert_goes_at_the_start_of_the_controllers_morning_once(clear, mail_sink):
    """Before, the first check after the controller's midnight on the day a message was due sent its
    alert, at 00:0x. Now the worker's check sends it from REMIND_AT on that day, on a fixed clock:
    none before, one at 09:00, none after it; a worker down from 09:00 that day sends it when it is
    back, even the next night."""
    settings, pool = clear
    policy, rules = load_policy(settings.policy_path).policy, load_mailbox_policy()
    tz = ZoneInfo(policy.defaults.timezone)
    arrived = datetime.now(UTC) - timedelta(days=10)

    async def waiting(tag: str) -> str:
        return await filed(settings, pool, raw_mail(unique_email(tag), "Erase me", date=arrived), arrived=arrived)

    async def alerted(on: date, at: time) -> list:
        before = len(read_mailbox(mail_sink.directory))
        await check_inbox(pool, Mailer(settings), policy, rules, datetime.combine(on, at, tz), settings.base_url, None)
        return [m["Subject"] for m in sent_since(mail_sink, before)]

    first = await waiting("dawn")
    due = working_days_after(receipt_date(arrived, tz.key), rules.alert_after_working_days, policy.defaults.country)
    for at in (time(0, 5), time(8, 59, 59)):
        assert await alerted(due, at) == []
    one = ["[dsrflow] E-mails waiting in the privacy inbox: 1"]
    assert await alerted(due, time(9)) == one and await alerted(due, time(9, 10)) == []
    second = await waiting("night")  # due the same day; the worker is down from 09:10 to 03:00
    assert await alerted(due + timedelta(days=1), time(3)) == one
    recorded = await pool.fetch("SELECT data FROM audit_events WHERE event_type = 'mail.alerted' "
                                "AND data->'messages' ?| $1 ORDER BY seq", [first, second])
    assert [r["data"]["messages"] for r in recorded] == [[first], [second]]


class _RefusingAlerts(Mailer):
    """The relay refusing for good every first alert of a message (554 to its DATA), taking the rest."""

    async def send(self, message, **kwargs) -> None:
        if message["Subject"].startswith("[dsrflow] E-mails waiting"):
            raise aiosmtplib.SMTPResponseException(554, "5.7.1 rejected by policy")
        await super().send(message, **kwargs)


async def test_an_alert_the_relay_refuses_for_good_holds_back_no_reminder(clear, mail_sink):
    """The check alerted first: a message's first alert the relay refused for good (a policy
    rejection) failed every check before its reminder and the unreadable-mailbox alert, so messages
    alerted before went unreminded for as long as the refusal lasted. Each part now runs whatever
    another did (dsrflow/infra/pieces.py); the check still fails, and the alert is tried again."""
    settings, pool = clear
    policy, rules = load_policy(settings.policy_path).policy, load_mailbox_policy()
    tz = ZoneInfo(policy.defaults.timezone)
    arrived, today = datetime.now(UTC) - timedelta(days=10), datetime.now(tz).date()
    old, new = [await filed(settings, pool, raw_mail(unique_email(tag), "Erase me", date=arrived), arrived=arrived)
                for tag in ("old", "new")]
    await pool.execute("UPDATE mailbox_messages SET alerted_at = $2 WHERE id = $1::uuid", old,
                       datetime.combine(today - timedelta(days=1), time(9, 30), tz))
    before = len(read_mailbox(mail_sink.directory))
    with pytest.raises(aiosmtplib.SMTPResponseException):
        await check_inbox(pool, _RefusingAlerts(settings), policy, rules, datetime.combine(today, time(9, 30), tz),
                          settings.base_url, None)
    assert [m["Subject"] for m in sent_since(mail_sink, before)] == ["[dsrflow] Still waiting in the privacy inbox: 1"]
    reminded = await pool.fetch("SELECT data FROM audit_events WHERE event_type = 'mail.reminded' "
                                "AND data->'messages' ?| $1", [old, new])
    assert [r["data"]["messages"] for r in reminded] == [[old]]


# One check's reminder in a process of its own, on a fixed clock (argv[1]), to be killed at a
# failpoint (DSRFLOW_FAILPOINTS, dsrflow/infra/failpoints.py): what the worker's check runs.
REMIND = """
import asyncio, sys
from datetime import datetime
from activities.mail import Mailer
from activities.mailbox_alerts import remind_waiting
from dsrflow.infra.db import create_pool
from dsrflow.settings import Settings
from policy.model import load_policy

async def check() -> None:
    settings = Settings()
    pool = await create_pool(settings.database_url)
    await remind_waiting(pool, Mailer(settings), load_policy(settings.policy_path).policy,
                         datetime.fromisoformat(sys.argv[1]), settings.base_url)

asyncio.run(check())
"""


async def test_a_reminder_a_killed_worker_handed_to_the_relay_is_recorded_the_next_day_with_what_it_named(
        clear, mail_sink, tmp_path):
    """The check's process dies as the relay accepted the day's reminder, before it was recorded,
    and no check runs again that day. Before, the next day's reminder had another key, and the
    one that went was never recorded (no `mail.reminded`); a check the same day recorded the
    messages waiting then, not those it named. Now the next day's first check records it (with
    `mail.unconfirmed`) naming what it named, though one of them was filed since, sends nothing
    again for that day, and reminds of the message still waiting."""
    settings, pool = clear
    policy = load_policy(settings.policy_path).policy
    tz = ZoneInfo(policy.defaults.timezone)
    first, second = [await alerted_yesterday(settings, pool, tag) for tag in ("first", "second")]
    day = datetime.now(tz).date() + timedelta(days=10)
    before = len(read_mailbox(mail_sink.directory))
    env = {**os.environ, **settings_env(settings), "DSRFLOW_FAILPOINTS": "mail-accepted~mailbox-reminder:"}
    with open(tmp_path / "check.log", "wb") as log:
        killed = subprocess.run([sys.executable, "-c", REMIND, datetime.combine(day, time(9, 5), tz).isoformat()],
                                env=env, stdout=log, stderr=subprocess.STDOUT, timeout=60)
    assert killed.returncode == -9, (tmp_path / "check.log").read_text()[-3000:]
    key = f"mailbox-reminder:{day.isoformat()}"
    [went] = sent_since(mail_sink, before)
    assert went["Message-ID"] == message_id_for(key) and went["Subject"].endswith(": 2")
    async with pool.acquire() as conn:  # filed after the reminder named it
        assert await decide(conn, first, "dismissed", actor="agent:test", reason="not a request")

    after = datetime.combine(day + timedelta(days=1), time(9, 5), tz)
    assert await remind_waiting(pool, Mailer(settings), policy, after, settings.base_url) == [second]
    [reminder] = sent_since(mail_sink, before + 1)  # the next day's: the first is not sent again
    next_key = f"mailbox-reminder:{(day + timedelta(days=1)).isoformat()}"
    recorded = await pool.fetch("SELECT event_type, event_key, data FROM audit_events WHERE event_key IN ($1, $2) "
                                "OR data->>'mail_key' = $1 ORDER BY seq", key, next_key)
    assert [(r["event_type"], r["data"].get("messages")) for r in recorded] == [
        ("mail.unconfirmed", None), ("mail.reminded", [first, second]), ("mail.reminded", [second])]
    assert recorded[1]["event_key"] == key and recorded[1]["data"]["message_id"] == went["Message-ID"]
    assert reminder["Message-ID"] == message_id_for(next_key) and reminder["Subject"].endswith(": 1")
    assert await pool.fetchval("SELECT state FROM mail_outbox WHERE mail_key = $1", key) == "sent"


async def test_a_reminder_that_never_went_is_withdrawn_the_next_day_not_sent_late(clear, mail_sink):
    """Its check died before the relay had it (the outbox's claim, hours old) and no check ran
    again that day: the next day's first check withdraws it, sends that day's own reminder alone,
    and records nothing for the one that never went."""
    settings, pool = clear
    policy = load_policy(settings.policy_path).policy
    tz = ZoneInfo(policy.defaults.timezone)
    waiting = await alerted_yesterday(settings, pool, "late")
    day = datetime.now(tz).date() + timedelta(days=15)
    key = f"mailbox-reminder:{day.isoformat()}"
    await pool.execute("INSERT INTO mailbox_reminders (day, messages) VALUES ($1, $2::uuid[])", day, [waiting])
    await pool.execute("INSERT INTO mail_outbox (mail_key, message_id, state, claimed_at) "
                       "VALUES ($1, $2, 'claimed', now() - interval '10 hours')", key, message_id_for(key))
    before = len(read_mailbox(mail_sink.directory))
    after = datetime.combine(day + timedelta(days=1), time(9, 5), tz)
    assert await remind_waiting(pool, Mailer(settings), policy, after, settings.base_url) == [waiting]
    [reminder] = sent_since(mail_sink, before)
    assert reminder["Message-ID"] == message_id_for(f"mailbox-reminder:{(day + timedelta(days=1)).isoformat()}")
    assert await pool.fetchval("SELECT state FROM mail_outbox WHERE mail_key = $1", key) == "withdrawn"
    assert not await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_key = $1", key)


@pytest.mark.parametrize("language", [lang.value for lang in Language])
@pytest.mark.parametrize("name", ["inbox_alert", "inbox_reminder"])
def test_the_inbox_alerts_read_in_each_staff_language(name: str, language: str):
    """They go in the policy's staff language: each renders every figure it is given, in its own
    words, with no placeholder left unfilled (the templates' StrictUndefined catches a missing one)."""
    context = {"count": 31, "days": 2, "oldest": date(2026, 11, 27), "more": 1, "timezone": "Europe/Brussels",
               "messages": [{"received": date(2026, 11, 27), "days": 8, "request": True}],
               "inbox_url": "https://privacy.example.test/console/inbox"}
    rendered = render_template_set(name, context, language)
    english = render_template_set(name, context, "en")
    for part in (rendered.subject, rendered.text, rendered.html):
        assert "%(" not in part and "{{" not in part, part
    for part in (rendered.text, rendered.html):
        assert "31" in part and "/console/inbox" in part, part
    assert (rendered.text != english.text) == (language != "en")
