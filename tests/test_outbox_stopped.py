"""A send stopped (asyncio cancellation: the activity cancelled, its heartbeat or start-to-close
timeout, the worker shutting down) at each step after its claim (activities/outbox.py), against
the session PostgreSQL and a relay on loopback that answers when told: what the row is left in,
what the next try does, and what the audit trail says. Exactly one copy reaches the relay each
time, and no event says a try died that was stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller

from activities import mail
from activities.mail import Handed, Mailer
from activities.outbox import Sent, send_once
from devstack.processes import free_port
from dsrflow.infra.writes import Write
from dsrflow.settings import Settings


class _Relay:
    """Keeps the Message-ID of each message it accepts; holds its answer to a message while
    `hold` is set."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.has_it = threading.Event()
        self.hold, self.answer = threading.Event(), threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        content = envelope.content.decode()
        self.received.append(next(line.split(":", 1)[1].strip() for line in content.splitlines()
                                  if line.lower().startswith("message-id:")))
        self.has_it.set()
        while self.hold.is_set() and not self.answer.is_set():
            await asyncio.sleep(0.01)
        return "250 OK"


@pytest.fixture
def relay(settings) -> Iterator[tuple[_Relay, Settings]]:
    """The relay, and the settings that send to it."""
    handler = _Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": controller.port, "smtp_starttls": False,
        "smtp_username": None, "smtp_password": None})
    handler.answer.set()
    controller.stop()


class _BeforeSmtp(Mailer):
    """Stops before its first SMTP byte: the send waits here until it is cancelled."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.reached = asyncio.Event()

    async def send(self, message: EmailMessage, *, handed: Handed | None = None) -> None:
        self.reached.set()
        await asyncio.Event().wait()


def _letter() -> tuple[EmailMessage, str]:
    message = EmailMessage()
    message["From"], message["To"] = "privacy@onetagger.com", "ada@example.com"
    message["Subject"], message["Message-ID"] = "Your request", make_msgid(domain="dsrflow")
    message.set_content("Hello")
    return message, f"outbox-stopped:{uuid.uuid4().hex}"


async def _recorded(conn, marked: Write) -> None:
    await marked.execute(conn)


async def _until(check, seconds: float = 10.0) -> None:
    async def poll() -> None:
        while not await check():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), seconds)


async def _events(pool, key: str) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT event_type, data->>'reason' AS reason FROM audit_events "
                            "WHERE data->>'mail_key' = $1 ORDER BY seq", key)
    return [(r["event_type"], r["reason"]) for r in rows]


async def _state(pool, key: str) -> str:
    return str(await pool.fetchval("SELECT state FROM mail_outbox WHERE mail_key = $1", key))


async def _stopped(sending: asyncio.Task) -> None:
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending


async def _unconfirmed_as_stopped(pool, mailer: Mailer, key: str, message: EmailMessage) -> None:
    """The message a stopped try handed to the relay is on record as sent, the trail saying once
    that this try was stopped; tries after it send nothing and say nothing more."""
    assert await _state(pool, key) == "sent"
    for _ in range(2):
        assert await send_once(pool, mailer, key, message, request_id=None, on_sent=_recorded) is Sent.ALREADY
    [(event, reason)] = await _events(pool, key)
    assert event == "mail.unconfirmed" and reason.startswith("the attempt was stopped"), reason


async def test_a_send_stopped_before_any_smtp_byte_gives_its_claim_back(pool, settings, relay):
    """Nothing reached the relay: the row says so (`failed`, as a send this process saw fail),
    the next try sends the one copy, and no `mail.resent` says an earlier attempt died."""
    handler, to_relay = relay
    mailer = Mailer(to_relay)
    message, key = _letter()
    gate = _BeforeSmtp(settings)
    sending = asyncio.create_task(send_once(pool, gate, key, message, request_id=None, on_sent=_recorded))
    await asyncio.wait_for(gate.reached.wait(), 10)
    await _stopped(sending)
    assert await _state(pool, key) == "failed"
    assert await send_once(pool, mailer, key, message, request_id=None, on_sent=_recorded) is Sent.SENT
    assert (await _state(pool, key), await _events(pool, key)) == ("sent", [])
    assert handler.received == [message["Message-ID"]]


async def test_a_send_stopped_mid_data_hands_the_message_over_and_records_it_unconfirmed(
        pool, relay, monkeypatch):
    """Stopped with the message written and its end mark not: the end mark still goes, so the
    relay has the message, its answer unheard. The stopped try records it as sent with a
    `mail.unconfirmed` that says it was stopped (before, it left `data_sent` and the retry's
    event said an earlier attempt died); the next try sends nothing and says nothing more."""
    handler, to_relay = relay
    mailer = Mailer(to_relay)
    message, key = _letter()
    reached, go = asyncio.Event(), asyncio.Event()
    in_the_kernel = mail._in_the_kernel

    async def held_before_the_end_mark(transports, seconds) -> None:
        if not reached.is_set():
            reached.set()
            await go.wait()
        await in_the_kernel(transports, seconds)

    monkeypatch.setattr(mail, "_in_the_kernel", held_before_the_end_mark)
    sending = asyncio.create_task(send_once(pool, mailer, key, message, request_id=None, on_sent=_recorded))
    await asyncio.wait_for(reached.wait(), 10)
    for _ in range(2):  # cancelled again as it unwinds: the end mark goes all the same
        sending.cancel()
        await asyncio.sleep(0.05)
    go.set()
    with pytest.raises(asyncio.CancelledError):
        await sending
    await _unconfirmed_as_stopped(pool, mailer, key, message)
    await asyncio.to_thread(handler.has_it.wait, 10)
    assert handler.received == [message["Message-ID"]]


async def test_a_send_stopped_while_the_relay_answers_records_it_unconfirmed_once(pool, relay):
    """Stopped after the handover (`data_sent`), before the relay's answer: recorded as sent by
    the stopped try, once, without a second copy, its `mail.unconfirmed` saying it was stopped."""
    handler, to_relay = relay
    mailer = Mailer(to_relay)
    message, key = _letter()
    handler.hold.set()
    sending = asyncio.create_task(send_once(pool, mailer, key, message, request_id=None, on_sent=_recorded))

    async def handed_over() -> bool:
        return await _state(pool, key) == "data_sent"

    await _until(handed_over)
    await _stopped(sending)
    handler.answer.set()
    await _unconfirmed_as_stopped(pool, mailer, key, message)
    assert handler.received == [message["Message-ID"]]


class _Gated(Mailer):
    """The real mailer, once `go` is set."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    async def send(self, message: EmailMessage, *, handed: Handed | None = None) -> None:
        self.reached.set()
        await self.go.wait()
        await super().send(message, handed=handed)


async def test_a_send_stopped_as_it_writes_down_the_handover_records_it_once(pool, relay):
    """The relay answered before `data_sent` was written (its row locked a moment by another
    session), and the send is stopped then: the handover's write is waited for before anything
    else goes to the claim's connection, and the message is recorded as sent, told as stopped."""
    handler, to_relay = relay
    message, key = _letter()
    mailer = _Gated(to_relay)
    sending = asyncio.create_task(send_once(pool, mailer, key, message, request_id=None, on_sent=_recorded))
    await asyncio.wait_for(mailer.reached.wait(), 10)
    async with pool.acquire() as other, other.transaction():
        await other.execute("SELECT FROM mail_outbox WHERE mail_key = $1 FOR UPDATE", key)
        mailer.go.set()
        await asyncio.to_thread(handler.has_it.wait, 10)
        await asyncio.sleep(0.2)  # the relay's answer is in; `data_sent` waits for this lock
        sending.cancel()
        await asyncio.sleep(0.05)
    with pytest.raises(asyncio.CancelledError):
        await sending
    await _unconfirmed_as_stopped(pool, mailer, key, message)
    assert handler.received == [message["Message-ID"]]


async def test_a_send_stopped_while_recording_what_the_relay_accepted_records_it(pool, relay):
    """The relay accepted the message and the try is stopped as it records it: the record is
    written before the try stops (`sent`, with the caller's rows), so the next try finds it sent
    and the trail says nothing of an unconfirmed message the relay had confirmed."""
    handler, to_relay = relay
    mailer = Mailer(to_relay)
    message, key = _letter()
    recording, go = asyncio.Event(), asyncio.Event()

    async def slow_record(conn, marked: Write) -> None:
        recording.set()
        await go.wait()
        await marked.execute(conn)

    sending = asyncio.create_task(send_once(pool, mailer, key, message, request_id=None, on_sent=slow_record))
    await asyncio.wait_for(recording.wait(), 10)
    sending.cancel()
    await asyncio.sleep(0.05)
    go.set()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert await _state(pool, key) == "sent"
    assert await send_once(pool, mailer, key, message, request_id=None, on_sent=_recorded) is Sent.ALREADY
    assert (await _events(pool, key), handler.received) == ([], [message["Message-ID"]])


@contextlib.asynccontextmanager
async def _stalled_relay(settings, pace: float | None = None, got: list[str] | None = None) -> AsyncIterator[Settings]:
    """A relay that answers up to DATA, then reads nothing more: the message stays in the
    sender's buffers. Its receive buffer is kept small (no autotuning) so that they fill. With a
    `pace`, it reads on at that many bytes a second instead, and accepts the message (each one
    it has whole is counted in `got`): a slow relay, not a dead one."""
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listening.bind(("127.0.0.1", 0))
    ended = asyncio.Event()

    async def converse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 stalled ESMTP\r\n")
        while line := await reader.readline():
            writer.write(b"354 go ahead\r\n" if line.upper().startswith(b"DATA") else b"250 OK\r\n")
            if line.upper().startswith(b"DATA"):
                break
        tail = b""
        while pace is not None and (chunk := await reader.read(2**16)):
            tail = (tail + chunk)[-5:]
            if tail == b"\r\n.\r\n":
                (got if got is not None else []).append("whole")
                writer.write(b"250 OK\r\n")
                break
            await asyncio.sleep(len(chunk) / pace)
        await ended.wait()  # reads nothing more
        writer.transport.abort()

    server = await asyncio.start_server(converse, sock=listening)
    try:
        yield settings.model_copy(update={
            "smtp_host": "127.0.0.1", "smtp_port": listening.getsockname()[1], "smtp_starttls": False,
            "smtp_username": None, "smtp_password": None})
    finally:
        ended.set()
        server.close()
        await server.wait_closed()


def _large_letter() -> tuple[EmailMessage, str]:
    """Larger than a socket's send buffer can grow (4 MiB here), so some must wait in the loop's."""
    message, key = _letter()
    message.add_attachment(os.urandom(9 * 2**20), maintype="application", subtype="octet-stream")
    return message, key


@pytest.mark.parametrize("stopped", [False, True], ids=["timed-out", "stopped-meanwhile"])
async def test_a_relay_that_stops_reading_the_message_fails_the_send_within_its_step_time(
        pool, settings, relay, monkeypatch, stopped):
    """The relay stops reading mid-message. The send used to wait for ever for the message to
    leave the event loop's buffers, a stop (the worker shutting down) with it. Now the
    connection is cut after the step's time, the relay never having the end mark: the claim is
    given back (`failed`), and the next try sends the one copy, with no event saying a try died."""
    handler, to_relay = relay
    message, key = _large_letter()
    async with _stalled_relay(settings) as stalled:
        monkeypatch.setattr(mail, "STEP_SECONDS", 1.0)  # the stalled relay's sends only
        sending = asyncio.create_task(send_once(pool, Mailer(stalled), key, message, request_id=None,
                                                on_sent=_recorded))
        if stopped:
            await asyncio.sleep(0.5)
            sending.cancel()
        with pytest.raises(asyncio.CancelledError if stopped else aiosmtplib.SMTPTimeoutError):
            await asyncio.wait_for(asyncio.shield(sending), 15)
        monkeypatch.undo()
    assert await _state(pool, key) == "failed"
    assert await send_once(pool, Mailer(to_relay), key, message, request_id=None, on_sent=_recorded) is Sent.SENT
    assert (await _events(pool, key), handler.received) == ([], [message["Message-ID"]])


@pytest.mark.parametrize("slow", ["answers-late", "reads-slowly"])
async def test_a_living_relay_slower_than_a_commands_time_gets_the_message_once(
        pool, settings, relay, monkeypatch, slow):
    """A relay that answers the message's end mark after a command's time (a content filter
    scanning it first: RFC 5321 gives it 10 minutes), or reads a large message slowly all along.
    The send used to give up a command's time after the message was buffered, the relay having
    it, or about to: the claim failed, and the retry sent a second copy (the slow reader's, ever
    again). Now the end mark's answer has `ANSWER_SECONDS`, and a relay that reads is alive: one
    copy, sent."""
    handler, to_relay = relay
    monkeypatch.setattr(mail, "STEP_SECONDS", 0.5)
    monkeypatch.setattr(mail, "ANSWER_SECONDS", 10.0, raising=False)
    message, key = _letter()
    if slow == "reads-slowly":  # 2.8 MB on the wire: read in about a second
        message.add_attachment(os.urandom(2 * 2**20), maintype="application", subtype="octet-stream")
    got: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        if slow == "answers-late":
            handler.hold.set()
            asyncio.get_running_loop().call_later(1.0, handler.answer.set)
            mailer = Mailer(to_relay)
        else:
            mailer = Mailer(await stack.enter_async_context(_stalled_relay(settings, pace=2.8e6, got=got)))
        sent = await asyncio.wait_for(send_once(pool, mailer, key, message, request_id=None, on_sent=_recorded), 15)
        assert sent is Sent.SENT
        assert await send_once(pool, mailer, key, message, request_id=None, on_sent=_recorded) is Sent.ALREADY
    assert await _state(pool, key) == "sent"
    assert await _events(pool, key) == []
    assert (handler.received, got) == (([message["Message-ID"]], []) if slow == "answers-late" else ([], ["whole"]))
