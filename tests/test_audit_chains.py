"""Per-request audit chains under concurrency, and migration 0023 on a database whose events were
written the old way (one global chain)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dsrflow.domain.audit import GENESIS, LEGACY_CHAIN, append_event
from dsrflow.domain.audit_anchors import write_anchor
from dsrflow.domain.audit_verify import verify_audit, verify_request_chain
from dsrflow.infra.db import connect, create_pool
from dsrflow.infra.migrate import migrate
from tests.audit_support import clone_database, rehash, tampering
from tests.conftest import make_database


@pytest.fixture(scope="module")
async def template_url(postgres) -> str:
    return await make_database(postgres, "chains_tpl")


async def test_concurrent_appends_land_in_correct_chains_once(postgres, template_url):
    url = await clone_database(postgres, template_url, "chains")
    pool = await create_pool(url, min_size=10, max_size=10)
    try:
        requests = [str(uuid.uuid4()) for _ in range(50)]
        shared = str(uuid.uuid4())

        async def one_request(rid: str) -> None:
            for n in range(4):
                async with pool.acquire() as conn:
                    await append_event(conn, event_key=f"{rid}:{n}", request_id=rid, event_type="test.step",
                                       actor="tests", data={"n": n})
                async with pool.acquire() as conn:  # and one event each in a chain they all share
                    await append_event(conn, event_key=f"{shared}:{rid}:{n}", request_id=shared,
                                       event_type="test.shared", actor="tests")

        async def same_key(key: str, rid: str) -> str:
            async with pool.acquire() as conn:
                return await append_event(conn, event_key=key, request_id=rid, event_type="test.once", actor="tests")

        async def anchoring(stop: asyncio.Event) -> int:
            written = 0
            while not stop.is_set():
                async with pool.acquire() as conn:
                    written += await write_anchor(conn) is not None
                await asyncio.sleep(0.01)
            return written

        stop = asyncio.Event()
        anchors = asyncio.create_task(anchoring(stop))
        # Twenty keys appended twice at once: ten twice to one request, ten to two different ones.
        twin_ids = [str(uuid.uuid4()) for _ in range(20)]
        twins = [(f"twin:{n}", twin_ids[n], twin_ids[n] if n % 2 else str(uuid.uuid4())) for n in range(20)]
        results = await asyncio.gather(
            *(one_request(rid) for rid in requests),
            *(same_key(key, rid) for key, a, b in twins for rid in (a, b)))
        stop.set()
        assert await anchors > 0

        hashes = results[len(requests):]
        assert all(hashes[2 * n] == hashes[2 * n + 1] for n in range(len(twins))), "each key's twin got its hash"
        assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_key LIKE 'twin:%'") == len(twins)
        positions = await pool.fetch(
            "SELECT chain_id, array_agg(chain_pos ORDER BY chain_pos) AS pos FROM audit_events"
            " WHERE event_type IN ('test.step', 'test.shared') GROUP BY chain_id")
        by_chain = {r["chain_id"]: r["pos"] for r in positions}
        assert by_chain.pop(shared) == list(range(1, 4 * len(requests) + 1))
        assert len(by_chain) == len(requests)
        assert all(pos[:4] == [1, 2, 3, 4] for pos in by_chain.values())
        async with pool.acquire() as conn:
            await write_anchor(conn)
            report = await verify_audit(conn)
        assert report.ok and report.unanchored == 0, report.describe()
        assert report.count == 8 * len(requests) + len(twins) and report.chains == len(requests) + 1 + len(twins)
    finally:
        await pool.close()


def _old_hash(prev: str, event: dict) -> str:
    """The hash as the code before migration 0023 computed it (no chain, no position)."""
    return hashlib.sha256(prev.encode() + json.dumps(event, sort_keys=True, separators=(",", ":"),
                                                      ensure_ascii=False).encode()).hexdigest()


async def test_migration_keeps_old_events_verifiable_and_anchors_them(postgres, tmp_path):
    name = f"legacy_{uuid.uuid4().hex[:10]}"
    await postgres.ensure_database(name)
    url = postgres.url(name)
    await migrate(url, before="0023")
    rid, other = str(uuid.uuid4()), str(uuid.uuid4())
    conn = await connect(url)
    try:
        # Eight events written the old way: one chain through every request, with one without.
        prev, start = GENESIS, datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
        for n, request_id in enumerate([rid, other, rid, None, other, rid, other, rid]):
            event = {"event_key": f"old:{n}", "request_id": request_id, "event_type": "test.old",
                     "actor": "tests", "data": {"n": n},
                     "occurred_at": (start + timedelta(minutes=n)).isoformat(timespec="microseconds")}
            digest = _old_hash(prev, event)
            await conn.execute(
                """INSERT INTO audit_events (event_key, request_id, event_type, actor, data, occurred_at, prev_hash, hash)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                event["event_key"], request_id, "test.old", "tests", {"n": n}, start + timedelta(minutes=n), prev, digest)
            prev = digest

        assert "0023" in await migrate(url)
        report = await verify_audit(conn)
        assert report.ok and (report.count, report.chains, report.anchors, report.unanchored) == (8, 1, 0, 8), \
            report.describe()
        # New events of the same request go in its own chain; its evidence shows both.
        await append_event(conn, event_key=f"{rid}:new", request_id=rid, event_type="test.new", actor="tests")
        own = await verify_request_chain(conn, rid)
        assert own.report.ok and own.report.count == 5, own.report.describe()
        assert [(e["chain_id"], e["chain_pos"]) for e in own.events] == [
            (LEGACY_CHAIN, 1), (LEGACY_CHAIN, 3), (LEGACY_CHAIN, 6), (LEGACY_CHAIN, 8), (rid, 1)]

        anchor = await write_anchor(conn)
        assert anchor is not None and anchor.chains == 2  # the legacy chain's head and the request's
        legacy_head = await conn.fetchrow(
            "SELECT chain_pos, hash FROM audit_anchor_heads WHERE chain_id = $1", LEGACY_CHAIN)
        assert (legacy_head["chain_pos"], legacy_head["hash"]) == (8, prev)
        report = await verify_audit(conn)
        assert report.ok and (report.count, report.chains, report.anchors, report.unanchored) == (9, 2, 1, 0)
        assert [a["chain_id"] for a in (await verify_request_chain(conn, rid)).anchors] == [LEGACY_CHAIN, rid]

        # An old event edited and the legacy chain re-hashed to its end: the anchor catches it.
        async with tampering(url) as superuser:
            await superuser.execute("""UPDATE audit_events SET data = '{"n": 42}' WHERE event_key = 'old:2'""")
            await rehash(superuser, LEGACY_CHAIN, 3)
        report = await verify_audit(conn)
        assert not report.ok and "differs from the hash anchor 1" in report.describe(), report.describe()
        own = await verify_request_chain(conn, rid)
        assert not own.report.ok and "differs from the hash anchor 1" in own.report.describe()
    finally:
        await conn.close()
