"""Reading the controller's privacy mailbox over IMAP (aioimaplib), for as long as the worker runs.

One session: CAPABILITY (on connect), LOGIN, SELECT the folder, then forever: UID SEARCH for what
came after the last message filed, UID FETCH each one (BODY.PEEK[], so reading does not mark it;
only its first bytes up to the size limit and one more, so a message of any size costs the worker
no more memory than one at the limit, which is filed with its headers alone),
file it (activities/mailbox_intake.py), mark it \\Seen and move the cursor; then wait for the
server's push (IDLE) where it offers it, else poll with NOOP. Filing comes first and is idempotent:
a crash after storing and before the cursor moves fetches the message again and finds it stored.
The cursor is per UIDVALIDITY; a server that renumbers its messages is read again from the top,
and the content hash keeps every message once.

A lost connection, a server restart or a database outage ends the session; the next begins after
a pause that doubles up to a minute. Each failed session is on record as the mailbox's outage
(mailbox_store `mailbox_failing`), which the next session to read it through ends, whichever
worker's: staff are alerted of an outage, not of one worker's memory (activities/mailbox_alerts.py).
The password is never logged (nor is any message's content).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import asyncpg
from aioimaplib import IMAP4, AioImapException, Response

from activities.errors import TRANSIENT_DB_ERRORS
from activities.mailbox_intake import file_message
from dsrflow.infra.logging import get_logger
from dsrflow.infra.metrics import MAILBOX_READER_FAILING
from dsrflow.settings import Settings
from dsrflow.stores.mailbox_store import mailbox_failing, mailbox_read, read_cursor, save_cursor
from policy.mailbox import MailboxPolicy

log = get_logger("dsrflow.mailbox")
MAX_PAUSE = 60.0
COMMAND_SECONDS = 30.0
T = TypeVar("T")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_UID = re.compile(rb"UID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_IMAP_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


class MailboxError(Exception):
    """The server refused something the reader needs (login, the folder, a command)."""


def _ok(response: Response, what: str) -> Response:
    if response.result != "OK":
        raise MailboxError(f"the IMAP server refused {what}: {response.result}")
    return response


def internal_date(value: bytes) -> datetime | None:
    """IMAP's INTERNALDATE ("17-Jul-2026 02:44:25 -0700"): when the server received the message."""
    try:
        day, month, rest = value.decode().split("-", 2)
        return parsedate_to_datetime(f"{day} {month} {rest}").astimezone(UTC) if month in _IMAP_MONTHS else None
    except (ValueError, TypeError, IndexError):
        return None


def _literal(response: Response) -> tuple[bytes | None, datetime | None, int | None]:
    """The message's bytes (those fetched), INTERNALDATE and RFC822.SIZE in a UID FETCH response."""
    data = next((bytes(line) for line in response.lines if isinstance(line, bytearray)), None)
    first = next((line for line in response.lines if isinstance(line, bytes) and b"FETCH" in line), b"")
    found, size = _INTERNALDATE.search(first), _SIZE.search(first)
    return data, internal_date(found.group(1)) if found else None, int(size.group(1)) if size else None


class MailboxReader:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, secret: bytes, rules: MailboxPolicy, *,
                 our_sender: str) -> None:
        assert settings.imap_host and settings.imap_username
        self.settings, self.pool, self.secret, self.rules = settings, pool, secret, rules
        self.our_sender = our_sender  # the policy's controller.sender_email: see mailbox_intake `_ours`
        self.cursor_key = f"imap:{settings.imap_host}:{settings.imap_port}:{settings.imap_folder}"
        self.sessions = 0  # begun, for tests and metrics
        # Since when no session has read the mailbox through, and why (the error's kind, and the
        # server's refusal, never the login): the inbox check alerts staff of a long outage.
        self.failing_since: datetime | None = None
        self.failure: str | None = None
        self._lost = asyncio.Event()
        # One byte past the limit tells the parser the message is over it (RFC 3501 6.4.5 partial fetch).
        self._fetched = f"(UID INTERNALDATE RFC822.SIZE BODY.PEEK[]<0.{rules.limits.message_bytes + 1}>)"

    def _client(self, lost: asyncio.Event) -> IMAP4:
        s = self.settings
        assert s.imap_host
        context = (ssl.create_default_context(cafile=str(s.imap_ca_file) if s.imap_ca_file else None)
                   if s.imap_tls else None)
        # aioimaplib leaves a command waiting for its timeout when the connection drops: the
        # callback lets every wait end at once (`_command`).
        return IMAP4(host=s.imap_host, port=s.imap_port, timeout=COMMAND_SECONDS, ssl_context=context,
                     conn_lost_cb=lambda _exc: lost.set())

    async def _command(self, awaitable: Awaitable[T]) -> T:
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        lost.cancel()
        if not task.done():
            task.cancel()
            raise ConnectionError("the IMAP connection was lost")
        return task.result()

    async def run(self, stop: asyncio.Event) -> None:
        pause = 1.0
        while not stop.is_set():
            try:
                await self._session(stop)
                pause = 1.0
            except (TimeoutError, AioImapException, MailboxError, ssl.SSLError, *TRANSIENT_DB_ERRORS) as exc:
                # The kind of failure only: a server's message may quote the login.
                log.warning("mailbox session ended", error=type(exc).__name__,
                            refused=str(exc) if isinstance(exc, MailboxError) else None, retry_in=pause)
                await self._failed(exc)
            except Exception as exc:  # noqa: BLE001 - any other: the reader must not end in silence
                # Before, it ended the reader's task, which nothing watched: later privacy e-mails
                # were never filed, and nobody was told while their statutory clocks ran.
                log.error("mailbox session failed", error=type(exc).__name__, retry_in=pause)
                await self._failed(exc)
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pass
            pause = min(pause * 2, MAX_PAUSE)

    async def _failed(self, exc: BaseException) -> None:
        self.failing_since = self.failing_since or datetime.now(UTC)
        self.failure = f"{type(exc).__name__}: {exc}" if isinstance(exc, MailboxError) else type(exc).__name__
        MAILBOX_READER_FAILING.set(1)
        try:  # on record, for the alert: a worker restarted goes on with this outage (mailbox_store)
            await mailbox_failing(self.pool, self.cursor_key, self.failing_since, self.failure)
        except (*TRANSIENT_DB_ERRORS, asyncpg.PostgresError) as db_exc:
            # The database away (the failure itself, maybe): written at the next failure, from
            # the start this reader keeps. The reader must not end.
            log.warning("mailbox outage not recorded", error=type(db_exc).__name__)

    async def _session(self, stop: asyncio.Event) -> None:
        s = self.settings
        self._lost = asyncio.Event()
        client = self._client(self._lost)
        self.sessions += 1
        try:
            await self._command(client.wait_hello_from_server())
            password = s.imap_password.get_secret_value() if s.imap_password else ""
            _ok(await self._command(client.login(s.imap_username or "", password)), "the login")
            selected = _ok(await self._command(client.select(s.imap_folder)), f"to open the folder {s.imap_folder!r}")
            found = next((m for line in selected.lines if isinstance(line, bytes)
                          and (m := _UIDVALIDITY.search(line))), None)
            uidvalidity = int(found.group(1)) if found else 0
            idle = "IDLE" in client.protocol.capabilities
            log.info("mailbox open", folder=s.imap_folder, idle=idle)
            while not stop.is_set():
                await self.catch_up(client, uidvalidity)
                # Read through: the mailbox is ours again, and its outage over, whichever reader
                # began it (another worker's, or this one's before a restart).
                await mailbox_read(self.pool, self.cursor_key)
                self.failing_since = self.failure = None
                MAILBOX_READER_FAILING.set(0)
                await (self._idle(client, stop) if idle else self._poll(client, stop))
            await self._command(client.logout())
        finally:
            if client.protocol.transport is not None:
                client.protocol.transport.close()

    async def catch_up(self, client: IMAP4, uidvalidity: int) -> int:
        """File every message after the cursor; the number filed."""
        cursor = await read_cursor(self.pool, self.cursor_key)
        last = cursor[1] if cursor and cursor[0] == uidvalidity else 0
        searched = _ok(await self._command(client.uid_search(f"UID {last + 1}:*", charset=None)), "UID SEARCH")
        uids = sorted({int(u) for line in searched.lines if isinstance(line, bytes)
                       for u in line.split() if u.isdigit()})
        filed = 0
        for uid in (u for u in uids if u > last):
            fetched = _ok(await self._command(client.uid("fetch", str(uid), self._fetched)), "UID FETCH")
            raw, arrived, size = _literal(fetched)
            if raw is None:
                continue  # expunged between the search and the fetch
            await file_message(self.pool, self.secret, self.rules, raw, arrived_at=arrived or datetime.now(UTC),
                               source="imap", our_sender=self.our_sender, size=size)
            # Marked read for the people who also open the mailbox; the cursor is what counts.
            await self._command(client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)"))
            await save_cursor(self.pool, self.cursor_key, uidvalidity, uid)
            filed += 1
        return filed

    async def _idle(self, client: IMAP4, stop: asyncio.Event) -> None:
        idle = await self._command(client.idle_start(timeout=self.settings.imap_poll_seconds))
        push = asyncio.ensure_future(client.wait_server_push())
        stopping = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({push, stopping, idle, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (push, stopping, lost):
                waiter.cancel()
        if self._lost.is_set():
            raise ConnectionError("the IMAP connection was lost")
        if client.has_pending_idle():
            client.idle_done()
        await self._command(asyncio.wait_for(idle, COMMAND_SECONDS))

    async def _poll(self, client: IMAP4, stop: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(stop.wait(), self.settings.imap_poll_seconds)
        except TimeoutError:
            _ok(await self._command(client.noop()), "NOOP")
