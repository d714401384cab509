"""Outgoing mail over SMTP (aiosmtplib): the embedded sink locally, a relay in production.

A Mailer keeps a few connections open between messages: connecting, the greeting, EHLO, STARTTLS
and AUTH cost more than most messages. A kept connection is used by one message at a time, and
closed after `IDLE_SECONDS` unused (relays drop idle clients after a few minutes: RFC 5321 4.5.3.2
gives them 5) or after any failure. A relay that closed a kept connection before the message went
(seen at MAIL or RCPT, never once the message itself started: activities/outbox.py) gets the message
again on a new connection.

`handed` tells the sender the moment the relay has the message: its end mark (the line holding
only ".", RFC 5321 4.1.1.4), the byte that makes a relay take it, has just gone to the kernel. The
callback starts in the same step, with no wait in between, so a process killed at any instant
leaves either both or (for microseconds) only the message written: the kernel delivers what was
written to a socket even after its process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from email.message import Message
from typing import Any

import aiosmtplib

from dsrflow.settings import Settings

Handed = Callable[[], Awaitable[None]]

IDLE_SECONDS = 30.0
# How long a relay may take over each step: a command's answer (aiosmtplib's timeout), and the
# message's taking no byte more of what waits in the event loop's buffers (_in_the_kernel).
STEP_SECONDS = 30.0
# How long the relay may take to answer DATA, and then the message: from the moment it is buffered
# to the answer to its end mark, as long as it takes it in (`STEP_SECONDS` in which it takes no
# byte cut it: _in_the_kernel). RFC 5321 4.5.3.2.6 gives a relay 10 minutes to answer the end mark
# (a content filter may scan the message first); the mail step has 4 (workflows/dsr_steps.py
# MAILING). Given a command's time from the moment the message was buffered, a relay slower than
# that had the message when the send gave up, and the retry sent a second copy; a large message on
# a slow relay never went.
ANSWER_SECONDS = 120.0
KEEP = 4  # connections kept open at most; more messages at once open more for the moment
END_MARK = b".\r\n"  # aiosmtplib writes the message with it, dot-stuffed, in one call


class _SMTP(aiosmtplib.SMTP):
    """An SMTP client that calls `handed` once the message's end mark is in the kernel."""

    handed: Handed | None = None
    data_started = False
    beneath: asyncio.BaseTransport | None = None  # under STARTTLS, the socket's own transport

    async def starttls(self, *args: Any, **options: Any) -> aiosmtplib.SMTPResponse:
        # TLS's transport hands what it encrypts to the socket's, which may buffer it in turn:
        # the handover waits for both (_end).
        self.beneath = self.transport
        return await super().starttls(*args, **options)

    async def data(self, message: str | bytes, /, **options: Any) -> aiosmtplib.SMTPResponse:
        self.data_started = True
        protocol, handed = self.protocol, self.handed
        if protocol is None or handed is None:
            return await super().data(message, **options)
        write = protocol.write
        ending: list[asyncio.Task[None]] = []

        def withhold_end(chunk: bytes) -> None:
            # The message (not the DATA command) goes without its end mark: the relay keeps
            # waiting for it, and the task below writes it, then calls `handed` straight away.
            if chunk == b"DATA\r\n" or not chunk.endswith(END_MARK):
                write(chunk)
                return
            write(chunk[:-len(END_MARK)])
            transports = [protocol.transport, self.beneath]
            seconds = self.timeout or STEP_SECONDS
            ending.append(asyncio.ensure_future(_end(transports, write, handed, seconds)))

        protocol.write = withhold_end  # type: ignore[method-assign,assignment]  # this exchange's hook, undone below
        ended: BaseException | None = None
        try:
            try:
                reply = await super().data(message, **{**options, "timeout": ANSWER_SECONDS})
            finally:
                del protocol.write  # the class's own method again
                if ending:
                    # Awaited, never cancelled, and through a cancellation of this call too: `handed`
                    # records what the relay may already have, on the caller's connection, and a
                    # sender stopped here must not use it until then (activities/outbox.py).
                    try:
                        await outlast(ending[0])
                    finally:
                        ended = ending[0].exception()
        except aiosmtplib.SMTPServerDisconnected:
            if ended is None:
                raise
            raise ended from None  # the connection cut by `_in_the_kernel`: its error says why
        if ended is not None:
            raise ended
        return reply


async def outlast(task: asyncio.Future[Any]) -> None:
    """Wait until `task` is done, through any cancellation of the caller, which is raised once it
    is (the task's own outcome is left to the caller)."""
    stopped = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            stopped = True
    if stopped:
        raise asyncio.CancelledError


async def _end(transports: list[Any], write: Callable[[bytes], None], handed: Handed, seconds: float) -> None:
    # A message larger than the socket's buffer waits in the event loop's: it must all be in the
    # kernel before the end mark can count as handed over, and so must the end mark itself.
    await _in_the_kernel(transports, seconds)
    write(END_MARK)
    await _in_the_kernel(transports, seconds)
    await handed()


async def _in_the_kernel(transports: list[Any], seconds: float) -> None:
    """Wait until nothing written waits in the buffers of `transports` (the event loop's, TLS's).

    A relay that stops reading would keep it there for ever, and the sender with it: a stopped
    sender waits for this (activities/outbox.py), so a worker could never shut down. After
    `seconds` in which none of it left, the connection is cut, what still waits thrown away: at
    least the end mark's last byte is among it, so the relay has no message, and the send fails
    as one that never went."""
    loop = asyncio.get_running_loop()
    waiting, since = _buffered(transports), loop.time()
    while any(waiting):
        await asyncio.sleep(0.005)
        left = _buffered(transports)
        if any(now < before for now, before in zip(left, waiting, strict=True)):
            since = loop.time()  # some of it left (under TLS, a buffer may fill as another drains)
        elif loop.time() - since > seconds:
            for transport in transports:
                if transport is not None:
                    transport.abort()
            raise aiosmtplib.SMTPTimeoutError(f"the relay took none of the message for {seconds:g} s")
        waiting = left


def _buffered(transports: list[Any]) -> list[int]:
    return [t.get_write_buffer_size() if t is not None else 0 for t in transports]


def relay_options(settings: Settings) -> dict[str, Any]:
    """How the relay is reached, by the worker's letters and by the API's health probe alike: a
    probe that skipped STARTTLS or the login answered "ok" for a relay every letter then failed on."""
    return {"hostname": settings.effective_smtp_host, "port": settings.smtp_port, "username": settings.smtp_username,
            "password": settings.smtp_password, "start_tls": settings.smtp_starttls}


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._idle: list[tuple[float, asyncio.AbstractEventLoop, _SMTP]] = []

    async def send(self, message: Message, *, handed: Handed | None = None) -> None:
        while True:
            client, kept = await self._connection()
            client.handed, client.data_started = handed, False
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
            client.handed = None
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
        client = _SMTP(**relay_options(self._settings), timeout=STEP_SECONDS)
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
