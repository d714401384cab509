"""Filing an e-mail that reached the privacy mailbox: the one path the IMAP reader and the
embedded SMTP sink share. Read it (dsrflow/domain/inbound_mail.py), suggest its type and language
(policy/mailbox.py), store it once, sealed, and thread a reply to one of our letters onto its
request.

A message we sent ourselves (a staff alert to the privacy address, which is also the staff
address in the default policy) is recognised by its Message-ID in our outbox and not filed.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from dsrflow.crypto.hashing import keyed_hash
from dsrflow.crypto.mail_files import seal_record
from dsrflow.domain.inbound_mail import ParsedMail, content_fingerprint, parse_message, received_at_for
from dsrflow.domain.references import typed_reference
from dsrflow.domain.sender_authentication import vouched_for
from dsrflow.stores.mailbox_store import NewMessage, decide, store_message
from policy.mailbox import MailboxPolicy

# Our letters' subject lines end "(ref. 1a2b3c4d)" (nl, fr, de: "(ref. …)", "(réf. …)", "(Ref. …)"):
# the first block of the request's id.
# "(ref. KD7QX3M9TB)" as our subject lines write a request's short reference (dsrflow/domain/
# references.py), in each language; letters sent before short references had eight hex digits.
_REFERENCE = re.compile(r"\((?:ref|réf|az)\.?\s*([0-9A-Za-z]{8,10})\)", re.IGNORECASE)
_LEGACY_REFERENCE = re.compile(r"^[0-9a-f]{8}$")
# The embedded stack's own mailbox (devstack/smtp_sink.py): reached on loopback only, it has no
# receiving server to vouch for a sender, and its From is believed.
SINK = "sink"


@dataclass(frozen=True)
class Filed:
    message_id: str
    created: bool
    request_id: str | None  # the request it was threaded onto, automatically


async def _ours(pool: asyncpg.Pool, parsed: ParsedMail, our_sender: str) -> bool:
    """A message we sent that reached our own mailbox (a staff alert to this address): one of our
    Message-IDs, from our sender address. Our Message-IDs derive from request ids, so anyone may
    write one: a stranger's message that reuses one was dropped unseen (a request a subject could
    later say we ignored). It is now filed like any other, with a note."""
    if not parsed.message_id or not await pool.fetchval(
            "SELECT 1 FROM mail_outbox WHERE message_id = $1", parsed.message_id):
        return False
    if parsed.sender == our_sender.lower():
        return True
    parsed.notes.append("carries the Message-ID of a message we sent, but not from our address "
                        f"{our_sender.lower()}: filed as any other message")
    return False


async def thread_for(pool: asyncpg.Pool, parsed: ParsedMail) -> str | None:
    """The request a reply answers, when the sender is that request's subject: one of our letters
    it names in In-Reply-To or References, or the reference in its subject line. Either can be
    written by anyone who knows a request's id (our Message-IDs derive from it), so a stranger's
    mail is never threaded onto someone's request: it waits in the Inbox for an agent."""
    if parsed.sender is None:
        return None
    if parsed.replies_to:
        found = await pool.fetchval(
            """SELECT o.request_id FROM mail_outbox o JOIN dsr_requests r ON r.id = o.request_id
                WHERE o.message_id = ANY($1::text[]) AND lower(r.subject_email) = $2
                ORDER BY o.claimed_at DESC LIMIT 1""", parsed.replies_to, parsed.sender)
        if found:
            return str(found)
    written = {m.group(1) for m in _REFERENCE.finditer(parsed.subject)}
    references = sorted(filter(None, map(typed_reference, written)))
    legacy = sorted(w.lower() for w in written if _LEGACY_REFERENCE.match(w.lower()))
    if not references and not legacy:
        return None
    rows = await pool.fetch(
        """SELECT id FROM dsr_requests
            WHERE (dsr_reference(id) = ANY($1::text[]) OR left(id::text, 8) = ANY($2::text[]))
              AND lower(subject_email) = $3""",
        references, legacy, parsed.sender)
    return str(rows[0]["id"]) if len(rows) == 1 else None


async def file_message(pool: asyncpg.Pool, secret: bytes, rules: MailboxPolicy, raw: bytes, *,
                       arrived_at: datetime, source: str, our_sender: str, size: int | None = None) -> Filed | None:
    """Store `raw` (once, whatever the number of calls); None for a message of our own (one we
    sent from `our_sender`, the policy's controller.sender_email). `size`: the message's own, where
    `raw` is only its beginning (the IMAP reader fetches no more than the size limit and a byte)."""
    size = len(raw) if size is None else size
    # On a thread: the parser's time grows with the message (a 25 MiB message of tiny parts takes
    # about two minutes), and the worker's event loop also runs requests' activities.
    parsed = await asyncio.to_thread(parse_message, raw, rules.limits, rules.refusal)
    if await _ours(pool, parsed, our_sender):
        return None
    request_id = await thread_for(pool, parsed)
    # On a thread, as the parse: the header parser reads the whole message.
    vouched = source == SINK or await asyncio.to_thread(vouched_for, raw, parsed.sender, rules.authenticated_by)
    if request_id is not None and not vouched:
        # A forged From would put a stranger's words on the subject's request as theirs.
        parsed.notes.append(
            "from the address of the subject of a request it names, but not threaded onto it: the receiving "
            "mail server did not vouch for the sender (no DMARC or DKIM pass by a server in the mailbox "
            "policy's authenticated_by); attach it once you are sure it is theirs")
        request_id = None
    elif not vouched and parsed.sender is not None:
        # Said of every message, not only of a reply that would have threaded: a forged "please
        # withdraw my request" from a subject's address, attached by hand, read as theirs, and any
        # agent may record a subject's withdrawal.
        parsed.notes.append(
            "the receiving mail server did not vouch for the sender (no DMARC or DKIM pass by a server in the "
            "mailbox policy's authenticated_by): anyone can write a From header, so confirm with the subject at "
            "that address before acting on this message as theirs (a withdrawal, say)")
    suggestion = rules.suggest(parsed.subject, parsed.text)
    received = received_at_for(parsed.date, arrived_at, timedelta(hours=rules.date_tolerance_hours))
    record = {**parsed.as_record(), "arrived_at": arrived_at.isoformat(), "size": size}
    new = NewMessage(
        content_hash=keyed_hash(secret, "mail-content", content_fingerprint(raw)),
        message_id_hash=keyed_hash(secret, "mail-id", parsed.message_id) if parsed.message_id else None,
        source=source, arrived_at=arrived_at, received_at=received, size_bytes=size,
        suggested_type=suggestion.type.value if suggestion.type else None,
        suggested_language=suggestion.language.value if suggestion.language else None,
    )
    message_id, created = await store_message(pool, new, lambda mid: seal_record(record, secret, mid))
    if request_id is not None:
        async with pool.acquire() as conn:
            # A message stored before a crash is threaded on the retry: decide() acts once.
            await decide(conn, message_id, "attached", actor="mailbox", request_id=request_id, automatic=True)
    return Filed(message_id, created, request_id)
