"""Messages of the privacy mailbox in Postgres: stored once, decided once (turned into a request,
attached to one, or dismissed), each step with its audit event in the same transaction.

The sealed record (dsrflow/crypto/mail_files.py) holds everything personal; the row holds what
the inbox sorts by. A decision is taken only while the message is still `new`: two agents
pressing at once, or a form left open, find it decided and change nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from dsrflow.domain.audit import append_event
from dsrflow.infra.writes import Write

DECISIONS = ("converted", "attached", "dismissed")


@dataclass(frozen=True)
class NewMessage:
    content_hash: str
    message_id_hash: str | None
    source: str  # imap | sink
    arrived_at: datetime
    received_at: datetime
    size_bytes: int
    suggested_type: str | None
    suggested_language: str | None


async def store_message(pool: asyncpg.Pool, new: NewMessage, seal: Any) -> tuple[str, bool]:
    """(id, created): the message's row, created unless its content is stored already.
    `seal(id)` gives the sealed record, bound to the id the row gets."""
    message_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        created = await conn.fetchval(
            """INSERT INTO mailbox_messages (id, content_hash, message_id_hash, source, arrived_at,
                   received_at, size_bytes, sealed, suggested_type, suggested_language)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (content_hash) DO NOTHING RETURNING id""",
            message_id, new.content_hash, new.message_id_hash, new.source, new.arrived_at,
            new.received_at, new.size_bytes, seal(message_id), new.suggested_type, new.suggested_language,
        )
        if created is None:
            existing = await conn.fetchval("SELECT id FROM mailbox_messages WHERE content_hash = $1",
                                           new.content_hash)
            return str(existing), False
        await append_event(
            conn, event_key=f"mail:{message_id}:received", event_type="mail.received", actor="mailbox",
            data={"message": message_id, "source": new.source, "received_at": new.received_at.isoformat(),
                  "suggested_type": new.suggested_type, "suggested_language": new.suggested_language},
        )
    return message_id, True


async def get_message(conn: asyncpg.Connection | asyncpg.Pool, message_id: str) -> dict[str, Any] | None:
    try:
        uuid.UUID(message_id)
    except ValueError:
        return None
    row = await conn.fetchrow("SELECT * FROM mailbox_messages WHERE id = $1", message_id)
    return dict(row) if row else None


async def decide(conn: asyncpg.Connection, message_id: str, decision: str, *, actor: str,
                 request_id: str | None = None, reason: str | None = None,
                 automatic: bool = False) -> bool:
    """Record the decision on a new message; False when it was decided already."""
    assert decision in DECISIONS
    async with conn.transaction():
        done = await conn.fetchval(
            """UPDATE mailbox_messages SET status = $2, request_id = $3, decided_by = $4,
                   decided_at = now(), dismiss_reason = $5
               WHERE id = $1 AND status = 'new' RETURNING id""",
            message_id, decision, request_id, actor, reason,
        )
        if done is None:
            return False
        data: dict[str, Any] = {"message": message_id}
        if reason:
            data["reason"] = reason
        if automatic:
            data["automatic"] = True
        await append_event(conn, event_key=f"mail:{message_id}:{decision}", event_type=f"mail.{decision}",
                           actor=actor, request_id=request_id, data=data)
    return True


# The key a console convert opens its request under (api/console/inbox.py): the message's id.
CONVERT_KEY = "mailbox:"


async def finish_interrupted_converts(pool: asyncpg.Pool, message_id: str | None = None) -> None:
    """Messages still `new` whose request a convert opened before it could record its decision
    (the API stopped in between, or Temporal was down and the convert answered 503): recorded as
    converted now, to that request, by whoever opened it. Otherwise the message stayed in the
    Inbox and in the waiting alert, could be dismissed though its request runs, and a convert with
    any field changed was refused for good (the key names another request)."""
    rows = await pool.fetch(
        """SELECT m.id, r.id AS request_id, e.actor FROM mailbox_messages m
           JOIN dsr_requests r ON r.idempotency_key = 'staff:header:' || $2 || m.id::text
           JOIN audit_events e ON e.event_key = r.id::text || ':created'
           WHERE m.status = 'new' AND ($1::uuid IS NULL OR m.id = $1::uuid)""",
        message_id, CONVERT_KEY)
    for row in rows:
        async with pool.acquire() as conn:
            await decide(conn, str(row["id"]), "converted", actor=row["actor"], request_id=str(row["request_id"]))


async def request_messages(conn: asyncpg.Connection | asyncpg.Pool, request_id: str) -> list[dict[str, Any]]:
    """The messages turned into or attached to a request, oldest first."""
    rows = await conn.fetch(
        "SELECT * FROM mailbox_messages WHERE request_id = $1 ORDER BY arrived_at, id", request_id)
    return [dict(r) for r in rows]


async def read_cursor(conn: asyncpg.Pool, mailbox: str) -> tuple[int, int] | None:
    row = await conn.fetchrow("SELECT uidvalidity, last_uid FROM mailbox_cursors WHERE mailbox = $1", mailbox)
    return (row["uidvalidity"], row["last_uid"]) if row else None


async def save_cursor(conn: asyncpg.Pool, mailbox: str, uidvalidity: int, last_uid: int) -> None:
    await conn.execute(
        """INSERT INTO mailbox_cursors (mailbox, uidvalidity, last_uid) VALUES ($1, $2, $3)
           ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = $2,
               last_uid = CASE WHEN mailbox_cursors.uidvalidity = $2
                               THEN greatest(mailbox_cursors.last_uid, $3) ELSE $3 END,
               updated_at = now()""",
        mailbox, uidvalidity, last_uid,
    )


# An outage of the mailbox (migration 0043): since when no session has read it through, whichever
# worker's reader failed, so a worker restarted goes on with the outage its predecessor began.

async def mailbox_failing(pool: asyncpg.Pool, mailbox: str, since: datetime, failure: str) -> None:
    """A session of `mailbox` failed with `failure`; `since` is when its reader began failing.
    The outage already open keeps its start; a new one starts at `since`, or at the end of the
    last one if another reader read the mailbox through after `since` (several workers)."""
    await pool.execute(
        """INSERT INTO mailbox_outages (mailbox, since, failure)
           VALUES ($1, greatest($2::timestamptz, (SELECT max(ended_at) FROM mailbox_outages WHERE mailbox = $1)), $3)
           ON CONFLICT (mailbox) WHERE ended_at IS NULL DO UPDATE SET failure = $3""",
        mailbox, since, failure)


async def open_outage(pool: asyncpg.Pool, mailbox: str) -> asyncpg.Record | None:
    """The outage of `mailbox` still open: its id, since and failure."""
    return await pool.fetchrow("SELECT id, since, failure FROM mailbox_outages WHERE mailbox = $1 AND ended_at IS NULL",
                               mailbox)


async def mailbox_read(pool: asyncpg.Pool, mailbox: str) -> None:
    """A session read `mailbox` through: its open outage ends. One staff were alerted of (an
    alert of it begun, activities/mailbox_alerts.py) has its end recorded once (`mail.readable`);
    any other was read through before staff needed telling (a server restart, a short network
    outage), and leaves no event."""
    outage = await pool.fetchrow(
        "SELECT id, since, EXISTS (SELECT FROM mailbox_outage_alerts a WHERE a.outage = o.id) AS told "
        "FROM mailbox_outages o WHERE mailbox = $1 AND ended_at IS NULL", mailbox)
    if outage is None:
        return
    ended = Write("UPDATE mailbox_outages SET ended_at = now() WHERE id = $1 AND ended_at IS NULL", (outage["id"],))
    if not outage["told"]:
        await ended.execute(pool)
        return
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"mailbox-readable:{outage['id']}", event_type="mail.readable",
                           actor="mailbox", data={"outage": outage["id"], "since": outage["since"].isoformat()},
                           along=[ended])
