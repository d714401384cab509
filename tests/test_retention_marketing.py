"""Retention of marketing data: 12 months after the last newsletter (for a subscriber never mailed,
after the later of their consent and their account's creation), the subject's data at the e-mail
marketing processor is erased (an erasure request that reaches that system only), once per last
communication."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from dateutil.relativedelta import relativedelta

from schemas.retention import RetentionSweepInput
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import fetch_rows
from workers.dsr_worker import build_worker
from workflows.retention_sweep import RetentionSweepWorkflow


async def test_marketing_data_goes_12_months_after_the_last_newsletter(postgres, settings, pool, dev_server, tmp_path):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, email_delay=0.1) as stack:
        crm, processor = stack.databases["crm"], stack.databases["email_marketing"]
        subscribed = [r["email"] for r in await fetch_rows(processor, "SELECT email FROM subscribers ORDER BY id")]
        chosen = await fetch_rows(crm, "SELECT id, email FROM contacts WHERE email = ANY($1::text[]) AND id > 3 "
                                  "ORDER BY id LIMIT 2", subscribed)
        (gone_id, gone), (stays_id, stays) = [(r["id"], r["email"]) for r in chosen]
        now = datetime.now(UTC)
        # Everyone had this month's newsletter but the two chosen: 13 and 11 months ago (they
        # consented and signed up years before, so the newsletter is what counts).
        conn = await asyncpg.connect(crm)
        await conn.execute("UPDATE contacts SET last_marketing_email_at = $1 "
                           "WHERE last_marketing_email_at IS NOT NULL", now - timedelta(days=3))
        for contact, months in ((gone_id, 13), (stays_id, 11)):
            await conn.execute("UPDATE contacts SET last_marketing_email_at = $2, marketing_consent_at = $3, "
                               "created_at = $3 WHERE id = $1",
                               contact, now - relativedelta(months=months), now - relativedelta(years=3))
        await conn.close()
        contacts_before = await fetch_rows(crm, "SELECT * FROM contacts ORDER BY id")

        async def sweep() -> object:
            report = await dev_server.client.execute_workflow(
                RetentionSweepWorkflow.run, RetentionSweepInput(reason="test", rules=["marketing_data"]),
                id=f"retention-marketing-{uuid.uuid4().hex[:6]}", task_queue=stack.settings.task_queue)
            (outcome,) = report.rules
            return outcome

        async with build_worker(dev_server.client, stack.settings, pool), api(stack):
            first = await sweep()
            assert (first.rule, first.due, first.started, first.error) == ("marketing_data", 1, 1, None)
            # Other tests share the app database (and the demo subjects): this rule's requests only.
            mine = "origin = 'retention' AND details->>'retention_rule' = 'marketing_data'"
            request = await pool.fetchrow(f"SELECT * FROM dsr_requests WHERE {mine} AND subject_email = $1", gone)
            assert request["details"]["systems"] == ["email_marketing"]
            handle = dev_server.client.get_workflow_handle(workflow_id_for(str(request["id"])))
            state = await asyncio.wait_for(handle.result(), 60)
            assert state["status"] == "completed", state

            # Only the processor was asked: its subscriber is gone; the account and its consent
            # record in the CRM, and the other subscriber, are as they were.
            plan = await pool.fetchval("SELECT plan FROM request_plans WHERE request_id = $1", request["id"])
            assert [t["system"] for t in plan["tasks"]] == ["email_marketing"]
            assert await fetch_rows(processor, "SELECT 1 FROM subscribers WHERE email = $1", gone) == []
            assert await fetch_rows(processor, "SELECT 1 FROM subscribers WHERE email = $1", stays) != []
            assert await fetch_rows(crm, "SELECT * FROM contacts ORDER BY id") == contacts_before

            # Erased once for this last newsletter: the next runs leave the subject alone.
            again = await sweep()
            assert (again.due, again.started, again.already_erased) == (0, 0, 1)

            # A newsletter went out later (they subscribed again); 12 months after it, it goes again.
            conn = await asyncpg.connect(crm)
            await conn.execute("UPDATE contacts SET last_marketing_email_at = $2 WHERE id = $1",
                               gone_id, now - relativedelta(months=12, days=5))
            await conn.close()
            later = await sweep()
            assert (later.due, later.started, later.already_erased) == (1, 1, 0)
            requests = await pool.fetch(f"SELECT id FROM dsr_requests WHERE {mine} "
                                        "AND subject_email = ANY($1::text[]) ORDER BY created_at", [gone, stays])
            assert len(requests) == 2
            handle = dev_server.client.get_workflow_handle(workflow_id_for(str(requests[-1]["id"])))
            assert (await asyncio.wait_for(handle.result(), 60))["status"] == "completed"


async def test_a_subscriber_never_mailed_counts_from_the_later_of_consent_and_account_creation(
        postgres, settings, pool, dev_server, tmp_path):
    """Privacy policy 1.6 ("12 months since the last communication") also reaches subscribers who
    never received a newsletter; a contact who neither consented nor was mailed is left alone."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, email_delay=0.1) as stack:
        crm, processor = stack.databases["crm"], stack.databases["email_marketing"]
        subscribed = [r["email"] for r in await fetch_rows(processor, "SELECT email FROM subscribers ORDER BY id")]
        # Not the subscribers the test above chose: the app database, with its retention
        # requests, is shared.
        chosen = await fetch_rows(crm, "SELECT id, email FROM contacts WHERE email = ANY($1::text[]) AND id > 3 "
                                  "ORDER BY id OFFSET 2 LIMIT 3", subscribed)
        (gone_id, gone), (stays_id, stays), (unasked_id, unasked) = [(r["id"], r["email"]) for r in chosen]
        now = datetime.now(UTC)
        conn = await asyncpg.connect(crm)
        await conn.execute("UPDATE contacts SET last_marketing_email_at = $1 "
                           "WHERE last_marketing_email_at IS NOT NULL", now - timedelta(days=3))
        # Never mailed: consented 14 months ago on an account of 3 years (due); consented 13
        # months ago on an account created 11 months ago (the creation counts: not yet due);
        # no consent on record at all (no marketing data to erase: never reached).
        for contact, consent, created in ((gone_id, relativedelta(months=14), relativedelta(years=3)),
                                          (stays_id, relativedelta(months=13), relativedelta(months=11)),
                                          (unasked_id, None, relativedelta(years=3))):
            await conn.execute("UPDATE contacts SET last_marketing_email_at = NULL, marketing_consent_at = $2, "
                               "created_at = $3 WHERE id = $1",
                               contact, consent and now - consent, now - created)
        await conn.close()

        async with build_worker(dev_server.client, stack.settings, pool), api(stack):
            report = await dev_server.client.execute_workflow(
                RetentionSweepWorkflow.run, RetentionSweepInput(reason="test", rules=["marketing_data"]),
                id=f"retention-never-mailed-{uuid.uuid4().hex[:6]}", task_queue=stack.settings.task_queue)
            (outcome,) = report.rules
            assert (outcome.due, outcome.started, outcome.error) == (1, 1, None)
            mine = "origin = 'retention' AND details->>'retention_rule' = 'marketing_data'"
            requests = await pool.fetch(f"SELECT * FROM dsr_requests WHERE {mine} AND subject_email = ANY($1::text[])",
                                        [gone, stays, unasked])
            assert [r["subject_email"] for r in requests] == [gone]
            handle = dev_server.client.get_workflow_handle(workflow_id_for(str(requests[0]["id"])))
            assert (await asyncio.wait_for(handle.result(), 60))["status"] == "completed"
            assert await fetch_rows(processor, "SELECT 1 FROM subscribers WHERE email = $1", gone) == []
            for email in (stays, unasked):
                assert await fetch_rows(processor, "SELECT 1 FROM subscribers WHERE email = $1", email) != []
