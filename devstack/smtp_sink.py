"""The embedded mail server: accepts every message over SMTP and keeps it as an `.eml` file.

Letters to subjects are evidence, so the local stack keeps them the way a mailbox would: one file
per message, named so a directory listing is in arrival order.
"""

from __future__ import annotations

import email
import email.policy
import os
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from devstack.processes import ensure_port_free


class _EmlWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        temp = self.directory / f".{name}.part"
        content = envelope.original_content or envelope.content
        assert content is not None  # the DATA command has received it
        temp.write_bytes(content if isinstance(content, bytes) else content.encode())
        os.replace(temp, self.directory / name)  # readers never see a half-written file
        return "250 Message accepted for delivery"


class MailSink:
    """An aiosmtpd server on its own thread, writing to `directory`."""

    def __init__(self, directory: Path, port: int, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.port = port
        self._controller = Controller(_EmlWriter(directory), hostname=host, port=port)

    def start(self) -> None:
        ensure_port_free(self.port, "SMTP sink")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller.start()

    @property
    def running(self) -> bool:
        return self._controller.loop.is_running()

    def stop(self) -> None:
        self._controller.stop()


def read_mailbox(directory: Path) -> list[EmailMessage]:
    """Every message the sink kept, oldest first."""
    if not directory.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(directory.glob("*.eml"))
    ]
