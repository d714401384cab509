"""Outgoing mail over SMTP (aiosmtplib): the embedded sink locally, a relay in production."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from dsrflow.settings import Settings


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self._settings
        await aiosmtplib.send(
            message,
            hostname=s.effective_smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            start_tls=s.smtp_starttls,
            timeout=30,
        )
