"""The append-only, hash-chained audit trail.

Every event belongs to one chain: its request's (the chain id is the request id) or, for events
without a request (sweeps, staff tokens, legal holds), the chain of its event family and UTC day
(`legal_hold:2026-05-04`). Each row's hash is sha256(previous hash in its chain || canonical JSON
of the event, which names its chain and position). Appends lock only their chain's head row, so
appends to different requests never wait for each other; the anchors (audit_anchors.py) chain
the heads together, and audit_verify.py checks it all. A trigger refuses UPDATE, DELETE and
TRUNCATE.

Rows written before migration 0023 form the chain `legacy`, hashed without chain and position.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

GENESIS = "0" * 64
LEGACY_CHAIN = "legacy"


def canonical_event(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, event: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_event(event)).hexdigest()


def chain_for(request_id: str | None, event_type: str, occurred_at: datetime) -> str:
    """The chain an event goes in: its request's, or its family's of that UTC day."""
    if request_id is not None:
        return request_id
    return f"{event_type.split('.', 1)[0]}:{occurred_at.astimezone(UTC).date().isoformat()}"


def event_body(row: Mapping[str, Any]) -> dict[str, Any]:
    """What is hashed: the event, and (since 0023) the chain and position it was appended at, so
    an event moved to another place in its chain, or to another chain, no longer matches."""
    occurred = row["occurred_at"].astimezone(UTC)
    body = {
        "event_key": row["event_key"],
        "request_id": str(row["request_id"]) if row["request_id"] else None,
        "event_type": row["event_type"],
        "actor": row["actor"],
        "data": row["data"],
        "occurred_at": occurred.isoformat(timespec="microseconds"),
    }
    if row["chain_id"] != LEGACY_CHAIN:
        body |= {"chain_id": row["chain_id"], "chain_pos": row["chain_pos"]}
    return body


# One statement (migration 0027): the head locked, a repeated key answered, the event and the new
# head written; the caller gives the event's canonical JSON as the text around its position.
_APPEND_ONE = "SELECT audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9)"
# The position's place in the canonical JSON: no stored text can hold a NUL (PostgreSQL refuses
# them), so the first escaped NUL is this one.
_SLOT = "\x00"
_SLOT_JSON = json.dumps(_SLOT)

# For data that jsonb would give back changed, two statements: the head locked along with the
# data as jsonb stores it and any event under the key; then the event and the head. An event_key
# appended meanwhile to another chain (a caller that changed its mind about the request) leaves
# both untouched.
_LOCK_HEAD = """SELECT h.last_pos, h.last_hash, $2::jsonb AS data,
                       (SELECT hash FROM audit_events WHERE event_key = $3) AS existing
                  FROM audit_chain_heads h WHERE h.chain_id = $1 FOR UPDATE OF h"""
_APPEND = """WITH appended AS (
                 INSERT INTO audit_events (event_key, request_id, event_type, actor, data,
                                           occurred_at, chain_id, chain_pos, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (event_key) DO NOTHING RETURNING hash)
             UPDATE audit_chain_heads SET last_pos = $8, last_hash = $10
              WHERE chain_id = $7 AND EXISTS (SELECT FROM appended) RETURNING last_hash"""


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
    """Append one event to its chain (once per event_key: retried activities do not duplicate);
    return its hash. Atomic on its own, or part of the caller's transaction when there is one
    (nothing here fails on a repeated key, so no savepoint is needed)."""
    # The hashed values must be the stored values: the uuid as Postgres prints it, timestamps to
    # the microsecond, the data as jsonb gives it back.
    request_id = str(uuid.UUID(str(request_id))) if request_id else None
    occurred = (occurred_at or datetime.now(UTC)).astimezone(UTC)
    row = {"event_key": event_key, "request_id": request_id, "event_type": event_type, "actor": actor,
           "data": data or {}, "occurred_at": occurred, "chain_id": chain_for(request_id, event_type, occurred),
           "chain_pos": _SLOT}
    if _kept_as_is(row["data"]):
        before, _, after = canonical_event(event_body(row)).decode().partition(_SLOT_JSON)
        return str(await conn.fetchval(_APPEND_ONE, event_key, request_id, event_type, actor, row["data"],
                                       occurred, row["chain_id"], before, after))
    if conn.is_in_transaction():
        return await _append(conn, row)
    async with conn.transaction():
        return await _append(conn, row)


def _kept_as_is(value: Any) -> bool:
    """Whether jsonb gives `value` back unchanged, so that its canonical JSON can be written before
    it is stored: no floats (1e20 comes back as an int), string keys only."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _kept_as_is(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_kept_as_is(v) for v in value)
    return value is None or isinstance(value, (str, int))  # a bool is an int


async def _append(conn: asyncpg.Connection, row: dict[str, Any]) -> str:
    chain, event_key = row["chain_id"], row["event_key"]
    head = await conn.fetchrow(_LOCK_HEAD, chain, row["data"], event_key)
    if head is None:  # the chain's first event creates its head row, which is then its lock
        await conn.execute("INSERT INTO audit_chain_heads (chain_id, last_pos, last_hash)"
                           " VALUES ($1, 0, $2) ON CONFLICT DO NOTHING", chain, GENESIS)
        head = await conn.fetchrow(_LOCK_HEAD, chain, row["data"], event_key)
    if head["existing"]:
        return str(head["existing"])
    row = {**row, "data": head["data"], "chain_pos": head["last_pos"] + 1}
    digest = chain_hash(head["last_hash"], event_body(row))
    appended = await conn.fetchval(_APPEND, event_key, row["request_id"], row["event_type"], row["actor"],
                                   row["data"], row["occurred_at"], chain, row["chain_pos"], head["last_hash"], digest)
    if appended is None:
        appended = await conn.fetchval("SELECT hash FROM audit_events WHERE event_key = $1", event_key)
    return str(appended)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    count: int
    broken_seq: int | None = None
    reason: str | None = None
    chains: int = 0
    anchors: int = 0
    unanchored: int = 0  # events after their chain's last anchored position
    broken_anchor: int | None = None

    def describe(self) -> str:
        if self.ok:
            return (f"ok {self.count} events in {self.chains} chain(s); {self.anchors} anchor(s); "
                    f"{self.unanchored} event(s) not yet anchored")
        if self.broken_seq is None and self.broken_anchor is not None:
            return f"broken at anchor {self.broken_anchor}: {self.reason}"
        return f"broken at event {self.broken_seq}: {self.reason}"


def check_link(row: Mapping[str, Any], prev_hash: str) -> str | None:
    """Why a row does not follow `prev_hash` or does not match its own hash; None if it does."""
    if row["prev_hash"] != prev_hash:
        return "prev_hash does not match the previous event of its chain"
    if chain_hash(prev_hash, event_body(row)) != row["hash"]:
        return "content does not match its hash"
    return None


def verify_rows(rows: list[Mapping[str, Any]], start_hash: str = GENESIS) -> ChainReport:
    """Check a run of consecutive rows of one chain; `start_hash` is the hash before the first."""
    prev = start_hash
    for row in rows:
        reason = check_link(row, prev)
        if reason:
            return ChainReport(False, len(rows), row["seq"], reason, chains=1)
        prev = row["hash"]
    return ChainReport(True, len(rows), chains=1)


async def request_events(
    conn: asyncpg.Connection | asyncpg.Pool, request_id: str, *, after_seq: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """A request's events in the order they were appended (optionally a page: after `after_seq`,
    at most `limit`)."""
    rows = await conn.fetch(
        "SELECT seq, event_key, event_type, actor, data, occurred_at, chain_id, chain_pos, prev_hash, hash"
        " FROM audit_events WHERE request_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        request_id, after_seq, limit,
    )
    return [dict(r) for r in rows]
