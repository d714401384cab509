"""Two crash windows of compliance's actions on what a legal-claims hold kept, each opened by
killing a real API process at the line it follows (a failpoint, dsrflow/infra/failpoints.py), then
starting another: a hold's release, recorded, before the sweep that erases what it kept starts;
asking a processor again to carry out an erasure it did not, recorded, before the sweep that asks
it starts. Compliance, who got no answer, presses again. Exactly once in effect, nothing lost.
And a release while PostgreSQL is down. One stack and one database of their own for the crash
windows (a sweep takes every row of its subject there); the
e-mail marketing processor takes 600 s to carry out a job, so a job asked stays asked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.deferred import DeferredErasureActivities
from devstack.processes import free_port
from dsrflow.stores.holds_store import release_hold
from schemas.holds import SweepInput
from schemas.workflow import workflow_id_for
from tests.conftest import database_pool, running_postgres
from tests.fanout_stack import api, fanout_stack_alone
from tests.hold_release import release_over_rest
from tests.process_support import answering, died, dsrflow_process
from tests.support import (
    attested_request,
    eventually,
    fetch_rows,
    letters_for,
    live_client,
    place_claims_hold,
    served,
    staff_headers,
    unique_email,
)
from workers.dsr_worker import activity_context, build_worker
from workflows.erasure_sweep import ErasureSweepWorkflow

GRACE, ADA = "grace@example.com", "ada@example.com"


@pytest.fixture(scope="module")
async def held(postgres, settings, dev_server, mail_sink, tmp_path_factory) -> AsyncIterator[dict]:
    """Grace's erasure, done with her CRM and e-mail marketing records kept under a legal-claims
    hold; Ada's, with her e-mail marketing subscription kept under another. Settings for an API
    process of the test's own (its own port). No worker runs afterwards: each test starts one."""
    client = dev_server.client
    tmp = tmp_path_factory.mktemp("held")
    async with fanout_stack_alone(postgres, settings, client, tmp, "held", email_delay=600) as (stack, pool), \
            api(stack) as http:
        holds = {GRACE: await place_claims_hold(pool, stack.settings, GRACE, ["crm", "email_marketing"]),
                 ADA: await place_claims_hold(pool, stack.settings, ADA, ["email_marketing"])}
        async with build_worker(client, stack.settings, pool):
            erasures = dict(zip((GRACE, ADA), await asyncio.gather(
                *(attested_request(http, pool, "erasure", email) for email in (GRACE, ADA))), strict=True))
            for rid in erasures.values():
                state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90)
                assert state["status"] == "completed", state
        port = free_port()
        own = stack.settings.model_copy(update={"api_port": port, "public_url": f"http://127.0.0.1:{port}"})
        yield {"stack": stack, "pool": pool, "holds": holds, "erasures": erasures, "own": own}


async def _no_workflow(client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return True
    return False


async def test_a_release_killed_before_its_sweep_starts_erases_once_when_compliance_releases_again(
        held, dev_server, tmp_path):
    """Compliance releases Grace's hold; the API dies once the release is recorded, before the
    sweep that erases what the hold kept has started: her CRM records are still there, and
    compliance got no answer. They release it again (another API): 204, the sweep runs, and every
    record the hold kept is erased once; the trail holds one release."""
    client, stack, pool, own = dev_server.client, held["stack"], held["pool"], held["own"]
    hold, rid = held["holds"][GRACE], uuid.UUID(held["erasures"][GRACE])
    sweep = f"sweep-release-{hold['id']}"
    kept = {(r["dataset"], r["record_key"]) for r in await pool.fetch(
        "SELECT dataset, record_key FROM deferred_erasures WHERE request_id = $1 AND system = 'crm'", rid)}
    in_crm = "SELECT 1 FROM contacts WHERE email = 'grace@example.com'"
    assert kept and await fetch_rows(stack.databases["crm"], in_crm)
    compliance = await staff_headers(pool, "compliance")
    async with live_client(base_url=own.public_url, timeout=30) as http:
        async with dsrflow_process("api", own, client, tmp_path, failpoints=f"hold-released~{hold['id']}") as first:
            await answering(http, first, tmp_path)
            with pytest.raises(httpx.TransportError):
                await release_over_rest(http, hold['id'], headers=compliance)
            await died(first, tmp_path, role="api")
        # The window is open: released, and nothing erases what it kept.
        assert await pool.fetchval("SELECT released_at FROM legal_holds WHERE id = $1", hold["id"]) is not None
        assert await _no_workflow(client, sweep)
        assert await fetch_rows(stack.databases["crm"], in_crm)

        async with build_worker(client, stack.settings, held["pool"]), \
                dsrflow_process("api", own, client, tmp_path, failpoints="") as again:
            await answering(http, again, tmp_path)
            repeated = await release_over_rest(http, hold['id'], headers=compliance)
            assert repeated.status_code == 204, repeated.text
            report = await asyncio.wait_for(client.get_workflow_handle_for(ErasureSweepWorkflow.run, sweep).result(), 60)
            shown = (await http.get(f"/v1/legal-holds/{hold['id']}", headers=compliance)).json()

    assert report.systems.get("crm") == len(kept) and shown["active"] is False
    assert await fetch_rows(stack.databases["crm"], in_crm) == []
    ledger = await pool.fetch("SELECT dataset, record_key, count(*) AS n FROM erasure_ledger WHERE request_id = $1 "
                              "AND system = 'crm' AND origin = 'deferred' GROUP BY 1, 2", rid)
    assert {(r["dataset"], r["record_key"]) for r in ledger} == kept and all(r["n"] == 1 for r in ledger)
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1 AND system = 'crm' "
                               "AND done_at IS NULL", rid) == 0
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_type = 'legal_hold.released' "
                               "AND data->>'hold_id' = $1", str(hold["id"])) == 1


async def _failed_at_the_processor(held) -> str:
    """Ada's hold released, the processor asked to erase her subscription, and the job lost on its
    side: the sweep records the erasure as failed and alerts staff. The lost job's id."""
    stack, pool, rid = held["stack"], held["pool"], held["erasures"][ADA]
    async with pool.acquire() as conn:
        await release_hold(conn, held["holds"][ADA]["id"], "compliance:test", reason="Claim settled")
    sweep = DeferredErasureActivities(activity_context(stack.settings, pool)).sweep
    marketing = "FROM deferred_erasures WHERE request_id = $1 AND system = 'email_marketing'"
    subject = await pool.fetchval(f"SELECT subject_hash {marketing}", uuid.UUID(rid))
    await ActivityEnvironment().run(sweep, SweepInput(subject_hash=subject, reason="test"))
    job = await pool.fetchval(f"SELECT external_id {marketing}", uuid.UUID(rid))
    await fetch_rows(stack.databases["email_marketing"], "DELETE FROM dsr_requests WHERE subject_request_id::text = $1",
                     job)
    report = await ActivityEnvironment().run(sweep, SweepInput(subject_hash=subject, reason="test"))
    assert report.processors_failed == 1
    return job


async def test_asking_a_processor_again_killed_before_its_sweep_starts_asks_once_when_compliance_asks_again(
        held, dev_server, mail_sink, tmp_path):
    """The processor lost the job that was to erase Ada's subscription: failed, and staff alerted.
    Compliance asks it again; the API dies once the retry is recorded (attempt 2), before the
    sweep that asks has started. Compliance asks again (another API): it is asked now, once (one
    new job), and the trail holds one retry; the erasure shows as asked, to be settled or
    confirmed. Before, the repeat was refused (409: the erasure "held") and nothing asked the
    processor until the next day's sweep."""
    client, stack, pool, own = dev_server.client, held["stack"], held["pool"], held["own"]
    rid = held["erasures"][ADA]
    lost = await _failed_at_the_processor(held)
    url = f"/v1/requests/{rid}/deferred-erasures"
    row = ("SELECT attempt, external_id, submitted_at, failed_at FROM deferred_erasures WHERE request_id = $1 "
           "AND system = 'email_marketing'")
    compliance = await staff_headers(pool, "compliance")
    async with live_client(base_url=own.public_url, timeout=30) as http:
        async with dsrflow_process("api", own, client, tmp_path, failpoints="deferred-retried~email_marketing") as first:
            await answering(http, first, tmp_path)
            with pytest.raises(httpx.TransportError):
                await http.post(f"{url}/email_marketing/retry", headers=compliance)
            await died(first, tmp_path, role="api")
        between = await pool.fetchrow(row, uuid.UUID(rid))
        assert (between["attempt"], between["external_id"], between["failed_at"]) == (2, None, None)
        assert await _no_workflow(client, f"sweep-retry-{rid}-email_marketing-2")
        async with api(stack) as theirs:  # what compliance's page offers meanwhile: to ask again
            (waiting,) = [d for d in (await theirs.get(url, headers=compliance)).json() if d["system"] == "email_marketing"]
        assert (waiting["attempt"], waiting["actions"], waiting["resent"]) == (2, ["retry"], "not started")

        async with build_worker(client, stack.settings, pool), \
                dsrflow_process("api", own, client, tmp_path, failpoints="") as again:
            await answering(http, again, tmp_path)
            repeated = await http.post(f"{url}/email_marketing/retry", headers=compliance)
            assert repeated.status_code == 202, repeated.text
            assert repeated.json() == {"system": "email_marketing", "asked_now": True}
            # At once, as the console's page: its sweep runs (or has asked), so no retry is offered.
            (at_once,) = [d for d in (await http.get(url, headers=compliance)).json() if d["system"] == "email_marketing"]
            assert "retry" not in at_once["actions"] and at_once["resent"] in ("running", None), at_once

            async def asked() -> bool:
                return (await pool.fetchrow(row, uuid.UUID(rid)))["submitted_at"] is not None

            await eventually(asked)
            listed = next(d for d in (await http.get(url, headers=compliance)).json() if d["system"] == "email_marketing")

    after = await pool.fetchrow(row, uuid.UUID(rid))
    assert after["attempt"] == 2 and after["external_id"] not in (None, lost)
    jobs = await fetch_rows(stack.databases["email_marketing"],
                            "SELECT subject_request_id::text AS id FROM dsr_requests WHERE subject_request_type = 'erasure'")
    assert [j["id"] for j in jobs].count(after["external_id"]) == 1
    assert (listed["states"], listed["attempt"], listed["actions"]) == ({"asked": 1}, 2, ["settle"])
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 AND event_type LIKE 'erasure.deferred_%' "
        "ORDER BY seq", uuid.UUID(rid))]
    assert events == ["erasure.deferred_submitted", "erasure.deferred_failed", "erasure.deferred_retried",
                      "erasure.deferred_submitted"]
    assert len(letters_for(mail_sink, rid, "staff_alert")) == 1


async def test_a_release_while_postgresql_is_down_is_refused_whole_and_done_once_when_repeated(
        settings, dev_server, task_queue, tmp_path):
    """PostgreSQL stops as compliance releases a hold: 503 naming the database, the hold still in
    force, no sweep started. Once it is back, releasing again releases it once and starts its
    sweep. A PostgreSQL server of its own, stopped for the test."""
    client = dev_server.client
    async with running_postgres(tmp_path) as server, database_pool(server, "release_outage") as (url, pool):
        ours = settings.model_copy(update={"database_url": url, "task_queue": task_queue})
        hold = await place_claims_hold(pool, ours, unique_email("outage"), ["crm"])
        async with served(ours, pool, client, task_queue) as http:
            compliance = await staff_headers(pool, "compliance")
            server.stop()
            refused = await release_over_rest(http, hold['id'], headers=compliance)
            assert refused.status_code == 503 and refused.json()["component"] == "database", refused.text
            assert await _no_workflow(client, f"sweep-release-{hold['id']}")
            server.start(tmp_path / "postgres-again.log")
            await server.wait_ready()
            assert await pool.fetchval("SELECT released_at FROM legal_holds WHERE id = $1", hold["id"]) is None
            released = await release_over_rest(http, hold['id'], headers=compliance)
            assert released.status_code == 204, released.text
            report = await asyncio.wait_for(
                client.get_workflow_handle_for(ErasureSweepWorkflow.run, f"sweep-release-{hold['id']}").result(), 60)
        assert report.erased == 0 and report.unable == {}
        assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_type = 'legal_hold.released' "
                                   "AND data->>'hold_id' = $1", str(hold["id"])) == 1
