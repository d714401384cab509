"""Outgoing mail over SMTP (aiosmtplib): the embedded sink locally, a relay in production."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.message import Message
from typing import Any

import aiosmtplib

from dsrflow.settings import Settings

BeforeData = Callable[[], Awaitable[None]]


class _SMTP(aiosmtplib.SMTP):
    """An SMTP client that says when the envelope was accepted and the message itself is about
    to go (activities/outbox.py records that moment: from then on the relay may have it)."""

    def __init__(self, *, before_data: BeforeData | None, **options: Any) -> None:
        super().__init__(**options)
        self._before_data = before_data

    async def data(self, message: str | bytes, /, **options: Any) -> aiosmtplib.SMTPResponse:
        if self._before_data is not None:
            await self._before_data()
        return await super().data(message, **options)


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, message: Message, *, before_data: BeforeData | None = None) -> None:
        s = self._settings
        async with _SMTP(
            before_data=before_data,
            hostname=s.effective_smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            start_tls=s.smtp_starttls,
            timeout=30,
        ) as client:
            await client.send_message(message)
