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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from dsrflow.infra.writes import Write, with_writes

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


# The position's place in the canonical JSON: no stored text can hold a NUL (PostgreSQL refuses
# them), so the first escaped NUL is this one.
_SLOT = "\x00"
_SLOT_JSON = json.dumps(_SLOT)


async def append_event(
    conn: asyncpg.Connection,
    *,
    event_key: str,
    event_type: str,
    actor: str,
    request_id: str | None = None,
    data: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    along: Sequence[Write] = (),
) -> str:
    """Append one event to its chain (once per event_key: retried activities do not duplicate);
    return its hash. One statement, with the `along` writes it records: atomic on its own or part
    of the caller's transaction."""
    data = data or {}
    if not _kept_as_is(data):
        data = await conn.fetchval("SELECT $1::jsonb", data)
    arguments = _arguments(event_key, event_type, actor, request_id, data, occurred_at)
    statement, args = with_writes(_APPEND, 9, along)
    return str(await conn.fetchval(statement, *arguments, *args))


async def lock_chain(conn: asyncpg.Connection, request_id: str) -> None:
    """Lock the request's chain head for the caller's transaction, before rows it changes with its
    event: `append_event` locks the head before its `along` writes, so a transaction that locked
    those rows first and appended second waited for a step appending with them, which waited for
    its rows, and PostgreSQL failed one of the two as a deadlock."""
    await conn.execute("SELECT 1 FROM audit_chain_heads WHERE chain_id = $1 FOR UPDATE", request_id)


def append_call(first: int) -> str:
    """`audit_append(...)` with its arguments from $`first` on: an event appended by a statement
    of the caller's, in its own work (a row and the event that records it, in one round trip)."""
    return f"audit_append({', '.join(f'${n}' for n in range(first, first + 9))})"


# One statement (migration 0027): the head locked, a repeated key answered, the event and the new
# head written; the caller gives the event's canonical JSON as the text around its position.
_APPEND = f"SELECT {append_call(1)}"


def append_arguments(*, event_key: str, event_type: str, actor: str, request_id: str | None,
                     data: dict[str, Any], occurred_at: datetime | None = None) -> list[Any]:
    """The nine arguments of `audit_append` for this event. `data` must be what jsonb gives back
    unchanged (append_event reads anything else through the database first)."""
    if not _kept_as_is(data):
        raise ValueError("audit data that jsonb would change must go through append_event")
    return _arguments(event_key, event_type, actor, request_id, data, occurred_at)


def _arguments(event_key: str, event_type: str, actor: str, request_id: str | None, data: Any,
               occurred_at: datetime | None) -> list[Any]:
    # The hashed values must be the stored values: the uuid as Postgres prints it, timestamps to
    # the microsecond, the data as jsonb gives it back.
    request_id = str(uuid.UUID(str(request_id))) if request_id else None
    occurred = (occurred_at or datetime.now(UTC)).astimezone(UTC)
    chain = chain_for(request_id, event_type, occurred)
    row = {"event_key": event_key, "request_id": request_id, "event_type": event_type, "actor": actor,
           "data": data, "occurred_at": occurred, "chain_id": chain, "chain_pos": _SLOT}
    before, _, after = canonical_event(event_body(row)).decode().partition(_SLOT_JSON)
    return [event_key, request_id, event_type, actor, data, occurred, chain, before, after]


def _kept_as_is(value: Any) -> bool:
    """Whether jsonb gives `value` back unchanged: no floats (1e20 comes back as an int), string
    keys only."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _kept_as_is(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_kept_as_is(v) for v in value)
    return value is None or isinstance(value, (str, int))  # a bool is an int


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
