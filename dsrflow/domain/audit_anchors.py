"""Anchors: a global chain over the heads of the per-request audit chains.

Each anchor hashes the previous anchor's hash and the head (chain id, last position, last hash)
of every chain that changed since the previous anchor. A chain rewritten after it was anchored
(a deleted tail, an edited event re-hashed to the end) no longer has the anchored hash at the
anchored position, however carefully its own hashes were recomputed. Anchors are written by the
worker's schedule (workers/schedules.py) and by `dsrflow audit verify --anchor`; only anchor
writers take the anchor lock, appends never do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from dsrflow.domain.audit import GENESIS

_ANCHOR_LOCK = 0x616E6368  # "anch": one anchor writer at a time, so the anchor chain has one order


@dataclass(frozen=True)
class Anchor:
    position: int
    hash: str
    chains: int


def anchor_hash(prev_hash: str, position: int, anchored_at: datetime,
                heads: Iterable[Mapping[str, Any]]) -> str:
    """sha256(previous anchor's hash || canonical JSON of the position, the time and the heads,
    sorted by chain id as Python sorts strings, whatever the database's collation)."""
    body = {
        "position": position,
        "anchored_at": anchored_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "heads": sorted([h["chain_id"], h["chain_pos"], h["hash"]] for h in heads),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


async def write_anchor(conn: asyncpg.Connection) -> Anchor | None:
    """Anchor the heads of every chain that changed since the last anchor; None if none did."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ANCHOR_LOCK)
        # The one statement of real work: the changed heads, marked anchored. An append holding
        # a head row is waited for, and its new head is the one anchored.
        heads = [{"chain_id": r["chain_id"], "chain_pos": r["last_pos"], "hash": r["last_hash"]}
                 for r in await conn.fetch(
                     "UPDATE audit_chain_heads SET anchored_pos = last_pos WHERE last_pos > anchored_pos"
                     " RETURNING chain_id, last_pos, last_hash")]
        if not heads:
            return None
        last = await conn.fetchrow("SELECT position, hash FROM audit_anchors ORDER BY position DESC LIMIT 1")
        position = (last["position"] if last else 0) + 1
        prev_hash = last["hash"] if last else GENESIS
        anchored_at = datetime.now(UTC)
        digest = anchor_hash(prev_hash, position, anchored_at, heads)
        await conn.execute(
            "INSERT INTO audit_anchors (position, anchored_at, prev_hash, hash) VALUES ($1, $2, $3, $4)",
            position, anchored_at, prev_hash, digest)
        await conn.execute(
            """INSERT INTO audit_anchor_heads (anchor_position, chain_id, chain_pos, hash)
               SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[])""",
            position, [h["chain_id"] for h in heads], [h["chain_pos"] for h in heads], [h["hash"] for h in heads])
    return Anchor(position, digest, len(heads))
