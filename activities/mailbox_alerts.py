"""Staff alerts about the privacy inbox: e-mails waiting too long, and a mailbox that cannot be read.

A message still `new` once the policy's working days (policy/mailbox.yaml
`alert_after_working_days`, on the controller's calendar) have passed since it reached us is
named in one alert, and only one, sent by the first check at or after `REMIND_AT` on the day it
becomes due (a worker down then sends it once back): the alert's key is made of the messages it names, each message
is bound to it (`alert_key`) before it goes, it goes through the outbox (activities/outbox.py)
like every letter, and the messages are marked alerted in the same transaction that marks it
sent. From the controller's next day on, a message alerted and still not filed is named in one
reminder a day (`remind_waiting`), at the start of the controller's morning (`REMIND_AT`), until
it is filed or dismissed: its statutory clock may run from its receipt. Each day's list is
written before its reminder goes (`mailbox_reminders`), so whichever check records the reminder,
that day or a later one after a worker died, records what it named. A mailbox the reader cannot
read is alerted (`alert_unreadable`) from its outage on record (migration 0043), once it has
lasted 15 minutes and then each morning while it lasts, each day's alert written before it goes.
Like every staff alert they carry no personal data: how many, since when, and where to look.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from functools import partial
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import asyncpg

from activities.letter_message import set_subject
from activities.letter_templates import render_template_set
from activities.letters import message_id_for
from activities.mail import Mailer
from activities.outbox import Sent, send_once
from activities.outbox_withdrawal import settle
from dsrflow.domain.audit import append_event
from dsrflow.domain.deadlines import receipt_date, working_days_after
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.writes import Write
from dsrflow.stores.mailbox_store import finish_interrupted_converts, open_outage
from policy.mailbox import MailboxPolicy
from policy.model import Policy

if TYPE_CHECKING:
    # The reader (IMAP, the sender checks) only as a type: a worker imports it only when it reads
    # a mailbox (workers/mailbox_tasks.py).
    from activities.mailbox_reader import MailboxReader

# When the day's first alerts and reminder go, in the controller's timezone (the policy's): the
# start of staff's working morning. Before, the first check after midnight sent them, at 00:0x.
REMIND_AT = time(9)
# How many messages a reminder lists one by one (oldest first); it counts them all.
REMINDER_LISTS = 30


def alerts_due_by(now: datetime, timezone: str) -> date:
    """The controller's last day whose first alerts are due at `now`: its own from `REMIND_AT`,
    the day before until then. Before, the first check after the controller's midnight sent a
    message's alert, at 00:0x; now it is there as staff start their day, like the reminder."""
    local = now.astimezone(ZoneInfo(timezone))
    return local.date() if local.time() >= REMIND_AT else local.date() - timedelta(days=1)


async def alert_waiting(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, rules: MailboxPolicy, today: date,
                        base_url: str) -> list[str]:
    """Alert staff of the messages waiting too long on `today` (the worker's check gives
    `alerts_due_by` its clock); the ids it named (none: nothing sent)."""
    await finish_interrupted_converts(pool)  # their requests run: they wait no longer
    return await _alert_new(pool, mailer, policy, rules, today, base_url)


async def _alert_new(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, rules: MailboxPolicy, today: date,
                     base_url: str) -> list[str]:
    """The first alert of the messages now waiting too long. An alert a dead worker left
    unfinished (its messages bound to it, not yet alerted) is finished first, under its own key:
    recorded if the relay had it, sent if it never went."""
    named: list[str] = []
    for unfinished in await pool.fetch(
            "SELECT alert_key, array_agg(id::text ORDER BY id) AS ids, min(arrived_at) AS oldest FROM mailbox_messages "
            "WHERE alert_key IS NOT NULL AND alerted_at IS NULL GROUP BY alert_key"):
        named += await _send(pool, mailer, policy, rules, base_url, unfinished["alert_key"], unfinished["ids"],
                             unfinished["oldest"])
    rows = await pool.fetch(
        "SELECT id, arrived_at FROM mailbox_messages WHERE status = 'new' AND alerted_at IS NULL "
        "AND alert_key IS NULL ORDER BY arrived_at")
    # The working days of the controller's own office, in its zone (not `receipt_date_for`, a
    # request's clock): how long mail has waited there to be read, whatever law it falls under.
    tz, country = policy.defaults.timezone, policy.defaults.country
    waiting = [r for r in rows if today >= working_days_after(receipt_date(r["arrived_at"], tz),
                                                              rules.alert_after_working_days, country)]
    if not waiting:
        return named
    ids = sorted(str(r["id"]) for r in waiting)
    key = f"mailbox-alert:{hashlib.sha256(','.join(ids).encode()).hexdigest()[:32]}"
    # Bound to this alert before it goes: whatever dies from here, the next check finishes it.
    ids = [str(i) for i in await pool.fetchval(
        "WITH bound AS (UPDATE mailbox_messages SET alert_key = $2 WHERE id = ANY($1::uuid[]) AND alert_key IS NULL "
        "RETURNING id) SELECT coalesce(array_agg(id::text ORDER BY id), '{}') FROM bound", ids, key)]
    if not ids:  # another worker bound them first: its alert carries them
        return named
    failpoint("mailbox-alert-bound", key)  # bound to the alert, and the alert not yet sent
    return named + await _send(pool, mailer, policy, rules, base_url, key, ids, waiting[0]["arrived_at"])


async def _send(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, rules: MailboxPolicy, base_url: str,
                key: str, ids: list[str], oldest: datetime) -> list[str]:
    """The alert `key` naming messages `ids` (the oldest arrived at `oldest`), once: the messages
    are marked alerted in the transaction that marks it sent."""
    message = _staff_mail(policy, key, "inbox_alert", {
        "count": len(ids), "days": rules.alert_after_working_days,
        "oldest": receipt_date(oldest, policy.defaults.timezone), "inbox_url": f"{base_url}/console/inbox"})

    async def record(conn: asyncpg.Connection, marked: Write) -> None:
        await append_event(conn, event_key=key, event_type="mail.alerted", actor="mailbox",
                           data={"messages": ids, "message_id": message["Message-ID"]},
                           along=[marked, Write("UPDATE mailbox_messages SET alerted_at = now() "
                                                "WHERE id = ANY($1::uuid[])", (ids,))])

    sent = await send_once(pool, mailer, key, message, request_id=None, on_sent=record)
    return ids if sent is not Sent.BUSY else []


async def remind_waiting(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, now: datetime, base_url: str) -> list[str]:
    """Remind staff of the messages alerted on an earlier day and still not filed (attached to a
    request, made one, or dismissed): one reminder on the controller's day of `now`, keyed by it,
    sent by the first check at or after `REMIND_AT` (a worker down then sends it once back that
    day), whichever worker, and a filed message is named no more. Each is listed with the day it
    reached us and how many days it has waited, and, where it reads like a request, that the time
    to answer it may run from that day. The ids it named (none: sent already today, too early, or
    nothing waits). Before, a message was alerted once and never again, while its statutory clock
    ran from its receipt."""
    tz = policy.defaults.timezone
    local = now.astimezone(ZoneInfo(tz))
    await _finish_earlier_reminders(pool, mailer, policy, local.date(), base_url)
    if local.time() < REMIND_AT:
        return []
    # The day's list, written once by its first check: a retry after a crash, or a worker beside
    # this one, sends and records that list (alerted before today: it only shrinks during the day).
    ids = [str(i) for i in await pool.fetchval(
        """WITH listed AS (
               INSERT INTO mailbox_reminders (day, messages)
               SELECT $2, array_agg(id ORDER BY arrived_at, id) FROM mailbox_messages
                WHERE status = 'new' AND alerted_at IS NOT NULL AND (alerted_at AT TIME ZONE $1)::date < $2
               HAVING count(*) > 0
               ON CONFLICT (day) DO NOTHING RETURNING messages)
           SELECT coalesce((SELECT messages FROM listed), (SELECT messages FROM mailbox_reminders WHERE day = $2),
                           '{}')""", tz, local.date())]
    if not ids:
        return []
    return ids if await _remind(pool, mailer, policy, local.date(), ids, base_url) is Sent.SENT else []


async def _finish_earlier_reminders(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, today: date,
                                    base_url: str) -> None:
    """The reminder of an earlier day that a dead worker left unfinished, and no check finished
    that day: recorded, with the list it named, if the relay had it (`mail.unconfirmed` too);
    withdrawn if it never went (today's names whoever still waits). Before, one the relay had
    stayed unrecorded for good: the next day's reminder has another key."""
    for row in await pool.fetch(
            "SELECT r.day, r.messages FROM mailbox_reminders r LEFT JOIN mail_outbox o "
            "ON o.mail_key = 'mailbox-reminder:' || to_char(r.day, 'YYYY-MM-DD') "
            "WHERE r.day < $1 AND coalesce(o.state, 'none') NOT IN ('sent', 'withdrawn')", today):
        key = _reminder_key(row["day"])
        await settle(pool, key, message_id_for(key), request_id=None, record=partial(
            _remind, pool, mailer, policy, row["day"], [str(i) for i in row["messages"]], base_url))


def _reminder_key(day: date) -> str:
    return f"mailbox-reminder:{day.isoformat()}"


async def _remind(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, day: date, ids: list[str],
                  base_url: str) -> Sent:
    """The reminder of `day` naming messages `ids`, once, recorded (`mail.reminded`) with them."""
    tz, key = policy.defaults.timezone, _reminder_key(day)
    rows = await pool.fetch("SELECT arrived_at, suggested_type FROM mailbox_messages WHERE id = ANY($1::uuid[]) "
                            "ORDER BY arrived_at, id LIMIT $2", ids, REMINDER_LISTS)
    listed = [{"received": (received := receipt_date(r["arrived_at"], tz)), "days": (day - received).days,
               "request": r["suggested_type"] is not None} for r in rows]
    message = _staff_mail(policy, key, "inbox_reminder", {
        "count": len(ids), "messages": listed, "more": len(ids) - len(listed),
        "inbox_url": f"{base_url}/console/inbox"})

    async def record(conn: asyncpg.Connection, marked: Write) -> None:
        await append_event(conn, event_key=key, event_type="mail.reminded", actor="mailbox",
                           data={"messages": ids, "message_id": message["Message-ID"]}, along=[marked])

    return await send_once(pool, mailer, key, message, request_id=None, on_sent=record)


# How long the IMAP reader may fail before staff are told: a server restart or a short network
# outage is read through on the next session, a refused login or a lost certificate never is.
UNREADABLE_AFTER = timedelta(minutes=15)


async def alert_unreadable(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, reader: MailboxReader,
                           now: datetime, after: timedelta = UNREADABLE_AFTER) -> bool:
    """Alert staff that the privacy mailbox has not been read through for `after` (the reader
    keeps trying), from the outage on record (migration 0043), whichever worker's reader began
    it: as soon as it has lasted `after`, then on each later day of the controller's from
    `REMIND_AT` while it lasts (a mailbox unreadable for days is not silent after the first),
    keyed by the outage and that day, through the outbox, from every worker alike. True if sent.
    Before, the outage's start was the worker's memory: a worker restarted again and again never
    reached 15 minutes, and one killed as the relay took the alert left it unrecorded."""
    local = now.astimezone(ZoneInfo(policy.defaults.timezone))
    await _finish_outage_alerts(pool, mailer, policy, reader, local.date())
    outage = await open_outage(pool, reader.cursor_key)
    if outage is None or now - outage["since"] < after:
        return False
    if local.time() < REMIND_AT and await pool.fetchval(
            "SELECT EXISTS (SELECT FROM mailbox_outage_alerts a JOIN mail_outbox o ON o.mail_key = "
            f"{_OUTAGE_KEY} WHERE a.outage = $1 AND o.state IN ('sent', 'data_sent'))", outage["id"]):
        return False  # staff know of it: the next day's alert goes as their morning starts
    # The day's alert, written once with the failure it names: a retry after a crash, or a worker
    # beside this one, sends and records that alert. None if a reader has read the mailbox
    # through since (its end is recorded if an alert of it was begun: mailbox_store `mailbox_read`).
    failure = await pool.fetchval(
        """WITH still AS (SELECT FROM mailbox_outages WHERE id = $1 AND ended_at IS NULL),
                begun AS (INSERT INTO mailbox_outage_alerts (outage, day, failure) SELECT $1, $2, $3 FROM still
                          ON CONFLICT (outage, day) DO NOTHING RETURNING failure)
           SELECT coalesce((SELECT failure FROM begun),
                           (SELECT failure FROM mailbox_outage_alerts, still WHERE outage = $1 AND day = $2))""",
        outage["id"], local.date(), outage["failure"])
    if failure is None:
        return False
    return await _unreadable(pool, mailer, policy, reader, outage["id"], outage["since"], local.date(),
                             failure) is Sent.SENT


# An outage alert's outbox key in SQL, from `mailbox_outage_alerts a` (`_outage_key`).
_OUTAGE_KEY = "'mailbox-unreadable:' || a.outage || ':' || to_char(a.day, 'YYYY-MM-DD')"


def _outage_key(outage: int, day: date) -> str:
    return f"mailbox-unreadable:{outage}:{day.isoformat()}"


async def _finish_outage_alerts(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, reader: MailboxReader,
                                today: date) -> None:
    """An alert of an earlier day, or of an outage over since, that a dead worker left
    unfinished: recorded, with the failure it named, if the relay had it (`mail.unconfirmed`
    too); withdrawn if it never went (today's alert, if the outage lasts, tells staff)."""
    for row in await pool.fetch(
            "SELECT a.outage, a.day, a.failure, m.since FROM mailbox_outage_alerts a "
            "JOIN mailbox_outages m ON m.id = a.outage "
            f"LEFT JOIN mail_outbox o ON o.mail_key = {_OUTAGE_KEY} "
            "WHERE m.mailbox = $1 AND (a.day < $2 OR m.ended_at IS NOT NULL) "
            "AND coalesce(o.state, 'none') NOT IN ('sent', 'withdrawn')", reader.cursor_key, today):
        key = _outage_key(row["outage"], row["day"])
        await settle(pool, key, message_id_for(key), request_id=None, record=partial(
            _unreadable, pool, mailer, policy, reader, row["outage"], row["since"], row["day"], row["failure"]))


async def _unreadable(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, reader: MailboxReader, outage: int,
                      since: datetime, day: date, failure: str) -> Sent:
    """The alert of `day` of the outage `outage`, once, recorded (`mail.unreadable`) with what it named."""
    key = _outage_key(outage, day)
    message = _staff_mail(policy, key, "mailbox_unreadable", {
        "since": since, "failure": failure, "folder": reader.settings.imap_folder,
        "host": reader.settings.imap_host})

    async def record(conn: asyncpg.Connection, marked: Write) -> None:
        await append_event(conn, event_key=key, event_type="mail.unreadable", actor="mailbox",
                           data={"outage": outage, "since": since.isoformat(), "failure": failure,
                                 "message_id": message["Message-ID"]}, along=[marked])

    return await send_once(pool, mailer, key, message, request_id=None, on_sent=record)


def _staff_mail(policy: Policy, key: str, template: str, context: dict[str, object]) -> EmailMessage:
    """A staff alert about the mailbox, in the staff language and the controller's timezone (the
    policy's in force: the mailbox belongs to no request), its Message-ID derived from `key`."""
    language = policy.languages.staff.value
    rendered = render_template_set(template, {**context, "timezone": policy.defaults.timezone}, language)
    message = EmailMessage()
    message["From"] = formataddr((policy.controller.name, policy.controller.sender_email))
    message["To"] = policy.controller.staff_email
    set_subject(message, rendered.subject)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id_for(key)
    message["X-DSR-Purpose"] = "staff_alert"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    message["Content-Language"] = language
    return message
