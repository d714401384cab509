"""Tampering with the audit trail, in a request's chain and in a chain without a request, on
events an anchor already covers and on events after the last anchor.

Each tampering is caught by `verify_audit` (and, for a request, by its evidence pack's check),
except the ones docs/audit.md says nothing inside the database can catch: a rewrite of events
after the last anchor that recomputes every hash to the chain's end, or deletes its tail. Those
cases are asserted too, so the documented limit stays true and no stronger claim creeps in.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from dsrflow.domain.audit import append_event, chain_for
from dsrflow.domain.audit_anchors import write_anchor
from dsrflow.domain.audit_verify import verify_audit, verify_request_chain
from dsrflow.infra.db import connect
from tests.audit_support import clone_database, rehash, seq_at, swap, tampering
from tests.conftest import make_database

EVENTS = 5
DAY = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def template_url(postgres) -> str:
    return await make_database(postgres, "audit_tpl")


async def _chain_of_five(conn, kind: str, anchored_after: int) -> str:
    """Five events in one chain, an anchor after the first `anchored_after`; noise in other chains."""
    rid = str(uuid.uuid4())
    for n in range(EVENTS):
        if n == anchored_after:
            await write_anchor(conn)
        if kind == "request":
            await append_event(conn, event_key=f"{rid}:e{n}", request_id=rid, event_type="test.step",
                               actor="tests", data={"n": n})
        else:
            await append_event(conn, event_key=f"sweep:{rid}:{n}", event_type="sweep.step", actor="sweep",
                               data={"n": n}, occurred_at=DAY + timedelta(seconds=n))
        other = str(uuid.uuid4())  # other requests' events interleave; they must stay intact
        await append_event(conn, event_key=f"{other}:noise", request_id=other, event_type="test.noise", actor="tests")
    if anchored_after == EVENTS:
        await write_anchor(conn)
    return rid if kind == "request" else chain_for(None, "sweep.step", DAY)


# tampering -> (what verify_audit says, whether it is caught after the last anchor)
TAMPERINGS = {
    "edited": ("content does not match its hash", True),
    "edited_and_rehashed": ("prev_hash does not match the previous event of its chain", True),
    "deleted": ("is missing", True),
    "reordered": ("prev_hash does not match the previous event of its chain", True),
    "edited_and_rehashed_to_the_end": ("differs from the hash anchor", False),
    "reordered_and_rehashed_to_the_end": ("differs from the hash anchor", False),
    "deleted_tail": ("which anchor 1 committed to, is missing", False),
}


async def _tamper(conn, how: str, chain: str, pos: int) -> int:
    """Tamper with the event at `pos`; return the seq the verifier should name (0: none)."""
    if how == "deleted_tail":
        pos = EVENTS
    seq = await seq_at(conn, chain, pos)
    if how.startswith("edited"):
        await conn.execute("""UPDATE audit_events SET data = '{"n": 99}' WHERE seq = $1""", seq)
        if how == "edited_and_rehashed":
            await rehash(conn, chain, pos, through_tail=False)
            return await seq_at(conn, chain, pos + 1)  # the next event no longer names it
        if how == "edited_and_rehashed_to_the_end":
            await rehash(conn, chain, pos)
            return await seq_at(conn, chain, EVENTS)  # the anchored head changed
        return seq
    if how.startswith("reordered"):
        later = await seq_at(conn, chain, pos + 1)
        await swap(conn, chain, pos)
        if how == "reordered_and_rehashed_to_the_end":
            await rehash(conn, chain, pos)
            return await seq_at(conn, chain, EVENTS)
        return later  # now at `pos`, it does not follow the event before
    await conn.execute("DELETE FROM audit_events WHERE seq = $1", seq)
    if how == "deleted":
        return await seq_at(conn, chain, pos + 1)  # the gap is found at the next position
    await conn.execute("UPDATE audit_chain_heads SET last_pos = last_pos - 1 WHERE chain_id = $1", chain)
    return 0


@pytest.mark.parametrize("kind", ["request", "no request"])
@pytest.mark.parametrize("phase", ["anchored", "after the last anchor"])
@pytest.mark.parametrize("how", list(TAMPERINGS))
async def test_tampering_is_caught_where_anchoring_can_catch_it(postgres, template_url, kind, phase, how):
    url = await clone_database(postgres, template_url, "tamper")
    conn = await connect(url)
    try:
        # Anchored: all five events, then tamper with the third. After: the first two, then the
        # fourth (and what follows it) is tampered with.
        chain = await _chain_of_five(conn, kind, EVENTS if phase == "anchored" else 2)
        clean = await verify_audit(conn)
        assert clean.ok and clean.count == 2 * EVENTS and clean.anchors >= 1, clean.describe()
        async with tampering(url) as superuser:
            named = await _tamper(superuser, how, chain, 3 if phase == "anchored" else 4)

        report = await verify_audit(conn)
        expected, caught_unanchored = TAMPERINGS[how]
        if phase == "anchored" or caught_unanchored:
            assert not report.ok, report.describe()
            assert expected in report.describe(), report.describe()
            assert report.broken_seq == (named or None), report.describe()
            if kind == "request":  # the evidence pack's check of that one request sees it too
                own = await verify_request_chain(conn, chain)
                assert not own.report.ok and expected in own.report.describe(), own.report.describe()
        else:  # the documented limit: nothing in the database can tell
            assert report.ok, report.describe()
    finally:
        await conn.close()


async def test_an_edited_anchor_and_a_deleted_anchor_are_caught(postgres, template_url):
    url = await clone_database(postgres, template_url, "tamper")
    conn = await connect(url)
    try:
        for _ in range(3):
            await _chain_of_five(conn, "request", EVENTS)
        assert (await verify_audit(conn)).anchors == 3  # one per chain of five
        async with tampering(url) as superuser:
            await superuser.execute("DELETE FROM audit_anchor_heads WHERE anchor_position = 2")
        report = await verify_audit(conn)
        assert (report.ok, report.broken_anchor, report.reason) == (False, 2, "its heads do not match its hash")
        async with tampering(url) as superuser:
            await superuser.execute("DELETE FROM audit_anchors WHERE position = 2")
        report = await verify_audit(conn)
        assert (report.ok, report.broken_anchor, report.reason) == (False, 3, "anchor 2 is missing")
    finally:
        await conn.close()
