"""A deferred erasure whose system cannot be reached fails, with an alert, once the system's
`completion_timeout_days` have passed since the first sweep that could not reach it. Before, an
error retrying could cure (connection refused, 503, a timeout) left the rows to the next day's
sweep for ever: only DsrSweepProblems said so, nobody was e-mailed, and compliance's panel read
"scheduled" (RELIABILITY.md, row 32).

No workflow runs here (a worker's start is most of a fan-out test's time): the request is stored as
intake stores it, the rows as a legal-claims hold on the CRM leaves them, and the sweep's activity
runs on its own clock (`as_of`), as the daily schedule's workflow passes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.testing import ActivityEnvironment

from activities.deferred import DeferredErasureActivities
from dsrflow.stores.deferred_store import retry_deferred
from dsrflow.stores.holds_store import release_hold
from policy.model import DEFAULT_POLICY
from schemas.holds import SweepInput
from tests.conftest import database_pool
from tests.fanout_stack import loopback_socket
from tests.process_support import sweep_killed_at
from tests.support import (
    api_client,
    eventually,
    letters_for,
    place_claims_hold,
    staff_headers,
    stored_request,
    text_of,
)
from tests.yaml_files import dump_yaml, read_yaml
from workers.dsr_worker import activity_context

_KEPT = "SELECT * FROM deferred_erasures WHERE request_id = $1 ORDER BY id"


async def test_a_system_not_reached_for_its_timeout_fails_with_an_alert(postgres, settings, dev_server, tmp_path,
                                                                        mail_sink):
    refusing, port = loopback_socket()  # bound, never listening: every connection to it is refused
    content = read_yaml(DEFAULT_POLICY)
    content["systems"]["crm"]["config"] = {"url": f"postgresql://dsrflow@127.0.0.1:{port}/crm"}
    (policy_path := tmp_path / "policy-crm-away.yaml").write_text(dump_yaml(content, sort_keys=False))
    async with database_pool(postgres, "deferred_unreached") as (url, pool):
        settings = settings.model_copy(update={"database_url": url, "policy_path": policy_path})
        rid = await stored_request(pool, settings, "unreached", "erasure", email="ada@example.com")
        # The CRM's contacts a legal-claims hold kept, the hold now released (no sweep started: ours run).
        hold = await place_claims_hold(pool, settings, "ada@example.com", ["crm"])
        await pool.execute(
            """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                              hold_ref, policy_version)
               SELECT id, $2, 'crm', 'contacts', key, 'legal_claims', $3, policy_version
                 FROM dsr_requests, unnest(ARRAY['41', '42']) AS key WHERE id = $1""",
            rid, hold["subject_hash"], str(hold["id"]))
        async with pool.acquire() as conn:
            await release_hold(conn, hold["id"], "compliance:test", reason="Claim settled")

        sweep = DeferredErasureActivities(activity_context(settings, pool)).sweep
        first = datetime.now(UTC)

        async def swept(days: float):
            return await ActivityEnvironment().run(sweep, SweepInput(reason="test", as_of=first + timedelta(days=days)))

        for days in (0, 1, 13.9):  # within the CRM's 14 days: tried again next run, nobody told yet
            assert (await swept(days)).unable["crm"].startswith("not reached, tried again next run: ")
            assert [(r["unreached_since"], r["failed_at"]) for r in await pool.fetch(_KEPT, rid)] == [(first, None)] * 2
        assert letters_for(mail_sink, rid, "staff_alert") == []

        # The CRM's completion_timeout_days since the first run that could not reach it: failed, once.
        # That run's process dies once the relay has the alert, before hearing its answer: the rows
        # are failed all the same, as the alert says (before, they stayed due, the panel offered
        # no answer, and the next run might erase them after all).
        await sweep_killed_at(settings, "mail-accepted~:staff_alert:deferred-crm", first + timedelta(days=14))
        rows = await pool.fetch(_KEPT, rid)
        assert all(r["failed_at"] is not None and r["done_at"] is None for r in rows)
        failure = rows[0]["failure"]
        assert failure.startswith("crm not reached for 14 days, since ")
        assert "completion_timeout_days: 14" in failure and "last error: " in failure
        assert "ConnectionRefusedError" in failure and "ada@example.com" not in failure
        [alert] = letters_for(mail_sink, rid, "staff_alert")
        body = " ".join(text_of(alert).split())
        assert "could not erase the records a hold had kept" in body and "crm not reached for 14 days" in body
        assert "ada@example.com" not in alert.as_string()
        assert "crm" not in (await swept(15)).unable  # failed stays failed, for compliance to answer

        async def alert_on_record() -> bool:
            # A run while PostgreSQL has not yet ended the dead process's session hears its claim's
            # lock (busy) and leaves the alert to the next run (`alert_unalerted`), as here.
            if await pool.fetchval("SELECT count(*) FROM sent_letters WHERE request_id = $1 "
                                   "AND purpose = 'staff_alert'", rid) == 1:
                return True
            assert "crm" not in (await swept(15)).unable
            return False

        await eventually(alert_on_record, 30)
        # The next run kept the copy of the alert the dead process had handed over, sending nothing.
        assert len(letters_for(mail_sink, rid, "staff_alert")) == 1

        # Compliance's panel shows the failure, with "Ask again" and "Record as erased".
        async with api_client(settings, dev_server.client, "deferred-unreached-unused") as http:
            listed = (await http.get(f"/v1/requests/{rid}/deferred-erasures",
                                     headers=await staff_headers(pool, "compliance"))).json()
        assert [(d["system"], d["state"], d["actions"], d["failure"]) for d in listed] == \
            [("crm", "failed", ["retry", "settle"], failure)]

        # Asked again (the panel's "Ask again"), the wait counts anew from the next run that fails.
        await retry_deferred(pool, rid, "crm", actor="compliance:test")
        assert {r["unreached_since"] for r in await pool.fetch(_KEPT, rid)} == {None}
        assert (await swept(20)).unable["crm"].startswith("not reached, tried again next run: ")
        assert {r["unreached_since"] for r in await pool.fetch(_KEPT, rid)} == {first + timedelta(days=20)}
        # A new hold covers them meanwhile: once it is released, the days unreached count from then,
        # not from before the hold (the rows failed on the first run that could not reach them).
        again = await place_claims_hold(pool, settings, "ada@example.com", ["crm"])
        assert (await swept(25)).still_held == 2
        assert {r["unreached_since"] for r in await pool.fetch(_KEPT, rid)} == {None}
        async with pool.acquire() as conn:
            await release_hold(conn, again["id"], "compliance:test", reason="Claim settled")
        assert (await swept(40)).unable["crm"].startswith("not reached, tried again next run: ")
        # The relay refuses the second attempt's alert (the CRM's refusing port as the relay): the
        # failure stands all the same, and the next run sends its alert, once.
        unrelayed = DeferredErasureActivities(activity_context(settings.model_copy(update={"smtp_port": port}),
                                                               pool)).sweep
        assert (await ActivityEnvironment().run(unrelayed, SweepInput(reason="test", as_of=first + timedelta(days=54)))
                ).unable["crm"].startswith("failed: ")
        assert all(r["failed_at"] is not None for r in await pool.fetch(_KEPT, rid))
        assert len(letters_for(mail_sink, rid, "staff_alert")) == 1
        await swept(55)
        await swept(56)
        assert len(letters_for(mail_sink, rid, "staff_alert")) == 2  # the second attempt's alert
    refusing.close()


async def test_a_hold_placed_and_released_between_two_runs_restarts_the_days_unreached(postgres, settings):
    """Rows a run could not reach 20 days ago, then held and released again before the next run:
    the days unreached count anew, for the systems the hold covered. Before, only a run that saw
    the rows held cleared their date, so the next run failed them at once (20 days > the CRM's 14)."""
    async with database_pool(postgres, "deferred_rehold") as (url, pool):
        settings = settings.model_copy(update={"database_url": url})
        rid = await stored_request(pool, settings, "rehold", "erasure", email="grace@example.com")
        hold = await place_claims_hold(pool, settings, "grace@example.com", ["crm"])
        async with pool.acquire() as conn:
            await release_hold(conn, hold["id"], "compliance:test", reason="Claim settled")
        await pool.execute(
            """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                              hold_ref, policy_version, unreached_since)
               SELECT id, $2, system, 'contacts', '41', 'legal_claims', $3, policy_version, now() - interval '20 days'
                 FROM dsr_requests, unnest(ARRAY['crm', 'billing']) AS system WHERE id = $1""",
            rid, hold["subject_hash"], str(hold["id"]))
        again = await place_claims_hold(pool, settings, "grace@example.com", ["crm"])  # the CRM only
        async with pool.acquire() as conn:
            await release_hold(conn, again["id"], "compliance:test", reason="Claim settled")
        since = {r["system"]: r["unreached_since"] for r in await pool.fetch(_KEPT, rid)}
    assert since["crm"] is None and since["billing"] is not None
