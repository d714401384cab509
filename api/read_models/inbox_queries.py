"""The privacy mailbox's inbox as the console shows it: messages opened from their sealed records,
each with the deadline it would have as a request (it counts from its receipt whether or not
anyone has opened it) and whether it has waited past the policy's threshold."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from api.read_models.cursors import decode_cursor, encode_cursor
from dsrflow.crypto.mail_files import open_record
from dsrflow.domain.deadlines import compute_deadline, receipt_date, receipt_date_for, working_days_after
from dsrflow.domain.inbound_mail import sound_record
from dsrflow.stores.mailbox_store import get_message, request_messages
from policy.mailbox import MailboxPolicy
from policy.model import Policy


def _opened(row: Mapping[str, Any], secret: bytes) -> dict[str, Any]:
    record: dict[str, Any] = sound_record(open_record(row["sealed"], secret, str(row["id"])))
    return record


def _view(row: dict[str, Any], secret: bytes, policy: Policy, rules: MailboxPolicy, today: date) -> dict[str, Any]:
    record = _opened(row, secret)
    regime = policy.defaults.regime
    # The due date it would have as a request, counted as prepare_request counts it.
    received = receipt_date_for(row["received_at"], policy.defaults.timezone, regime)
    due = compute_deadline(regime, received, establishment=policy.defaults.country if regime == "gdpr" else None).due_date
    # The alert counts the working days of the controller's own office, where the mail waits to be
    # read: its days, in its zone, whatever law a message's request would fall under.
    alert_on = working_days_after(receipt_date(row["arrived_at"], policy.defaults.timezone),
                                  rules.alert_after_working_days, policy.defaults.country)
    return {**{k: v for k, v in row.items() if k != "sealed"}, "id": str(row["id"]), "mail": record,
            "due_date": due, "days_left": (due - today).days,
            "waiting_too_long": row["status"] == "new" and today >= alert_on}


@dataclass
class InboxPage:
    messages: list[dict[str, Any]]
    waiting: int  # new messages in all, on every page
    next_cursor: str | None


async def list_inbox(pool: asyncpg.Pool, secret: bytes, policy: Policy, rules: MailboxPolicy, today: date,
                     *, limit: int = 200, cursor: str | None = None) -> InboxPage:
    """New messages by arrival, oldest first (the one waiting longest is the most urgent), a page
    at a time: a flood of mail (spam, or someone's on purpose) must not hide the later messages,
    each of which may be a request whose deadline is running. Raises InvalidCursor."""
    # Both parts parsed here, as the queue's cursor does, so a crafted cursor is refused as
    # foreign rather than failing in the query (a 500). The time goes as text: asyncpg cannot send
    # one at the calendar's edge (year 1 at +14:00) that Postgres reads without trouble.
    after = decode_cursor(cursor, datetime.fromisoformat, uuid.UUID) if cursor else None
    rows = await pool.fetch(
        """SELECT * FROM mailbox_messages WHERE status = 'new'
             AND ($1::text IS NULL OR (arrived_at, id) > ($1::text::timestamptz, $2::uuid))
           ORDER BY arrived_at, id LIMIT $3""",
        after[0].isoformat() if after else None, after[1] if after else None, limit + 1)
    waiting = await pool.fetchval("SELECT count(*) FROM mailbox_messages WHERE status = 'new'")
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["arrived_at"].isoformat(), str(rows[-1]["id"])) if more else None
    return InboxPage([_view(dict(r), secret, policy, rules, today) for r in rows], waiting, next_cursor)


async def inbox_message(pool: asyncpg.Pool, secret: bytes, policy: Policy, rules: MailboxPolicy, today: date,
                        message_id: str) -> dict[str, Any] | None:
    row = await get_message(pool, message_id)
    if row is None:
        return None
    view = _view(row, secret, policy, rules, today)
    view["same_message_id"] = row["message_id_hash"] is not None and await pool.fetchval(
        "SELECT count(*) FROM mailbox_messages WHERE message_id_hash = $1 AND id <> $2",
        row["message_id_hash"], row["id"]) > 0
    return view


async def evidence_messages(pool: asyncpg.Pool | asyncpg.Connection, secret: bytes,
                            request_id: str) -> list[dict[str, Any]]:
    """The request's e-mails for its evidence pack: headers, text, attachments (names, types,
    sizes, refusals; not their bytes), how each came to the request, by whom and when."""
    out = []
    for row in await request_messages(pool, request_id):
        record = _opened(row, secret)
        out.append({
            "id": str(row["id"]), "source": row["source"], "arrived_at": row["arrived_at"],
            "received_at": row["received_at"], "status": row["status"], "decided_by": row["decided_by"],
            "decided_at": row["decided_at"], "headers": record["headers"], "text": record["text"],
            "attachments": [{k: a[k] for k in ("filename", "content_type", "size", "refused")}
                            for a in record["attachments"]],
            "notes": record["notes"],
        })
    return out
