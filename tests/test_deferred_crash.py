"""A deferred erasure (a statutory hold ended) whose process dies after the system committed and
before the sweep marked its rows done: the erasure's ledger rows were kept inside the system's
transaction, so the retry, which finds the records gone and erases nothing, leaves them complete.
Before, they were written after the commit and never came: a backup restore would then have brought
the records back for good (`dsrflow erasure replay` reads only the ledger).

The same window on the path of a released legal-claims hold (`_released`: the subject's erasure run
again in the system, then its rows and `erasure.deferred_erased` in one statement): none while the
rows stay undone, one once the next run marks them (hDY)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.testing import ActivityEnvironment

from activities import deferred
from activities.deferred import DeferredErasureActivities
from dsrflow.stores.holds_store import release_hold
from schemas.holds import SweepInput
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack_alone
from tests.process_support import sweep_killed_at
from tests.support import attested_request, fetch_rows, place_claims_hold, staff_headers
from workers.dsr_worker import activity_context, build_worker

GRACE = "grace@example.com"
AS_OF = datetime(2036, 1, 2, 12, tzinfo=UTC)  # Ada's 2025 invoices are kept until 31 Dec 2035

_LEDGER = ("SELECT dataset, record_key, count(*) AS n FROM erasure_ledger "
           "WHERE request_id = $1 AND origin = 'deferred' GROUP BY 1, 2")


async def _erased_events(pool, rid: str) -> list[dict]:
    return [dict(r["data"]) for r in await pool.fetch(
        "SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'erasure.deferred_erased' ORDER BY seq",
        rid)]


async def test_a_sweep_killed_after_the_system_committed_leaves_every_ledger_row(
        postgres, settings, dev_server, tmp_path, monkeypatch):
    client = dev_server.client
    # A database of its own: the sweep takes every due record in its database, and other modules
    # leave some there, of demo systems of their own.
    async with fanout_stack_alone(postgres, settings, client, tmp_path, "deferred") as (stack, pool):
        # Grace's CRM records kept under a legal-claims hold, released once Ada's part is done.
        hold = await place_claims_hold(pool, stack.settings, GRACE, ["crm"])
        async with build_worker(client, stack.settings, pool), api(stack) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "subject": {"email": "ada@example.com"}, "identity_attested": True})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            grace = await attested_request(http, pool, "erasure", GRACE)
            for request in (rid, grace):
                await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(request)).result(), 90)
        due = await pool.fetch("SELECT system, dataset, record_key FROM deferred_erasures "
                               "WHERE request_id = $1 AND erase_after <= $2", rid, AS_OF.date())
        billing = [r for r in due if r["system"] == "billing"]
        assert billing

        await sweep_killed_at(stack.settings, "deferred-erased~billing", AS_OF)
        # Billing committed and its rows are not marked done; the evidence is there already.
        gone = [r["record_key"] for r in billing if r["dataset"] == "invoices"]
        assert await fetch_rows(stack.databases["billing"], "SELECT 1 FROM invoices WHERE id::text = ANY($1::text[])",
                                gone) == []
        assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1 AND done_at IS NULL "
                                   "AND system = 'billing' AND erase_after <= $2", rid, AS_OF.date()) == len(billing)
        assert await _erased_events(pool, rid) == []  # not marked done: not on the trail either

        # The next day's sweep (here: the same, run again) finds the records gone and settles. Its
        # billing group is slow (a system with years of records): the sweep heartbeats while it
        # runs, not only between groups, or Temporal would start a second attempt beside it.
        sweep = DeferredErasureActivities(activity_context(stack.settings, pool)).sweep
        erase, group = deferred.erase_records, []

        async def slow_erase(*args, **kwargs):
            group.append(loop.time())
            await asyncio.sleep(3.5)
            try:
                return await erase(*args, **kwargs)
            finally:
                group.append(loop.time())

        loop, beats = asyncio.get_running_loop(), []
        monkeypatch.setattr(deferred, "erase_records", slow_erase)
        environment = ActivityEnvironment()
        environment.on_heartbeat = lambda *details: beats.append(loop.time())
        await environment.run(sweep, SweepInput(reason="test", as_of=AS_OF))
        assert any(group[0] < beat < group[-1] for beat in beats), (group, beats)
        assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1 AND done_at IS NULL "
                                   "AND erase_after <= $2", rid, AS_OF.date()) == 0
        ledger = await pool.fetch(_LEDGER, rid)
        assert sorted((r["dataset"], r["record_key"]) for r in ledger) == \
            sorted((r["dataset"], r["record_key"]) for r in due)
        assert all(r["n"] == 1 for r in ledger)
        # The request's trail says it, once per system, in the statement that marked the rows done.
        events = await _erased_events(pool, rid)
        assert [e for e in events if e["system"] == "billing"] == [
            {"system": "billing", "records": len(billing), "kept_by": ["statutory"]}], events
        assert sum(e["records"] for e in events) == len(due)

        # The released hold's path: the CRM erased Grace's records, the sweep died before marking.
        kept = await pool.fetch("SELECT dataset, record_key FROM deferred_erasures WHERE request_id = $1 "
                                "AND system = 'crm' AND hold_kind = 'legal_claims'", grace)
        assert kept
        async with pool.acquire() as conn:
            await release_hold(conn, hold["id"], "compliance:test", reason="Claim settled")
        await sweep_killed_at(stack.settings, "deferred-erased~crm", AS_OF)
        contacts = [r["record_key"] for r in kept if r["dataset"] == "contacts"]
        assert contacts and await fetch_rows(
            stack.databases["crm"], "SELECT 1 FROM contacts WHERE id::text = ANY($1::text[])", contacts) == []
        assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1 AND done_at IS NULL "
                                   "AND system = 'crm'", grace) == len(kept)
        assert await _erased_events(pool, grace) == []
        await environment.run(sweep, SweepInput(reason="test", as_of=AS_OF))
        assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1 AND done_at IS NULL "
                                   "AND system = 'crm'", grace) == 0
        assert await _erased_events(pool, grace) == [
            {"system": "crm", "records": len(kept), "kept_by": ["legal_claims"]}]
