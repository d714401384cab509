"""Legal holds: erasure keeps what the law requires, minimised and restricted, says so, and erases
it when the hold ends."""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from datetime import UTC, date, datetime

import asyncpg

from schemas.holds import SweepInput
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.hold_release import release_over_rest
from tests.support import fetch_rows, place_claims_hold, staff_headers, text_of, wait_for_letter
from workers.dsr_worker import build_worker
from workflows.erasure_sweep import ErasureSweepWorkflow


async def _erase(http, pool, client, email: str) -> tuple[str, dict]:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                        json={"type": "erasure", "subject": {"email": email}, "identity_attested": True})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    return rid, await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90)


async def test_erasure_keeps_accounting_records_minimised_and_says_so(postgres, settings, pool, dev_server, tmp_path, mail_sink):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        db = stack.databases
        invoices_before = await fetch_rows(db["billing"], """
            SELECT i.id, i.number, i.total FROM invoices i JOIN customers c ON c.id = i.customer_id
            WHERE c.email = 'ada@example.com' ORDER BY i.id""")
        assert len(invoices_before) == 3
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid, state = await _erase(http, pool, dev_server.client, "ada@example.com")
            assert state["status"] == "completed", state
            assert await fetch_rows(db["crm"], "SELECT 1 FROM contacts WHERE email = 'ada@example.com'") == []
            assert await fetch_rows(db["analytics"], "SELECT 1 FROM users WHERE email = 'ada@example.com'") == []
            assert await fetch_rows(db["email_marketing"], "SELECT 1 FROM subscribers WHERE email = 'ada@example.com'") == []

            invoices = await fetch_rows(db["billing"], "SELECT id, number, total, restricted FROM invoices WHERE id = ANY($1::bigint[])",
                                   [r["id"] for r in invoices_before])
            assert [(r["number"], r["total"]) for r in invoices] == [(r["number"], r["total"]) for r in invoices_before]
            assert all(r["restricted"] for r in invoices)
            customer = (await fetch_rows(db["billing"], "SELECT * FROM customers WHERE customer_number = 'C-000000'"))[0]
            assert customer["email"] is None and customer["phone"] is None and customer["notes"] is None
            assert customer["name"] == "Ada Lovelace" and customer["vat_number"] and customer["restricted"]
            payments = await fetch_rows(db["billing"], "SELECT restricted FROM payments WHERE invoice_id = ANY($1::bigint[])",
                                   [r["id"] for r in invoices_before])
            assert payments and all(p["restricted"] for p in payments)

            billing = next(r for r in state["results"] if r["system"] == "billing")
            assert billing["kept"] > 0 and billing["kept_records"]
            letter = text_of(await wait_for_letter(mail_sink, rid, "response"))
            assert "What we kept" in letter and "Art. 17(3)(b)" in letter
            assert "VAT Code Art. 60" in letter and "31 December 2036" in letter
            # Records kept refuse the erasure in part: the letter names the remedies (Art. 12(4)).
            assert "Your right to complain to the supervisory authority" in letter
            assert "Gegevensbeschermingsautoriteit" in letter and "Your right to a judicial remedy" in letter
            due = await pool.fetch("SELECT dataset, erase_after FROM deferred_erasures WHERE request_id = $1", rid)
            assert {r["dataset"] for r in due} >= {"invoices", "payments", "customers"}
            assert date(2036, 1, 1) in {r["erase_after"] for r in due}

            # Access afterwards: only the kept billing records.
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "access", "subject": {"email": "ada@example.com"}, "identity_attested": True})
            access = r.json()["id"]
            state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(access)).result(), 90)
            assert set(state["package"]["systems"]) == {"billing"}
            access_letter = text_of(await wait_for_letter(mail_sink, access, "response"))
            assert "Gegevensbeschermingsautoriteit" not in access_letter  # nothing refused: no remedies
            link = re.search(r"/portal/packages/[0-9a-f]{64}", access_letter).group(0)
            archive = zipfile.ZipFile(io.BytesIO((await http.post(link)).content))
            assert any("invoices" in n for n in archive.namelist())
            assert not any(n.startswith(("crm/", "analytics/")) for n in archive.namelist())


async def test_kept_until_follows_the_document_year_and_the_last_collection(postgres, settings, pool, dev_server, tmp_path, mail_sink):
    """Law of 20 November 2022: a 2022 invoice is kept 7 years from 1 January 2023 (until 31
    December 2029), a 2023 invoice 10 years (until 31 December 2033). A mandate signed in 2018
    (7 years would have ended in 2025) counts from its last collection, in 2025: until 2035."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        billing = stack.databases["billing"]
        conn = await asyncpg.connect(billing)
        customer = await conn.fetchval(
            "INSERT INTO customers (customer_number, email, name, vat_number, phone) "
            "VALUES ('C-LEDGER', 'lena.ledger@example.com', 'Lena Ledger', 'BE0123456789', '+32 3 000 00 00') RETURNING id")
        invoice = ("INSERT INTO invoices (customer_id, number, issued_on, net_amount, vat_amount, total) "
                   "VALUES ($1, $2, $3, 100, 21, 121) RETURNING id")
        old = await conn.fetchval(invoice, customer, "OT-2022-LEDGER", date(2022, 12, 30))
        new = await conn.fetchval(invoice, customer, "OT-2023-LEDGER", date(2023, 1, 2))
        payment = await conn.fetchval("INSERT INTO payments (invoice_id, paid_on, amount, method) "
                                      "VALUES ($1, '2022-12-31', 121, 'SEPA direct debit') RETURNING id", old)
        mandate = await conn.fetchval(
            "INSERT INTO mandates (customer_id, mandate_reference, iban_last4, signed_on, last_collection_on, status) "
            "VALUES ($1, 'MND-LEDGER', '1234', '2018-03-01', '2025-11-03', 'active') RETURNING id", customer)
        await conn.close()
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid, state = await _erase(http, pool, dev_server.client, "lena.ledger@example.com")
            assert state["status"] == "completed", state
            due = {(r["dataset"], int(r["record_key"])): r["erase_after"] for r in await pool.fetch(
                "SELECT dataset, record_key, erase_after FROM deferred_erasures WHERE request_id = $1", rid)}
            assert due == {
                ("invoices", old): date(2030, 1, 1), ("payments", payment): date(2030, 1, 1),
                ("invoices", new): date(2034, 1, 1), ("mandates", mandate): date(2036, 1, 1),
                # The customer data the documents need goes with the last of them.
                ("customers", customer): date(2036, 1, 1),
            }
            kept = await fetch_rows(billing, "SELECT iban_last4, restricted FROM mandates WHERE id = $1", mandate)
            assert [(r["iban_last4"], r["restricted"]) for r in kept] == [(None, True)]
            letter = text_of(await wait_for_letter(mail_sink, rid, "response"))
            # One item for the law, each end date with what it keeps (before: an item per dataset and date).
            kept_until = re.findall(r"- (\d+) records? of ([\w, ]+) in our billing system.*?Kept until: ([^\r\n]+)", letter, re.S)
            assert kept_until == [("5", "customers, invoices, mandates and payments",
                                   "invoices and payments, 31 December 2029 (2 records); invoices, 31 December 2033 "
                                   "(1 record); customers and mandates, 31 December 2035 (2 records)")], letter
            assert "Law of 20 November 2022" in letter


async def test_legal_claims_hold_blocks_erasure_until_released(postgres, settings, pool, dev_server, tmp_path, mail_sink):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        db = stack.databases
        hold = await place_claims_hold(pool, stack.settings, "grace@example.com", ["crm"])
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid, state = await _erase(http, pool, dev_server.client, "grace@example.com")
            assert state["status"] == "completed"
            contacts = await fetch_rows(db["crm"], "SELECT restricted FROM contacts WHERE email = 'grace@example.com'")
            assert contacts and all(c["restricted"] for c in contacts)
            assert await fetch_rows(db["billing"], "SELECT 1 FROM customers WHERE email = 'grace@example.com'") == []
            letter = text_of(await wait_for_letter(mail_sink, rid, "response"))
            assert "legal claim" in letter and "CRM" in letter
            # Grace comes back as a customer while the claim runs: a new contact, no request of hers.
            returning = (await fetch_rows(db["crm"], "INSERT INTO contacts (email, first_name) "
                                                     "VALUES ('grace@example.com', 'Grace') RETURNING id"))[0]["id"]
            old = "SELECT 1 FROM contacts WHERE email = 'grace@example.com' AND id <> $1"

            r = await release_over_rest(http, hold['id'], headers=await staff_headers(pool, "compliance"))
            assert r.status_code in (202, 204), r.text
            for _ in range(100):
                if not await fetch_rows(db["crm"], old, returning):
                    break
                await asyncio.sleep(0.2)
            assert await fetch_rows(db["crm"], old, returning) == []
            # What the hold kept is erased, and only that: her new account stays (before, the
            # release erased it too, on the old request).
            assert await fetch_rows(db["crm"], "SELECT 1 FROM contacts WHERE id = $1", returning)
            ledger = await pool.fetch("SELECT origin FROM erasure_ledger WHERE system = 'crm' AND request_id = $1", rid)
            assert "deferred" in {r["origin"] for r in ledger}


async def test_sweep_erases_what_became_due_and_leaves_the_rest(postgres, settings, pool, time_skipping, tmp_path):
    """Ada's 2025 invoices are kept until 31 Dec 2035, her 2026 invoice until 31 Dec 2036."""
    env = time_skipping
    async with fanout_stack(postgres, settings, env.client, tmp_path) as stack:
        db = stack.databases
        async with build_worker(env.client, stack.settings, pool), api(stack) as http:
            rid, _ = await _erase(http, pool, env.client, "ada@example.com")
            now = await env.get_current_time()
            await env.sleep(datetime(2036, 1, 2, 12, tzinfo=UTC) - now)
            # Left to skip on its own while the result is awaited, virtual time may leap past
            # the 2026 invoice's end date when the machine is busy: hold it still.
            with env.auto_time_skipping_disabled():
                report = await env.client.execute_workflow(
                    ErasureSweepWorkflow.run, SweepInput(reason="test"), id=f"sweep-{rid}",
                    task_queue=stack.settings.task_queue)
            assert report.erased > 0
            held_invoices = [int(r["record_key"]) for r in await pool.fetch(
                "SELECT record_key FROM deferred_erasures WHERE request_id = $1 AND dataset = 'invoices'", rid)]
            assert len(held_invoices) == 3
            left = await fetch_rows(db["billing"], "SELECT issued_on FROM invoices WHERE id = ANY($1::bigint[])", held_invoices)
            assert [r["issued_on"].year for r in left] == [2026]
            done = await pool.fetch("SELECT dataset, done_at IS NOT NULL AS done, erase_after FROM deferred_erasures WHERE request_id = $1", rid)
            assert all(r["done"] == (r["erase_after"] <= date(2036, 1, 2)) for r in done)
