"""An e-mail in the privacy inbox that nobody files, once alerted, is named in one reminder each
day until it is filed or dismissed, with how many days it has waited and, where it reads like a
request, that the time to answer it may run from its receipt. Before, it was alerted once and never again,
while its statutory clock ran (RELIABILITY.md, row 34)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from activities.letter_templates import longdate, render_template_set
from activities.mail import Mailer
from activities.mailbox_alerts import alert_waiting
from devstack.smtp_sink import read_mailbox
from dsrflow.domain.deadlines import receipt_date
from dsrflow.stores.mailbox_store import decide
from policy.mailbox import load_mailbox_policy
from policy.model import load_policy
from schemas.vocabulary import Language
from tests.conftest import database_pool
from tests.support import unique_email
from tests.test_mailbox_console import filed, raw_mail


async def test_an_unfiled_message_is_reminded_each_day_until_filed(postgres, settings, mail_sink):
    # A database of its own: a reminder names every message alerted and unfiled in it.
    async with database_pool(postgres, "mailbox_reminders") as (url, pool):
        settings = settings.model_copy(update={"database_url": url})
        policy = load_policy(settings.policy_path).policy
        tz = policy.defaults.timezone
        arrived = datetime.now(UTC) - timedelta(days=10)
        senders = [unique_email("erase"), unique_email("lunch")]
        erase = await filed(settings, pool, raw_mail(senders[0], "Delete my data", date=arrived), arrived=arrived)
        lunch = await filed(settings, pool, raw_mail(senders[1], "Thanks for the lovely lunch yesterday",
                                                     date=arrived), arrived=arrived)
        today = datetime.now(ZoneInfo(tz)).date()

        async def checked(day) -> list:
            """The mail one check on `day` sends (the worker checks every 10 minutes)."""
            before = len(read_mailbox(mail_sink.directory))
            await alert_waiting(pool, Mailer(settings), policy, load_mailbox_policy(), day, settings.base_url)
            return read_mailbox(mail_sink.directory)[before:]

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
