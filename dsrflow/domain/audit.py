"""The append-only, hash-chained audit trail.

Each row's hash is sha256(previous hash || canonical JSON of the event). Rows are appended under a
transaction-scoped advisory lock so the chain has one order; a trigger refuses UPDATE, DELETE and
TRUNCATE. `verify_chain` recomputes everything and reports the first row that does not match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

GENESIS = "0" * 64
_APPEND_LOCK = 0x61756474  # "audt"


def canonical_event(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, event: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_event(event)).hexdigest()


def _event_body(row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    occurred = row["occurred_at"].astimezone(UTC)
    return {
        "event_key": row["event_key"],
        "request_id": str(row["request_id"]) if row["request_id"] else None,
        "event_type": row["event_type"],
        "actor": row["actor"],
        "data": row["data"],
        "occurred_at": occurred.isoformat(timespec="microseconds"),
    }


async def append_event(
    conn: asyncpg.Connection,
    *,
    event_key: str,
    event_type: str,
    actor: str,
    request_id: str | None = None,
    data: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> str:
    """Append one event (once per event_key: retried activities do not duplicate); return its hash."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _APPEND_LOCK)
        existing: str | None = await conn.fetchval("SELECT hash FROM audit_events WHERE event_key = $1", event_key)
        if existing:
            return existing
        prev: str = await conn.fetchval("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1") or GENESIS
        # Hash what Postgres will store: jsonb normalises numbers (1e20 reads back as an int).
        data = await conn.fetchval("SELECT $1::jsonb", data or {})
        # Postgres keeps microseconds; truncating here makes the hashed value the stored value.
        occurred = (occurred_at or datetime.now(UTC)).astimezone(UTC)
        row = {
            "event_key": event_key, "request_id": request_id, "event_type": event_type,
            "actor": actor, "data": data or {}, "occurred_at": occurred,
        }
        digest = chain_hash(prev, _event_body(row))
        await conn.execute(
            """INSERT INTO audit_events
                   (event_key, request_id, event_type, actor, data, occurred_at, prev_hash, hash)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            event_key, request_id, event_type, actor, data or {}, occurred, prev, digest,
        )
        return digest


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    count: int
    broken_seq: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"ok {self.count} events"
        return f"broken at event {self.broken_seq}: {self.reason}"


def verify_rows(rows: list[asyncpg.Record], start_hash: str = GENESIS) -> ChainReport:
    """Check a run of consecutive rows; `start_hash` is the hash before the first one."""
    prev = start_hash
    for row in rows:
        if row["prev_hash"] != prev:
            return ChainReport(False, len(rows), row["seq"], "prev_hash does not match the previous row")
        if chain_hash(prev, _event_body(row)) != row["hash"]:
            return ChainReport(False, len(rows), row["seq"], "content does not match its hash")
        prev = row["hash"]
    return ChainReport(True, len(rows))


async def verify_chain(conn: asyncpg.Connection) -> ChainReport:
    rows = await conn.fetch("SELECT * FROM audit_events ORDER BY seq")
    return verify_rows(rows)


async def request_events(
    conn: asyncpg.Connection | asyncpg.Pool, request_id: str, *, after_seq: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """A request's events in chain order (optionally a page: after `after_seq`, at most `limit`)."""
    rows = await conn.fetch(
        "SELECT seq, event_key, event_type, actor, data, occurred_at, prev_hash, hash FROM audit_events"
        " WHERE request_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        request_id, after_seq, limit,
    )
    return [dict(r) for r in rows]


async def verify_request_segment(conn: asyncpg.Connection, request_id: str) -> tuple[list[dict[str, Any]], ChainReport]:
    """A request's events with their hashes, and whether each is anchored in the chain.

    The request's events are not consecutive (other requests' events interleave), so each one is
    checked against its neighbours in the whole chain: its `prev_hash` is the hash of the row
    before it, its own hash is that of its content, and the row after it names its hash. A row
    edited and re-hashed therefore breaks the link to its successor. (`dsrflow audit verify`
    checks the whole chain.)
    """
    rows = await conn.fetch(
        """SELECT e.*,
                  (SELECT p.hash FROM audit_events p WHERE p.seq < e.seq ORDER BY p.seq DESC LIMIT 1) AS before_hash,
                  (SELECT n.prev_hash FROM audit_events n WHERE n.seq > e.seq ORDER BY n.seq LIMIT 1) AS next_prev_hash
             FROM audit_events e WHERE e.request_id = $1 ORDER BY e.seq""",
        request_id,
    )
    report = ChainReport(True, len(rows))
    for row in rows:
        linked = verify_rows([row], start_hash=row["before_hash"] or GENESIS)
        if not linked.ok:
            report = ChainReport(False, len(rows), linked.broken_seq, linked.reason)
            break
        if row["next_prev_hash"] is not None and row["next_prev_hash"] != row["hash"]:
            report = ChainReport(False, len(rows), row["seq"], "the next row does not name this row's hash")
            break
    events = [{"seq": r["seq"], "occurred_at": r["occurred_at"], "event_type": r["event_type"],
               "actor": r["actor"], "data": r["data"], "prev_hash": r["prev_hash"], "hash": r["hash"]}
              for r in rows]
    return events, report
