"""The embedded mail server: accepts every message over SMTP and keeps it as an `.eml` file.

Letters to subjects are evidence, so the local stack keeps them the way a mailbox would: one file
per message, named so a directory listing is in arrival order. Mail to the controller's privacy
address is also filed into the privacy inbox (docs/mailbox.md), as the IMAP reader files it in
production, so the inbox can be tried offline.
"""

from __future__ import annotations

import email
import email.policy
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import asyncpg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from activities.mailbox_intake import SINK, file_message
from devstack.processes import ensure_port_free
from dsrflow.infra.db import create_pool
from policy.mailbox import MailboxPolicy


class PrivacyInbox:
    """Files mail for `address` into the inbox of the database at `database_url`. The pool is made
    on the first message, in the sink's own event loop (its thread's), where it is then used."""

    def __init__(self, address: str, database_url: str, secret: bytes, rules: MailboxPolicy, *,
                 our_sender: str) -> None:
        self.address = address.lower()
        self.database_url, self.secret, self.rules = database_url, secret, rules
        self.our_sender = our_sender  # the policy's controller.sender_email: see mailbox_intake `_ours`
        self._pool: asyncpg.Pool | None = None

    async def file(self, raw: bytes) -> None:
        if self._pool is None:
            self._pool = await create_pool(self.database_url, min_size=0, max_size=2)
        await file_message(self._pool, self.secret, self.rules, raw, arrived_at=datetime.now(UTC), source=SINK,
                           our_sender=self.our_sender)


class _EmlWriter:
    def __init__(self, directory: Path, inbox: PrivacyInbox | None) -> None:
        self.directory = directory
        self.inbox = inbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        temp = self.directory / f".{name}.part"
        content = envelope.original_content or envelope.content
        assert content is not None  # the DATA command has received it
        temp.write_bytes(content if isinstance(content, bytes) else content.encode())
        os.replace(temp, self.directory / name)  # readers never see a half-written file
        if self.inbox is not None and self.inbox.address in (r.lower() for r in envelope.rcpt_tos):
            try:
                await self.inbox.file(content if isinstance(content, bytes) else content.encode())
            except Exception:  # noqa: BLE001 - the database not up yet: the sender tries again
                return "451 4.3.0 the privacy inbox could not file the message; try again later"
        return "250 Message accepted for delivery"


class MailSink:
    """An aiosmtpd server on its own thread, writing to `directory`."""

    def __init__(self, directory: Path, port: int, host: str = "127.0.0.1", *,
                 inbox: PrivacyInbox | None = None) -> None:
        self.directory = directory
        self.port = port
        self._controller = Controller(_EmlWriter(directory, inbox), hostname=host, port=port)

    def start(self) -> None:
        ensure_port_free(self.port, "SMTP sink")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller.start()

    @property
    def running(self) -> bool:
        return self._controller.loop.is_running()

    def stop(self) -> None:
        self._controller.stop()


# What each sink directory held when last read: its file names as listed, and its messages oldest
# first, also by request id. A test waiting for a letter reads the whole mailbox on every poll, and
# listing, stat'ing and matching every file of the session each time cost 27 ms of CPU a poll at
# 2,000 messages. A sink's files are renamed in whole and never changed (`_EmlWriter`), so the same
# names hold the same messages: a poll is one listing, compared with the last.
@dataclass
class _Listing:
    names: list[str]
    files: list[tuple[Path, EmailMessage]]
    by_request: dict[str, list[EmailMessage]]


_listings: dict[Path, _Listing] = {}
_parsed: dict[Path, tuple[EmailMessage, str]] = {}  # each file's message and its X-DSR-Request-Id


def _listing(directory: Path) -> _Listing | None:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return None
    known = _listings.get(directory)
    if known is not None and known.names == names:
        return known
    files: list[tuple[Path, EmailMessage]] = []
    by_request: dict[str, list[EmailMessage]] = {}
    for name in sorted(names):
        if name.startswith(".") or not name.endswith(".eml"):
            continue  # a message still being written (`.<name>.part`)
        path = directory / name
        if path not in _parsed:
            try:
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            except FileNotFoundError:
                continue  # removed since the listing
            _parsed[path] = message, str(message["X-DSR-Request-Id"])
        message, request_id = _parsed[path]
        files.append((path, message))
        by_request.setdefault(request_id, []).append(message)
    _listings[directory] = known = _Listing(names, files, by_request)
    return known


def read_mailbox(directory: Path) -> list[EmailMessage]:
    """Every message the sink kept, oldest first. Treat them as read-only: they are shared."""
    return [message for _, message in mailbox_files(directory)]


def mailbox_files(directory: Path) -> list[tuple[Path, EmailMessage]]:
    """The same, each with the file it is kept in."""
    listing = _listing(directory)
    return [] if listing is None else list(listing.files)


def request_mail(directory: Path, request_id: str) -> list[EmailMessage]:
    """The messages whose X-DSR-Request-Id is `request_id`, oldest first (read-only, shared)."""
    listing = _listing(directory)
    return [] if listing is None else list(listing.by_request.get(request_id, ()))
