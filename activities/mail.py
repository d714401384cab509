"""Outgoing mail over SMTP (aiosmtplib): the embedded sink locally, a relay in production.

A Mailer keeps a few connections open between messages: connecting, the greeting, EHLO, STARTTLS
and AUTH cost more than most messages. A kept connection is used by one message at a time, and
closed after `IDLE_SECONDS` unused (relays drop idle clients after a few minutes: RFC 5321 4.5.3.2
gives them 5) or after any failure. A relay that closed a kept connection before the message went
(seen at MAIL or RCPT, never once the message itself started: activities/outbox.py) gets the message
again on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from email.message import Message
from typing import Any

import aiosmtplib

from dsrflow.settings import Settings

BeforeData = Callable[[], Awaitable[None]]

IDLE_SECONDS = 30.0
KEEP = 4  # connections kept open at most; more messages at once open more for the moment


class _SMTP(aiosmtplib.SMTP):
    """An SMTP client that says when the envelope was accepted and the message itself is about
    to go (activities/outbox.py records that moment: from then on the relay may have it)."""

    before_data: BeforeData | None = None
    data_started = False

    async def data(self, message: str | bytes, /, **options: Any) -> aiosmtplib.SMTPResponse:
        self.data_started = True
        if self.before_data is not None:
            await self.before_data()
        return await super().data(message, **options)


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._idle: list[tuple[float, asyncio.AbstractEventLoop, _SMTP]] = []

    async def send(self, message: Message, *, before_data: BeforeData | None = None) -> None:
        while True:
            client, kept = await self._connection()
            client.before_data, client.data_started = before_data, False
            try:
                await client.send_message(message)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPResponseException) as exc:
                client.close()
                gone = isinstance(exc, aiosmtplib.SMTPServerDisconnected) or exc.code == 421
                if kept and gone and not client.data_started:
                    continue  # the relay had let a kept connection go: nothing was sent
                raise
            except BaseException:
                client.close()  # whatever state the exchange was left in, it is not used again
                raise
            client.before_data = None
            self._keep(client)
            return

    async def _connection(self) -> tuple[_SMTP, bool]:
        loop = asyncio.get_running_loop()
        while self._idle:
            since, its_loop, client = self._idle.pop()
            if its_loop is not loop:
                continue  # opened on an event loop that has since ended, and closed with it
            if client.is_connected and loop.time() - since < IDLE_SECONDS:
                return client, True
            client.close()
        s = self._settings
        client = _SMTP(hostname=s.effective_smtp_host, port=s.smtp_port, username=s.smtp_username,
                       password=s.smtp_password, start_tls=s.smtp_starttls, timeout=30)
        await client.connect()
        return client, False

    def _keep(self, client: _SMTP) -> None:
        if len(self._idle) < KEEP and client.is_connected:
            loop = asyncio.get_running_loop()
            self._idle.append((loop.time(), loop, client))
        else:
            client.close()

    async def aclose(self) -> None:
        """QUIT the kept connections (a relay's log then shows a clean end)."""
        idle, self._idle = self._idle, []
        for _, _, client in idle:
            if client.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                    await client.quit()
            client.close()
