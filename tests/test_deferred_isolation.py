"""One system that cannot erase what a hold deferred no longer stops the sweep for every other
system and subject. Before, an error in one group (a table renamed under the policy, a SaaS that
refuses, a request gone) was raised out of the sweep: retried for ever (or failed) with the same
group first each day, while the daily schedule skipped its later runs, so statutory erasures
everywhere else waited, and records were kept past their legal period."""

from __future__ import annotations

import asyncio

from schemas.holds import SweepInput
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack_alone
from tests.support import eventually, fetch_rows, staff_headers, text_of, wait_for_letter
from workers.dsr_worker import build_worker
from workflows.erasure_sweep import ErasureSweepWorkflow

_DUE_NOW = "UPDATE deferred_erasures SET erase_after = current_date - 1 WHERE request_id = $1"


async def test_a_system_that_cannot_erase_fails_its_rows_and_the_sweep_goes_on(postgres, settings, dev_server,
                                                                              tmp_path, mail_sink):
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "deferred_isolation") as (stack, pool):
        billing, crm = stack.databases["billing"], stack.databases["crm"]
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                                json={"type": "erasure", "subject": {"email": "ada@example.com"}, "identity_attested": True})
            rid = r.json()["id"]
            assert (await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(),
                                           90))["status"] == "completed"
            invoices = [int(k) for k in await pool.fetchval(
                "SELECT array_agg(record_key) FROM deferred_erasures WHERE request_id = $1 AND dataset = 'invoices'", rid)]
            assert invoices  # kept for the accounting statute
            # A statutory period ends today for the invoices, and for a CRM record whose table has
            # since been renamed under the policy: the CRM cannot erase it, whatever the retries.
            await pool.execute(_DUE_NOW, rid)
            await pool.execute(
                """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                                  hold_ref, erase_after, policy_version)
                   SELECT request_id, subject_hash, 'crm', 'contacts', '424242', 'statutory', hold_ref,
                          current_date - 1, policy_version FROM deferred_erasures WHERE request_id = $1 LIMIT 1""", rid)
            await fetch_rows(crm, "ALTER TABLE contacts RENAME TO contacts_old")

            report = await asyncio.wait_for(dev_server.client.execute_workflow(
                ErasureSweepWorkflow.run, SweepInput(reason="test"), id=f"sweep-isolation-{rid}",
                task_queue=stack.settings.task_queue), 60)  # before, retried for ever
            # Billing went on: the invoices are erased.
            assert await fetch_rows(billing, "SELECT id FROM invoices WHERE id = ANY($1::bigint[])", invoices) == []
            assert report.systems.get("billing", 0) >= len(invoices)
            assert set(report.unable) == {"crm"} and report.unable["crm"].startswith("failed: ")
            crm_row = await pool.fetchrow("SELECT * FROM deferred_erasures WHERE system = 'crm' AND request_id = $1", rid)
            assert crm_row["failed_at"] is not None and crm_row["done_at"] is None and crm_row["failure"]
            alert = " ".join(text_of(await wait_for_letter(mail_sink, rid, "staff_alert")).split())
            assert "could not erase the records a hold had kept" in alert and "ada@example.com" not in alert

            # Once the table is back, compliance asks again, and the CRM's row is done.
            await fetch_rows(crm, "ALTER TABLE contacts_old RENAME TO contacts")
            retried = await http.post(f"/v1/requests/{rid}/deferred-erasures/crm/retry",
                                      headers=await staff_headers(pool, "compliance"))
            assert retried.status_code == 202, retried.text

            async def done() -> bool:
                return await pool.fetchval("SELECT done_at IS NOT NULL FROM deferred_erasures "
                                           "WHERE system = 'crm' AND request_id = $1", rid)

            await eventually(done)
