"""`make run`'s SMTP sink files mail to the privacy address into the same inbox the IMAP reader
fills: the same message arriving both ways is one message, and our own mail is not filed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiosmtplib

from activities.mailbox_intake import file_message
from devstack.processes import free_port
from devstack.smtp_sink import MailSink, PrivacyInbox
from dsrflow.crypto.hashing import keyed_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.inbound_mail import content_fingerprint
from policy.mailbox import load_mailbox_policy
from tests.support import OUR_SENDER, unique_email
from tests.test_mailbox_console import raw_mail


async def _rows(pool, settings, raw: bytes) -> list:
    digest = keyed_hash(load_secret_key(settings), "mail-content", content_fingerprint(raw))
    return await pool.fetch("SELECT id, source FROM mailbox_messages WHERE content_hash = $1", digest)


async def test_the_sink_files_privacy_mail_once_whichever_way_it_came(settings, pool, tmp_path):
    secret, rules = load_secret_key(settings), load_mailbox_policy()
    sink = MailSink(tmp_path / "mail", free_port(), inbox=PrivacyInbox(
        "Privacy@OneTagger.com", settings.effective_database_url, secret, rules, our_sender=OUR_SENDER))
    sink.start()
    try:
        raw = raw_mail(unique_email("sink"), "Ik wil inzage in mijn gegevens.")
        other = raw_mail(unique_email("elsewhere"), "Not for the privacy address.")
        await aiosmtplib.send(raw, sender="x@example.com", recipients=["privacy@onetagger.com"],
                              hostname="127.0.0.1", port=sink.port)
        await aiosmtplib.send(other, sender="x@example.com", recipients=["sales@onetagger.com"],
                              hostname="127.0.0.1", port=sink.port)
    finally:
        await asyncio.to_thread(sink.stop)
    [row] = await _rows(pool, settings, raw)
    assert row["source"] == "sink" and await _rows(pool, settings, other) == []
    # The same message read over IMAP, with the server's transport headers added, is not filed again.
    relayed = b"Return-Path: <x@example.com>\r\nReceived: from mx by imap; Mon, 1 Dec 2026 10:00:00 +0000\r\n" + raw
    again = await file_message(pool, secret, rules, relayed, arrived_at=datetime.now(UTC), source="imap",
                               our_sender=OUR_SENDER)
    assert again is not None and not again.created and again.message_id == str(row["id"])


async def test_our_own_mail_to_the_privacy_address_is_not_filed(settings, pool):
    raw = raw_mail("privacy@onetagger.com", "Staff alert")
    message_id = raw.split(b"Message-ID: ")[1].split(b"\n")[0].strip().decode()
    await pool.execute("INSERT INTO mail_outbox (mail_key, message_id, state) VALUES ($1, $2, 'sent')",
                       f"test:{message_id}", message_id)
    assert await file_message(pool, load_secret_key(settings), load_mailbox_policy(), raw,
                              arrived_at=datetime.now(UTC), source="sink", our_sender=OUR_SENDER) is None
    assert await _rows(pool, settings, raw) == []


async def test_a_strangers_mail_reusing_one_of_our_message_ids_is_filed_with_a_note(settings, pool):
    """Our Message-IDs derive from request ids, so anyone may write one: such a message was taken
    for our own and dropped unseen, a request a subject could later say we ignored."""
    raw = raw_mail(unique_email("stranger"), "Please erase my data")
    message_id = raw.split(b"Message-ID: ")[1].split(b"\n")[0].strip().decode()
    await pool.execute("INSERT INTO mail_outbox (mail_key, message_id, state) VALUES ($1, $2, 'sent')",
                       f"test:{message_id}", message_id)
    filed = await file_message(pool, load_secret_key(settings), load_mailbox_policy(), raw,
                               arrived_at=datetime.now(UTC), source="sink", our_sender=OUR_SENDER)
    assert filed is not None and filed.created
    assert len(await _rows(pool, settings, raw)) == 1
