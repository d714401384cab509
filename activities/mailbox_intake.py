"""Filing an e-mail that reached the privacy mailbox: the one path the IMAP reader and the
embedded SMTP sink share. Read it (dsrflow/domain/inbound_mail.py), suggest its type and language
(policy/mailbox.py), store it once, sealed, and thread a reply to one of our letters onto its
request.

A message we sent ourselves (a staff alert to the privacy address, which is also the staff
address in the default policy) is recognised by its Message-ID in our outbox and not filed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from dsrflow.crypto.hashing import keyed_hash
from dsrflow.crypto.mail_files import seal_record
from dsrflow.domain.inbound_mail import ParsedMail, content_fingerprint, parse_message, received_at_for
from dsrflow.stores.mailbox_store import NewMessage, decide, store_message
from policy.mailbox import MailboxPolicy

# Our letters' subject lines end "(ref. 1a2b3c4d)" (nl, fr, de: "(ref. …)", "(réf. …)", "(Ref. …)"):
# the first block of the request's id.
_REFERENCE = re.compile(r"\((?:ref|réf|az)\.?\s*([0-9a-f]{8})\)", re.IGNORECASE)


@dataclass(frozen=True)
class Filed:
    message_id: str
    created: bool
    request_id: str | None  # the request it was threaded onto, automatically


async def _ours(pool: asyncpg.Pool, parsed: ParsedMail) -> bool:
    return bool(parsed.message_id) and bool(await pool.fetchval(
        "SELECT 1 FROM mail_outbox WHERE message_id = $1", parsed.message_id))


async def thread_for(pool: asyncpg.Pool, parsed: ParsedMail) -> str | None:
    """The request a reply answers: one of our letters it names in In-Reply-To or References, or
    the reference in its subject line when the sender is that request's subject (a reference is
    eight hex digits: anyone could type one, so it never threads a stranger's mail)."""
    if parsed.replies_to:
        found = await pool.fetchval(
            "SELECT request_id FROM mail_outbox WHERE message_id = ANY($1::text[]) AND request_id IS NOT NULL "
            "ORDER BY claimed_at DESC LIMIT 1", parsed.replies_to)
        if found:
            return str(found)
    refs = sorted({m.group(1).lower() for m in _REFERENCE.finditer(parsed.subject)})
    if not refs or parsed.sender is None:
        return None
    rows = await pool.fetch(
        """SELECT id FROM dsr_requests
            WHERE left(id::text, 8) = ANY($1::text[]) AND lower(subject_email) = $2""",
        refs, parsed.sender)
    return str(rows[0]["id"]) if len(rows) == 1 else None


async def file_message(pool: asyncpg.Pool, secret: bytes, rules: MailboxPolicy, raw: bytes, *,
                       arrived_at: datetime, source: str) -> Filed | None:
    """Store `raw` (once, whatever the number of calls); None for a message of our own."""
    parsed = parse_message(raw, rules.limits, rules.refusal)
    if await _ours(pool, parsed):
        return None
    suggestion = rules.suggest(parsed.subject, parsed.text)
    received = received_at_for(parsed.date, arrived_at, timedelta(hours=rules.date_tolerance_hours))
    record = {**parsed.as_record(), "arrived_at": arrived_at.isoformat(), "size": len(raw)}
    new = NewMessage(
        content_hash=keyed_hash(secret, "mail-content", content_fingerprint(raw)),
        message_id_hash=keyed_hash(secret, "mail-id", parsed.message_id) if parsed.message_id else None,
        source=source, arrived_at=arrived_at, received_at=received, size_bytes=len(raw),
        suggested_type=suggestion.type.value if suggestion.type else None,
        suggested_language=suggestion.language.value if suggestion.language else None,
    )
    message_id, created = await store_message(pool, new, lambda mid: seal_record(record, secret, mid))
    request_id = await thread_for(pool, parsed)
    if request_id is not None:
        async with pool.acquire() as conn:
            # A message stored before a crash is threaded on the retry: decide() acts once.
            await decide(conn, message_id, "attached", actor="mailbox", request_id=request_id, automatic=True)
    return Filed(message_id, created, request_id)
