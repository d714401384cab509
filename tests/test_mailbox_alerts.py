"""E-mails waiting past the policy's working days raise one staff alert, through the outbox, with
no personal data in it; an e-mail already alerted, or decided, raises none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from activities.mail import Mailer
from activities.mailbox_alerts import alert_waiting
from devstack.smtp_sink import read_mailbox
from dsrflow.domain.deadlines import working_days_after
from policy.mailbox import load_mailbox_policy
from policy.model import load_policy
from tests.support import unique_email
from tests.test_mailbox_console import filed, raw_mail


async def test_one_alert_for_messages_waiting_too_long(settings, pool, mail_sink):
    policy = load_policy(settings.policy_path).policy
    await pool.execute("UPDATE mailbox_messages SET alerted_at = now() WHERE alerted_at IS NULL")  # other tests' mail
    sender = unique_email("waiting")
    arrived = datetime.now(UTC) - timedelta(days=10)
    old = await filed(settings, pool, raw_mail(sender, "Delete my data", date=arrived), arrived=arrived)
    fresh = await filed(settings, pool, raw_mail(unique_email("fresh"), "Delete my data"))
    # The controller's day, as the worker asks (workers/mailbox_tasks.py): near midnight UTC it is
    # another day in Brussels, and the fresh message's receipt date is the controller's.
    today = datetime.now(ZoneInfo(policy.defaults.timezone)).date()
    before = len(read_mailbox(mail_sink.directory))

    named = await alert_waiting(pool, Mailer(settings), policy, load_mailbox_policy(), today, settings.base_url)

    assert named == [old]
    alerts = read_mailbox(mail_sink.directory)[before:]
    assert len(alerts) == 1 and alerts[0]["Subject"] == "[dsrflow] E-mails waiting in the privacy inbox: 1"
    assert alerts[0]["To"] == policy.controller.staff_email
    body = alerts[0].get_body(preferencelist=("plain",)).get_content()
    assert "longer than 2 working days" in body and sender not in alerts[0].as_string()
    # Asked again (the next check, another worker): nothing new is sent.
    assert await alert_waiting(pool, Mailer(settings), policy, load_mailbox_policy(), today, settings.base_url) == []
    assert len(read_mailbox(mail_sink.directory)) == before + 1
    assert await pool.fetchval("SELECT alerted_at IS NULL FROM mailbox_messages WHERE id = $1", fresh)
    # The fresh one alerts once its second working day has come.
    later = working_days_after(today, 2, "BE")
    assert await alert_waiting(pool, Mailer(settings), policy, load_mailbox_policy(), later, settings.base_url) == [fresh]


async def test_an_alert_a_dead_worker_handed_to_the_relay_is_recorded_not_sent_again(settings, pool, mail_sink):
    """A worker died after the relay took the alert for one message (the outbox says `data_sent`),
    and by the next check a second message waits too. Before, the two made a new set, a new key
    and a second alert naming the first message again, and the delivered one was never recorded
    (crash audit). Now the next check records the first alert and alerts the second message alone."""
    policy = load_policy(settings.policy_path).policy
    await pool.execute("UPDATE mailbox_messages SET alerted_at = now() WHERE alerted_at IS NULL")  # other tests' mail
    arrived = datetime.now(UTC) - timedelta(days=10)
    first = await filed(settings, pool, raw_mail(unique_email("first"), "Erase me", date=arrived), arrived=arrived)
    today = datetime.now(ZoneInfo(policy.defaults.timezone)).date()
    key = "mailbox-alert:handed-to-the-relay"
    await pool.execute("UPDATE mailbox_messages SET alert_key = $2 WHERE id = $1", first, key)
    await pool.execute("INSERT INTO mail_outbox (mail_key, message_id, state, claimed_at) "
                       "VALUES ($1, '<handed@dsrflow>', 'data_sent', now() - interval '1 hour')", key)
    second = await filed(settings, pool, raw_mail(unique_email("second"), "Erase me", date=arrived), arrived=arrived)
    before = len(read_mailbox(mail_sink.directory))

    named = await alert_waiting(pool, Mailer(settings), policy, load_mailbox_policy(), today, settings.base_url)

    assert sorted(named) == sorted([first, second])
    alerts = read_mailbox(mail_sink.directory)[before:]
    assert [a["Subject"] for a in alerts] == ["[dsrflow] E-mails waiting in the privacy inbox: 1"]  # the second's
    recorded = await pool.fetch("SELECT event_key, data FROM audit_events WHERE event_type = 'mail.alerted' "
                                "AND (data->'messages') ?| $1::text[] ORDER BY occurred_at", [first, second])
    assert [(r["event_key"], r["data"]["messages"]) for r in recorded][0] == (key, [first])
    assert [r["data"]["messages"] for r in recorded][1] == [second]
    assert await pool.fetchval("SELECT count(*) FROM mailbox_messages WHERE id = ANY($1::uuid[]) "
                               "AND alerted_at IS NOT NULL", [first, second]) == 2
