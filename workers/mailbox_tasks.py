"""The privacy mailbox's long-running tasks in the worker process (docs/mailbox.md): the IMAP
reader, when IMAP_HOST names the mailbox, and the check that alerts staff of e-mails waiting too
long and reminds them each morning (whichever way they arrived: IMAP or, on `make run`, the SMTP
sink).

Long-running tasks rather than Temporal activities: reading a mailbox is a connection held open
for hours (IDLE), not a step of a request. Each task survives what it can (the reader reconnects
with back-off; a failed check is tried again at the next interval); several workers may run them
side by side, since filing is idempotent and the alert goes through the outbox once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from activities.mail import Mailer
from activities.mailbox_alerts import alert_unreadable, alert_waiting, alerts_due_by, remind_waiting
from dsrflow.crypto.keys import load_secret_key
from dsrflow.infra.logging import get_logger
from dsrflow.infra.pieces import Pieces
from dsrflow.settings import Settings
from policy.mailbox import MailboxPolicy, load_mailbox_policy
from policy.model import Policy

if TYPE_CHECKING:
    from activities.mailbox_reader import MailboxReader

log = get_logger("dsrflow.mailbox")
ALERT_CHECK_SECONDS = 600.0


async def watch_waiting(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event, policy: Policy,
                        every: float = ALERT_CHECK_SECONDS, reader: MailboxReader | None = None) -> None:
    """Check the Inbox every `every` seconds (`check_inbox`), under the policy the worker started on."""
    rules, mailer = load_mailbox_policy(), Mailer(settings)
    while not stop.is_set():
        try:
            await check_inbox(pool, mailer, policy, rules, datetime.now(UTC), settings.base_url, reader)
        except Exception as exc:  # noqa: BLE001 - the database or the relay away: tried again next time
            log.warning("inbox alert check failed", error=type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


async def check_inbox(pool: asyncpg.Pool, mailer: Mailer, policy: Policy, rules: MailboxPolicy, now: datetime,
                      base_url: str, reader: MailboxReader | None) -> None:
    """One check at `now`: alert staff of e-mails waiting too long, remind them each morning of
    those still waiting, and alert them of a mailbox the reader cannot read. Each part runs
    whatever another did (`Pieces`): before, an alert the relay refused for good (a policy
    rejection) failed every check before the reminder and the unreadable-mailbox alert."""
    pieces = Pieces(_part_failed)
    with pieces.piece("alert"):
        named = await alert_waiting(pool, mailer, policy, rules, alerts_due_by(now, policy.defaults.timezone),
                                    base_url)
        if named:
            log.info("inbox alert sent", messages=len(named))
    with pieces.piece("reminder"):
        reminded = await remind_waiting(pool, mailer, policy, now, base_url)
        if reminded:
            log.info("inbox reminder sent", messages=len(reminded))
    with pieces.piece("unreadable"):
        if reader is not None and await alert_unreadable(pool, mailer, policy, reader, now):
            log.warning("staff alerted: the privacy mailbox cannot be read", failure=reader.failure)
    pieces.settle()


def _part_failed(part: str, _: str | None, exc: Exception) -> None:
    log.warning("inbox check: a part failed, the others carry on", part=part, error=type(exc).__name__)


def mailbox_tasks(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event,
                  policy: Policy) -> list[asyncio.Task[None]]:
    """The tasks, under `policy`: the one the worker started on (read once for all its parts)."""
    reader = None
    if settings.imap_host:
        # Imported only when a mailbox is read: IMAP, the sender checks (authres) and the mail
        # parsing are 15 ms of CPU at each worker start otherwise spent for nothing.
        from activities.mailbox_reader import MailboxReader

        reader = MailboxReader(settings, pool, load_secret_key(settings), load_mailbox_policy(),
                               our_sender=policy.controller.sender_email)
    tasks = [asyncio.create_task(watch_waiting(settings, pool, stop, policy, reader=reader), name="inbox alerts")]
    if reader is not None:
        tasks.append(asyncio.create_task(reader.run(stop), name="mailbox reader"))
    return tasks
