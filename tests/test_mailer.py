"""The Mailer keeps SMTP connections open between messages (activities/mail.py), against a real
SMTP server (aiosmtpd) on loopback: messages share a connection, a relay that let a kept
connection go still gets the message once, and nothing is sent again once the message itself
started."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine, Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib
import pytest
import uvloop
from aiosmtpd.controller import Controller

from activities import mail
from activities.errors import failure_message, is_deterministic
from activities.mail import Mailer
from devstack.processes import free_port
from tests.imap_stand_in import self_signed_certificate


class _Relay:
    """Records each message with the connection (client port) it came over; answers 421 at MAIL
    or at the end of DATA as many times as asked."""

    def __init__(self) -> None:
        self.received: list[tuple[int, str]] = []
        self.close_at_mail = 0
        self.close_at_data = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        if self.close_at_mail:
            self.close_at_mail -= 1
            return "421 4.4.2 idle too long, closing"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.close_at_data:
            self.close_at_data -= 1
            return "421 4.3.0 shutting down"
        self.received.append((session.peer[1], envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[_Relay, Controller]]:
    handler = _Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


def _mailer(settings, controller: Controller, *, starttls: bool = False) -> Mailer:
    return Mailer(settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": controller.port,
                                              "smtp_starttls": starttls, "smtp_username": None,
                                              "smtp_password": None}))


def _message(n: int, padding: int = 0) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"] = "privacy@onetagger.com", "ada@example.com"
    message["Subject"], message["Message-ID"] = f"Letter {n}", make_msgid(domain="dsrflow")
    message.set_content(f"Letter number {n}" + (" " + "x" * padding if padding else ""))
    return message


def _tracking(mailer: Mailer) -> list:
    """The clients `mailer` sends over, in order (to look at their transport as `handed` runs)."""
    clients: list = []
    connection = mailer._connection

    async def tracked():
        client, kept = await connection()
        clients.append(client)
        return client, kept

    mailer._connection = tracked  # type: ignore[method-assign]
    return clients


def _in_the_kernel(clients: list) -> bool:
    """Nothing the current client wrote still waits in the event loop's buffers: TLS's, and under
    them the socket's own transport's."""
    client = clients[-1]
    return all(t.get_write_buffer_size() == 0 for t in (client.protocol.transport, client.beneath) if t)


# The handover relies on what a transport says it buffers: asyncio's and uvloop's (the worker's,
# dsrflow/infra/event_loop.py) both answer it, and both are tried.
LOOPS = [pytest.param(None, id="asyncio"), pytest.param(uvloop.new_event_loop, id="uvloop")]


def _on(loop_factory, scenario: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(scenario)


class _Handover:
    """A `handed` that notes, the moment it is called, whether the message is all in the kernel,
    then how many messages the relay has once it took this one (waiting up to 5 s for it)."""

    def __init__(self, relay: _Relay, clients: list) -> None:
        self.relay, self.clients = relay, clients
        self.flushed: list[bool] = []
        self.seen: list[int] = []

    async def __call__(self) -> None:
        self.flushed.append(_in_the_kernel(self.clients))  # before anything else runs
        for _ in range(500):
            if len(self.relay.received) == len(self.flushed):
                break
            await asyncio.sleep(0.01)
        self.seen.append(len(self.relay.received))


def _numbers(relay: _Relay) -> list[int]:
    return [int(body.split("Letter number ")[1].split()[0]) for _, body in relay.received]


async def test_messages_one_after_another_share_one_connection(settings, relay):
    handler, controller = relay
    mailer = _mailer(settings, controller)
    try:
        for n in range(3):
            await mailer.send(_message(n))
    finally:
        await mailer.aclose()
    assert _numbers(handler) == [0, 1, 2]
    assert len({port for port, _ in handler.received}) == 1


async def test_a_relay_that_let_the_kept_connection_go_still_gets_the_message_once(settings, relay):
    handler, controller = relay
    mailer = _mailer(settings, controller)
    handed: list[int] = []
    try:
        await mailer.send(_message(0))
        handler.close_at_mail = 1  # the relay's idle timeout, seen only at the next MAIL

        async def told() -> None:
            handed.append(1)

        await mailer.send(_message(1), handed=told)
    finally:
        await mailer.aclose()
    assert _numbers(handler) == [0, 1]
    assert handed == [1]  # the outbox heard once that the message was going
    assert handler.received[0][0] != handler.received[1][0]  # on a new connection


async def test_a_relay_restarted_between_messages_gets_the_next_on_a_new_connection(settings):
    handler, port = _Relay(), free_port()
    first = Controller(handler, hostname="127.0.0.1", port=port)
    first.start()
    mailer = _mailer(settings, first)
    try:
        await mailer.send(_message(0))
        first.stop()
        again = Controller(handler, hostname="127.0.0.1", port=port)  # the relay, restarted
        again.start()
        try:
            await mailer.send(_message(1))
        finally:
            again.stop()
    finally:
        await mailer.aclose()
    assert _numbers(handler) == [0, 1]


async def test_a_failure_once_the_message_went_is_not_retried(settings, relay):
    """From DATA on, the relay may have the message: the Mailer raises and the outbox decides
    (activities/outbox.py), even on a kept connection."""
    handler, controller = relay
    mailer = _mailer(settings, controller)
    try:
        await mailer.send(_message(0))
        handler.close_at_data = 1
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await mailer.send(_message(1))
        assert refused.value.code == 421
        await mailer.send(_message(2))  # and the next one goes on a connection that works
    finally:
        await mailer.aclose()
    assert _numbers(handler) == [0, 2]


async def test_an_idle_connection_is_not_kept_past_its_time(settings, relay, monkeypatch):
    handler, controller = relay
    monkeypatch.setattr(mail, "IDLE_SECONDS", 0.0)
    mailer = _mailer(settings, controller)
    try:
        await mailer.send(_message(0))
        await mailer.send(_message(1))
    finally:
        await mailer.aclose()
    assert len({port for port, _ in handler.received}) == 2


async def test_messages_at_once_each_go_once_and_few_connections_stay(settings, relay):
    handler, controller = relay
    mailer = _mailer(settings, controller)
    try:
        await asyncio.gather(*(mailer.send(_message(n)) for n in range(10)))
        await asyncio.gather(*(mailer.send(_message(n)) for n in range(10, 14)))
    finally:
        await mailer.aclose()
    assert sorted(_numbers(handler)) == list(range(14))
    # The second wave used only connections the first one left open.
    first = {port for port, _ in handler.received[:10]}
    assert {port for port, _ in handler.received[10:]} <= first
    assert len({port for port, _ in handler.received[10:]}) <= mail.KEEP


@pytest.mark.parametrize("loop_factory", LOOPS)
@pytest.mark.parametrize("size", [pytest.param(1, id="a-letter"),
                                  pytest.param(12_000_000, id="larger-than-the-socket-buffers")])
def test_the_sender_hears_of_the_handover_once_the_relay_has_the_whole_message(
        settings, relay, size, loop_factory):
    """`handed` (where the outbox records `data_sent`) runs only once the end mark went: a relay
    that waits for it before taking the message has taken it while `handed` waits. Before, the
    handover was told before DATA, and a worker killed then lost the message (CI, chaos smoke)."""
    handler, controller = relay
    mailer = _mailer(settings, controller)
    handed = _Handover(handler, _tracking(mailer))

    async def scenario() -> None:
        try:
            await mailer.send(_message(0, padding=size), handed=handed)
        finally:
            await mailer.aclose()

    _on(loop_factory, scenario())
    assert handed.flushed == [True]
    assert handed.seen == [1]
    assert _numbers(handler) == [0]


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_over_starttls_the_handover_is_heard_once_the_relay_has_the_message(
        settings, tmp_path, monkeypatch, loop_factory):
    """Production relays speak STARTTLS: the end mark then goes through TLS's buffers and then
    the socket's transport's, and `handed` still runs only once the relay has the whole message
    (large and small). Before, only TLS's buffers were waited for."""
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this relay's certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = _Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True)
    controller.start()
    mailer = _mailer(settings, controller, starttls=True)
    clients = _tracking(mailer)
    handed = _Handover(handler, clients)

    async def scenario() -> None:
        try:
            for n, size in enumerate([1, 12_000_000]):
                await mailer.send(_message(n, padding=size), handed=handed)
        finally:
            await mailer.aclose()

    try:
        _on(loop_factory, scenario())
    finally:
        controller.stop()
    assert clients[-1].beneath is not None  # the socket's transport was watched too
    assert handed.flushed == [True, True]
    assert handed.seen == [1, 2]
    assert _numbers(handler) == [0, 1]
    assert len({port for port, _ in handler.received}) == 1  # the kept connection, still encrypted


class _Refusing:
    def __init__(self, stage: str, reply: str) -> None:
        self.stage, self.reply = stage, reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.stage == "RCPT":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return self.reply


def test_a_refusal_quoting_the_recipients_address_is_told_without_it():
    """Postfix quotes the recipient it refuses; the step's failure goes into Temporal's history in
    clear, onto the request page and into the staff alert, none of which carries the subject's
    address (attacker audit)."""
    refused = aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(
        550, "5.1.1 <ada.lovelace@example.com>: Recipient address rejected", "ada.lovelace@example.com")])
    told = failure_message(refused)
    assert "ada.lovelace" not in told and told.endswith("550 5.1.1 <<address>>: Recipient address rejected")


@pytest.mark.parametrize(("stage", "reply", "for_good"), [
    ("RCPT", "550 5.1.1 mailbox unavailable", True),
    ("DATA", "554 5.7.1 rejected by policy", True),
    ("RCPT", "451 4.7.1 greylisted, try again later", False),
    ("DATA", "421 4.3.0 shutting down", False),
])
async def test_a_relays_permanent_refusal_fails_the_step_for_staff_and_a_temporary_one_is_retried(
        settings, stage, reply, for_good):
    """A 5yz reply (RFC 5321 4.2.1) refuses the same message again: the step fails at once and
    waits for staff, saying what the relay answered. A 4yz reply is retried."""
    controller = Controller(_Refusing(stage, reply), hostname="127.0.0.1", port=free_port())
    controller.start()
    mailer = _mailer(settings, controller)
    try:
        with pytest.raises(aiosmtplib.SMTPException) as refused:
            await mailer.send(_message(0))
    finally:
        await mailer.aclose()
        controller.stop()
    assert is_deterministic(refused.value) is for_good
    assert failure_message(refused.value).endswith(": " + reply)
