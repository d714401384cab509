"""Checking the audit trail: every chain, the anchor chain, and every anchored head.

A chain is intact when its positions run 1, 2, 3, ... without a gap, each row names the hash of
the row before it, and each row's content matches its hash. An anchor is intact when it names
the previous anchor's hash and its heads hash to its own hash. An anchored head is intact when
its chain still holds, at the anchored position, an event with the anchored hash: the only check
a rewrite that recomputed every hash after an edit cannot pass. `verify_audit` checks all of it
in one snapshot (`dsrflow audit verify`); `verify_request_chain` checks one request's share of it
for its evidence pack.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from dsrflow.domain.audit import GENESIS, LEGACY_CHAIN, ChainReport, check_link
from dsrflow.domain.audit_anchors import anchor_hash


class _ChainWalk:
    """Follows rows ordered by chain and position; says what is wrong with the next one."""

    def __init__(self) -> None:
        self.chain: str | None = None
        self.chains = 0
        self.position = 0
        self.prev = GENESIS

    def step(self, row: Mapping[str, Any]) -> str | None:
        if row["chain_id"] != self.chain:
            self.chain, self.position, self.prev = row["chain_id"], 0, GENESIS
            self.chains += 1
        self.position += 1
        if row["chain_pos"] != self.position:
            return f"chain {self.chain}: position {self.position} is missing (next is {row['chain_pos']})"
        reason = check_link(row, self.prev)
        self.prev = row["hash"]
        return f"chain {self.chain} position {row['chain_pos']}: {reason}" if reason else None


def _anchor_problem(anchor: Mapping[str, Any], heads: Sequence[Mapping[str, Any]], prev_hash: str) -> str | None:
    if anchor["prev_hash"] != prev_hash:
        return "prev_hash does not match the previous anchor"
    if anchor_hash(prev_hash, anchor["position"], anchor["anchored_at"], heads) != anchor["hash"]:
        return "its heads do not match its hash"
    return None


_ANCHORS = """
SELECT a.position, a.anchored_at, a.prev_hash, a.hash,
       array_agg(h.chain_id) FILTER (WHERE h.chain_id IS NOT NULL) AS chain_ids,
       array_agg(h.chain_pos) FILTER (WHERE h.chain_id IS NOT NULL) AS chain_poses,
       array_agg(h.hash) FILTER (WHERE h.chain_id IS NOT NULL) AS hashes
  FROM audit_anchors a LEFT JOIN audit_anchor_heads h ON h.anchor_position = a.position
 GROUP BY a.position ORDER BY a.position"""

# The first anchored head that its chain no longer holds as anchored.
_LOST_HEAD = """
SELECT h.anchor_position, h.chain_id, h.chain_pos, e.seq
  FROM audit_anchor_heads h
  LEFT JOIN audit_events e ON e.chain_id = h.chain_id AND e.chain_pos = h.chain_pos
 WHERE e.hash IS DISTINCT FROM h.hash
 ORDER BY h.anchor_position, h.chain_id LIMIT 1"""

_UNANCHORED = """
SELECT coalesce(sum(c.last - coalesce(a.anchored, 0)), 0)
  FROM (SELECT chain_id, max(chain_pos) AS last FROM audit_events GROUP BY chain_id) c
  LEFT JOIN (SELECT chain_id, max(chain_pos) AS anchored FROM audit_anchor_heads GROUP BY chain_id) a
       USING (chain_id)"""


def _heads(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"chain_id": c, "chain_pos": p, "hash": h}
            for c, p, h in zip(row["chain_ids"] or [], row["chain_poses"] or [], row["hashes"] or [], strict=True)]


def _lost_reason(lost: Mapping[str, Any]) -> str:
    where = f"chain {lost['chain_id']} position {lost['chain_pos']}"
    if lost["seq"] is None:
        return f"{where}, which anchor {lost['anchor_position']} committed to, is missing"
    return f"{where} differs from the hash anchor {lost['anchor_position']} committed to"


async def verify_audit(conn: asyncpg.Connection) -> ChainReport:
    """Check every chain, the anchor chain and every anchored head; report the first break."""
    # One snapshot: an append or anchor committing meanwhile must not look like a break.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        walk, count = _ChainWalk(), 0
        async for row in conn.cursor("SELECT * FROM audit_events ORDER BY chain_id, chain_pos", prefetch=2000):
            count += 1
            reason = walk.step(row)
            if reason:
                return ChainReport(False, count, row["seq"], reason, chains=walk.chains)
        anchors, prev = 0, GENESIS
        async for anchor in conn.cursor(_ANCHORS, prefetch=200):
            anchors += 1
            problem = None
            if anchor["position"] != anchors:
                problem = f"anchor {anchors} is missing"
            problem = problem or _anchor_problem(anchor, _heads(anchor), prev)
            if problem:
                return ChainReport(False, count, None, problem, chains=walk.chains, anchors=anchors,
                                   broken_anchor=anchor["position"])
            prev = anchor["hash"]
        lost = await conn.fetchrow(_LOST_HEAD)
        if lost is not None:
            return ChainReport(False, count, lost["seq"], _lost_reason(lost), chains=walk.chains,
                               anchors=anchors, broken_anchor=lost["anchor_position"])
        unanchored = await conn.fetchval(_UNANCHORED)
    return ChainReport(True, count, chains=walk.chains, anchors=anchors, unanchored=unanchored)


@dataclass(frozen=True)
class RequestAudit:
    """A request's events, the check of its chain, and the latest anchor naming each of its chains."""
    events: list[dict[str, Any]]
    report: ChainReport
    anchors: list[dict[str, Any]]


_LEGACY_ROWS = """
SELECT e.*, p.hash AS before_hash, n.prev_hash AS next_prev_hash
  FROM audit_events e
  LEFT JOIN audit_events p ON p.chain_id = e.chain_id AND p.chain_pos = e.chain_pos - 1
  LEFT JOIN audit_events n ON n.chain_id = e.chain_id AND n.chain_pos = e.chain_pos + 1
 WHERE e.request_id = $1 AND e.chain_id = $2 ORDER BY e.chain_pos"""

_LATEST_ANCHOR = """
SELECT a.position, a.anchored_at, a.prev_hash, a.hash, h.chain_pos, h.hash AS head_hash,
       (SELECT b.hash FROM audit_anchors b WHERE b.position = a.position - 1) AS before_hash,
       (SELECT n.prev_hash FROM audit_anchors n WHERE n.position = a.position + 1) AS next_prev_hash,
       (SELECT e.seq FROM audit_events e WHERE e.chain_id = h.chain_id AND e.chain_pos = h.chain_pos
           AND e.hash = h.hash) AS head_seq
  FROM audit_anchor_heads h JOIN audit_anchors a ON a.position = h.anchor_position
 WHERE h.chain_id = $1 ORDER BY h.anchor_position DESC LIMIT 1"""


def _legacy_problem(row: Mapping[str, Any]) -> str | None:
    """A legacy event is checked against its neighbours in the legacy chain (other requests'
    events interleave there): linked to the one before, named by the one after."""
    if row["before_hash"] is None and row["chain_pos"] != 1:
        return "the event before it in the legacy chain is missing"
    reason = check_link(row, row["before_hash"] or GENESIS)
    if reason is None and row["next_prev_hash"] is not None and row["next_prev_hash"] != row["hash"]:
        reason = "the next event does not name this event's hash"
    return reason


async def _anchor_of(conn: asyncpg.Connection, chain: str, last_pos: int) -> tuple[dict[str, Any] | None, ChainReport | None]:
    """The latest anchor naming `chain`, and a break if it or the head it names does not hold."""
    found = await conn.fetchrow(_LATEST_ANCHOR, chain)
    if found is None:
        return None, None
    anchor = {"chain_id": chain, "position": found["position"], "anchored_at": found["anchored_at"],
              "hash": found["hash"], "chain_pos": found["chain_pos"], "head_hash": found["head_hash"],
              "events_after": max(last_pos - found["chain_pos"], 0)}
    heads = await conn.fetch("SELECT chain_id, chain_pos, hash FROM audit_anchor_heads WHERE anchor_position = $1",
                             found["position"])
    problem = _anchor_problem(found, heads, found["before_hash"] or GENESIS)
    if problem is None and found["next_prev_hash"] not in (None, found["hash"]):
        problem = "the next anchor does not name this anchor's hash"
    if problem:
        return anchor, ChainReport(False, 0, None, problem, broken_anchor=found["position"])
    if found["head_seq"] is None:
        lost = {"chain_id": chain, "chain_pos": found["chain_pos"], "anchor_position": found["position"],
                "seq": await conn.fetchval("SELECT seq FROM audit_events WHERE chain_id = $1 AND chain_pos = $2",
                                           chain, found["chain_pos"])}
        return anchor, ChainReport(False, 0, lost["seq"], _lost_reason(lost), broken_anchor=found["position"])
    return anchor, None


async def verify_request_chain(conn: asyncpg.Connection, request_id: str) -> RequestAudit:
    """A request's events with their hashes, checked: its own chain from its first event, and
    against the latest anchor naming it; events from before migration 0023 against their
    neighbours in the legacy chain. (`dsrflow audit verify` checks everything.)"""
    request_id = str(uuid.UUID(request_id))
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        legacy = await conn.fetch(_LEGACY_ROWS, request_id, LEGACY_CHAIN)
        own = await conn.fetch("SELECT * FROM audit_events WHERE chain_id = $1 ORDER BY chain_pos", request_id)
        broken: ChainReport | None = None
        for row in legacy:
            reason = _legacy_problem(row)
            if reason:
                broken = ChainReport(False, 0, row["seq"], f"chain {LEGACY_CHAIN} position {row['chain_pos']}: {reason}")
                break
        walk = _ChainWalk()
        for row in own if broken is None else []:
            reason = walk.step(row)
            if reason:
                broken = ChainReport(False, 0, row["seq"], reason)
                break
        anchors = []
        for chain, last_pos in ((LEGACY_CHAIN, None), (request_id, len(own))):
            if chain == LEGACY_CHAIN and not legacy:
                continue
            if last_pos is None:
                last_pos = await conn.fetchval("SELECT max(chain_pos) FROM audit_events WHERE chain_id = $1", chain)
            anchor, problem = await _anchor_of(conn, chain, last_pos or 0)
            if anchor:
                anchors.append(anchor)
            broken = broken or problem
    rows = sorted([*legacy, *own], key=lambda r: r["seq"])
    count = len(rows)
    report = ChainReport(True, count, chains=len({r["chain_id"] for r in rows}), anchors=len(anchors),
                         unanchored=len(own) - max((a["chain_pos"] for a in anchors if a["chain_id"] == request_id),
                                                   default=0))
    if broken:
        report = ChainReport(False, count, broken.broken_seq, broken.reason, broken_anchor=broken.broken_anchor)
    events = [{"seq": r["seq"], "occurred_at": r["occurred_at"], "event_type": r["event_type"],
               "actor": r["actor"], "data": r["data"], "chain_id": r["chain_id"], "chain_pos": r["chain_pos"],
               "prev_hash": r["prev_hash"], "hash": r["hash"]} for r in rows]
    return RequestAudit(events, report, anchors)
