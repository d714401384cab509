"""Retention: the privacy policy's periods as policy rules, a plan that changes nothing, and a daily
sweep that opens erasure requests for inactive accounts and clears expired web logs in bulk."""

from __future__ import annotations

import asyncio
import copy
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from dateutil.relativedelta import relativedelta

from activities.ledger import write_ledger
from activities.letters import notifies_subject
from dsrflow.crypto.hashing import subject_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.holds_store import place_hold
from policy.model import DEFAULT_POLICY, PolicyError, load_policy, parse_policy
from schemas.retention import RetentionSweepInput
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import fetch_rows
from tests.yaml_files import dump_yaml, read_yaml
from workers.dsr_worker import build_worker
from workflows.retention_sweep import RetentionSweepWorkflow

RAW = read_yaml(DEFAULT_POLICY)
DEMO_TABLES = {
    "crm": ["companies", "contacts", "support_requests", "chat_transcripts"],
    "analytics": ["users", "page_events"],
    "billing": ["customers", "invoices", "payments", "mandates"],
}


async def _value(url: str, sql: str, *args):
    return (await fetch_rows(url, sql, *args))[0][0]


# The rules as policy ------------------------------------------------------------------------------

def test_shipped_policy_has_the_privacy_policys_periods() -> None:
    rules = {r.name: r for r in load_policy().policy.retention}
    assert set(rules) == {"inactive_accounts", "marketing_data", "web_logs", "analytics"}
    accounts = rules["inactive_accounts"]
    assert (accounts.system, accounts.dataset, accounts.months, accounts.action) == ("crm", "contacts", 12, "erase_subject")
    assert accounts.notify_subject is False
    assert [s.column for s in accounts.last_activity] == ["last_seen_at", "created_at"]
    marketing = rules["marketing_data"]
    assert (marketing.dataset, marketing.months, marketing.systems) == ("contacts", 12, ["email_marketing"])
    assert [s.column for s in marketing.last_activity] == ["last_marketing_email_at", "marketing_consent_at", "created_at"]
    assert marketing.only_where_set == ["last_marketing_email_at", "marketing_consent_at"]
    logs = rules["web_logs"]
    assert (logs.dataset, logs.months, logs.action, logs.categories) == ("page_events", 12, "delete_rows", ["logs"])
    analytics = rules["analytics"]
    assert (analytics.dataset, analytics.months, analytics.action) == ("users", 24, "delete_rows")
    assert [(s.dataset, s.column) for s in analytics.last_activity] == [(None, "signup_at"), ("page_events", "occurred_at")]


def _with_rule(**changes) -> dict:
    content = copy.deepcopy(RAW)
    rule = {"name": "test_rule", "label": "A rule under test", "system": "crm", "dataset": "contacts",
            "last_activity": {"column": "last_seen_at"}, "months": 12, "action": "erase_subject"}
    rule.update(changes)
    content["retention"].append({k: v for k, v in rule.items() if v is not None})
    return content


@pytest.mark.parametrize(("changes", "message"), [
    ({"system": "mainframe"}, r"retention\.4\.system: unknown system 'mainframe'"),
    ({"system": "email_marketing"}, r"retention\.4\.system: 'email_marketing' is a opendsr system"),
    ({"dataset": "leads"}, r"retention\.4\.dataset: unknown dataset 'leads' in system 'crm'"),
    ({"last_activity": {"column": "last_login"}}, r"retention\.4\.last_activity\.0\.column: unknown column 'last_login'"),
    ({"last_activity": [{"column": "created_at"}, {"dataset": "companies", "column": "name"}]},
     r"retention\.4\.last_activity\.1\.dataset: 'companies' is not a dataset of 'crm' that refers to 'contacts'"),
    ({"last_activity": {"dataset": "support_requests", "column": "opened"}},
     r"retention\.4\.last_activity\.0\.column: unknown column 'opened' \(not among the fields of dataset 'support_requests'\)"),
    ({"system": "billing", "dataset": "invoices", "last_activity": {"column": "issued_on"}, "action": "delete_rows"},
     r"retention\.4\.action: delete_rows would reach dataset 'invoices', which is under statutory hold 'be_accounting'"),
    ({"system": "billing", "dataset": "customers", "last_activity": {"column": "name"}, "action": "delete_rows"},
     r"retention\.4\.action: delete_rows would reach dataset '(customers|invoices|mandates|payments)'"),
    ({"system": "analytics", "dataset": "page_events", "last_activity": {"column": "occurred_at"}},
     r"retention\.4\.dataset: erase_subject needs a dataset that identifies subjects by e-mail"),
    ({"action": "delete_rows", "categories": ["horoscope"]}, r"retention\.4\.categories: unknown \['horoscope'\]"),
    ({"action": "delete_rows", "categories": ["payments"]}, r"retention\.4\.categories: .*all are `keep`"),
    ({"systems": ["email_marketing", "mainframe"]}, r"retention\.4\.systems\.1: unknown system 'mainframe'"),
    ({"only_where_set": ["consented_on"]}, r"retention\.4\.only_where_set\.0: unknown column 'consented_on'"),
    ({"action": "delete_rows", "systems": ["crm"]}, r"systems apply to erase_subject rules only"),
    ({"action": "delete_rows", "notify_subject": True}, r"notify_subject applies to erase_subject rules only"),
    ({"categories": ["logs"]}, r"categories apply to delete_rows rules only"),
    ({"name": "web_logs"}, r"retention\.4\.name: 'web_logs' is used by an earlier rule"),
    ({"months": 0}, r"retention\.4\.months"),
    ({"action": "archive"}, r"retention\.4\.action"),
])
def test_bad_rules_are_refused_naming_their_path(tmp_path: Path, changes: dict, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(dump_yaml(_with_rule(**changes), sort_keys=False))
    with pytest.raises(PolicyError, match=message) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)


def test_a_valid_extra_rule_loads() -> None:
    content = _with_rule(last_activity=[{"column": "created_at"}, {"dataset": "support_requests", "column": "created_at"}],
                         notify_subject=True)
    rule = parse_policy(content).policy.retention[-1]
    assert rule.notify_subject and rule.last_activity[1].dataset == "support_requests"


def test_only_retention_requests_can_go_without_subject_letters() -> None:
    assert notifies_subject({"origin": "staff", "details": {}})
    assert notifies_subject({"origin": "subject", "details": {"notify_subject": False}})
    assert not notifies_subject({"origin": "retention", "details": {"retention_rule": "inactive_accounts"}})
    assert not notifies_subject({"origin": "retention", "details": {"notify_subject": False}})
    assert notifies_subject({"origin": "retention", "details": {"notify_subject": True}})


# The plan ---------------------------------------------------------------------------------------

async def _snapshot(stack, pool) -> dict[str, object]:
    sums = {}
    for system, tables in DEMO_TABLES.items():
        for table in tables:
            sums[f"{system}.{table}"] = await _value(
                stack.databases[system], f"SELECT count(*)::text || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {table} x")
    for table in ("dsr_requests", "audit_events", "erasure_ledger", "policy_versions", "sent_letters"):
        sums[f"app.{table}"] = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return sums


async def test_retention_plan_prints_counts_and_changes_nothing(postgres, settings, pool, dev_server, tmp_path):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        db = stack.databases
        # The seed's own day: its dates are fixed relative to it, so the numbers are too.
        as_of = datetime(2026, 6, 16, 22, tzinfo=UTC)  # 17 June 2026, 00:00 in Brussels
        cutoff = as_of - relativedelta(months=12)
        inactive = await _value(db["crm"], "SELECT count(DISTINCT lower(email)) FROM contacts "
                                           "WHERE greatest(last_seen_at, created_at) < $1", cutoff)
        old_logs = await _value(db["analytics"], "SELECT count(*) FROM page_events WHERE occurred_at < $1 "
                                                 "AND (ip IS NOT NULL OR device_id IS NOT NULL)", cutoff)
        assert inactive > 50 and old_logs > 1000
        before = await _snapshot(stack, pool)

        env = {**os.environ, "DSRFLOW_HOME": str(stack.settings.home),
               "DSRFLOW_DATABASE_URL": stack.settings.effective_database_url,
               "DSRFLOW_POLICY": str(stack.settings.policy_path)}
        done = subprocess.run([sys.executable, "-m", "cli.main", "retention", "plan", "--as-of", "2026-06-17"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "@" not in out, "the plan must not print addresses"
        assert "as of 2026-06-17T00:00:00+02:00" in out
        subjects = re.search(r"crm\.contacts: (\d+) subject\(s\)", out)
        alone = re.search(r"left alone: (\d+) under a legal-claims hold or a restriction that keeps them from erasure, (\d+) with an erasure request open, "
                          r"(\d+) erased since their last activity", out)
        # Other tests share the app database: their holds, open requests and erasures are left alone.
        assert int(subjects.group(1)) + sum(int(n) for n in alone.groups()) == inactive
        logs = re.search(r"analytics\.page_events: (\d+) row\(s\): logs fields cleared", out)
        held_rows = re.search(r"web_logs: .*\n.*\n  left alone: (\d+) row\(s\)", out)
        assert int(logs.group(1)) + int(held_rows.group(1)) == old_logs
        assert re.search(r"^analytics: delete_rows analytics\.users, 24 months after the latest of signup_at, "
                         r"max\(page_events\.occurred_at\)$", out, re.M)
        assert out.strip().splitlines()[-1].startswith("total: ")

        assert await _snapshot(stack, pool) == before

        bad = subprocess.run([sys.executable, "-m", "cli.main", "retention", "plan", "--as-of", "17/06/2026"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "--as-of" in bad.stderr


# The sweep --------------------------------------------------------------------------------------

async def _retention_request(pool, email: str, timeout: float = 30) -> dict:
    for _ in range(int(timeout * 10)):
        row = await pool.fetchrow("SELECT * FROM dsr_requests WHERE origin = 'retention' AND subject_email = $1 "
                                  "ORDER BY created_at DESC LIMIT 1", email)
        if row:
            return dict(row)
        await asyncio.sleep(0.1)
    raise AssertionError("no retention request")


async def test_sweep_erases_accounts_inactive_for_more_than_12_months(postgres, settings, pool, time_skipping, tmp_path):
    env = time_skipping
    async with fanout_stack(postgres, settings, env.client, tmp_path) as stack:
        crm, billing = stack.databases["crm"], stack.databases["billing"]
        now = await env.get_current_time()
        # Customers with invoices: their accounting records must outlive their accounts.
        invoiced = [r["email"] for r in await fetch_rows(billing, """
            SELECT c.email FROM customers c JOIN invoices i ON i.customer_id = c.id
            WHERE c.id > 3 GROUP BY c.email ORDER BY min(c.id) LIMIT 50""")]
        chosen = await fetch_rows(crm, "SELECT id, email FROM contacts WHERE email = ANY($1::text[]) ORDER BY id LIMIT 2", invoiced)
        (gone_id, gone), (stays_id, stays) = [(r["id"], r["email"]) for r in chosen]
        invoices = "SELECT i.restricted FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE c.customer_number = $1"
        customer_number = await _value(billing, "SELECT customer_number FROM customers WHERE email = $1", gone)
        invoices_before = len(await fetch_rows(billing, invoices, customer_number))
        assert invoices_before > 0
        # Everyone else used the app yesterday; the two chosen last did 13 and 11 months ago.
        conn = await asyncpg.connect(crm)
        # Nobody has marketing data (no newsletter, no consent): only the accounts rule has work.
        await conn.execute("UPDATE contacts SET last_seen_at = $1, last_marketing_email_at = NULL, "
                           "marketing_consent_at = NULL", now - timedelta(days=1))
        for contact, months in ((gone_id, 13), (stays_id, 11)):
            await conn.execute("UPDATE contacts SET last_seen_at = $2, created_at = $3 WHERE id = $1",
                               contact, now - relativedelta(months=months), now - relativedelta(years=3))
        await conn.close()

        # Virtual time moves only when the test says so: left to skip on its own while a result
        # is awaited, the time-skipping server may leap years ahead when the machine is busy.
        with env.auto_time_skipping_disabled():
            async with build_worker(env.client, stack.settings, pool), api(stack):
                async def sweep(name: str):
                    return await env.client.execute_workflow(
                        RetentionSweepWorkflow.run, RetentionSweepInput(reason="test"),
                        id=f"retention-{name}-{uuid.uuid4().hex[:6]}", task_queue=stack.settings.task_queue)

                report = await sweep("first")
                accounts = next(r for r in report.rules if r.rule == "inactive_accounts")
                assert (accounts.due, accounts.started, accounts.held, accounts.in_progress) == (1, 1, 0, 0)
                assert {r.rule for r in report.rules} == {"inactive_accounts", "marketing_data", "web_logs", "analytics"}
                assert "@" not in report.model_dump_json()

                request = await _retention_request(pool, gone)
                assert request["attested_by"] == "retention:inactive_accounts"
                assert request["details"] == {"retention_rule": "inactive_accounts", "notify_subject": False,
                                              "retention_last_activity": request["details"]["retention_last_activity"]}
                state = await asyncio.wait_for(env.client.get_workflow_handle(workflow_id_for(str(request["id"]))).result(), 120)
                assert state["status"] == "completed", state
                assert await fetch_rows(crm, "SELECT 1 FROM contacts WHERE id = $1", gone_id) == []
                assert await fetch_rows(crm, "SELECT 1 FROM contacts WHERE id = $1", stays_id) != []
                # Erasure is hold-aware: the accounting records stay, minimised and restricted.
                kept = await fetch_rows(billing, invoices, customer_number)
                assert len(kept) == invoices_before and all(r["restricted"] for r in kept)
                assert await fetch_rows(billing, "SELECT 1 FROM customers WHERE email = $1", gone) == []
                # No verification, no letters to the subject (the policy says not to), evidence kept.
                letters = await pool.fetch("SELECT purpose FROM sent_letters WHERE request_id = $1 AND recipient = $2",
                                           request["id"], gone)
                assert letters == []
                suppressed = await pool.fetch("SELECT data->>'purpose' AS purpose FROM audit_events "
                                              "WHERE request_id = $1 AND event_type = 'letter.suppressed'", request["id"])
                assert {r["purpose"] for r in suppressed} == {"acknowledgement", "response"}
                assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_type = 'retention.applied' "
                                           "AND data->>'rule' = 'inactive_accounts' AND (data->>'started')::int = 1") >= 1

                # The same day again: nothing left to do.
                again = next(r for r in (await sweep("again")).rules if r.rule == "inactive_accounts")
                assert (again.due, again.started) == (0, 0)

                # Two months later the other account has been inactive for 13 months too.
                await env.sleep(timedelta(days=62))
                later = next(r for r in (await sweep("later")).rules if r.rule == "inactive_accounts")
                assert (later.due, later.started) == (1, 1)
                request = await _retention_request(pool, stays)
                state = await asyncio.wait_for(env.client.get_workflow_handle(workflow_id_for(str(request["id"]))).result(), 120)
                assert state["status"] == "completed", state
                assert await fetch_rows(crm, "SELECT 1 FROM contacts WHERE id = $1", stays_id) == []
                assert await _value(crm, "SELECT count(*) FROM contacts") > 800  # everyone else stays


async def test_sweep_clears_web_logs_older_than_12_months_in_bulk(postgres, settings, pool, dev_server, tmp_path):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        db = stack.databases["analytics"]
        now = datetime.now(UTC)
        cutoff = now - relativedelta(months=12)
        # A legal-claims hold on a subject's analytics data keeps their logs as they are.
        async with pool.acquire() as conn:
            await place_hold(conn, secret=load_secret_key(stack.settings), email="tracked@example.com",
                             customer_id=None, systems=["analytics"], categories=None,
                             basis="Art. 17(3)(e) GDPR", reason="Dispute about tracking, claim 2026/31",
                             review_date=date.today() + timedelta(days=90), actor="compliance:test")
        try:
            count = "SELECT count(*) FROM page_events WHERE {} AND ip IS NOT NULL AND device_id IS NOT NULL"
            old = await _value(db, count.format("occurred_at < $1"), cutoff - timedelta(minutes=5))
            recent = await _value(db, count.format("occurred_at > $1"), cutoff + timedelta(minutes=5))
            tracked_old = await _value(db, count.format("occurred_at < $1 AND user_id = 'C-000002'"), cutoff)
            linked = await _value(db, "SELECT count(*) FROM page_events WHERE user_id IS NOT NULL")
            assert old > 1000 and recent > 1000 and tracked_old > 0

            async with build_worker(dev_server.client, stack.settings, pool):
                report = await dev_server.client.execute_workflow(
                    RetentionSweepWorkflow.run, RetentionSweepInput(reason="test", rules=["web_logs"]),
                    id=f"retention-logs-{uuid.uuid4().hex[:6]}", task_queue=stack.settings.task_queue)
                (logs,) = report.rules
                assert logs.rule == "web_logs" and logs.held == tracked_old
                assert logs.removed["page_events"] == logs.due - logs.held >= old - tracked_old

                left = "SELECT count(*) FROM page_events WHERE occurred_at < $1 AND (ip IS NOT NULL OR device_id IS NOT NULL)"
                assert await _value(db, left, cutoff - timedelta(minutes=5)) == tracked_old
                assert await _value(db, count.format("occurred_at > $1"), cutoff + timedelta(minutes=5)) == recent
                # Only the log fields went: the events still count as (pseudonymous) analytics.
                assert await _value(db, "SELECT count(*) FROM page_events WHERE user_id IS NOT NULL") == linked

                again = (await dev_server.client.execute_workflow(
                    RetentionSweepWorkflow.run, RetentionSweepInput(reason="test", rules=["web_logs"]),
                    id=f"retention-logs-{uuid.uuid4().hex[:6]}", task_queue=stack.settings.task_queue)).rules[0]
                assert again.removed.get("page_events", 0) <= 5  # at most what aged past the cutoff meanwhile
        finally:
            await pool.execute("UPDATE legal_holds SET released_at = now(), released_by = 'test' "
                               "WHERE subject_email = 'tracked@example.com' AND released_at IS NULL")


async def test_sweep_erases_analytics_24_months_after_the_last_visit(postgres, settings, pool, dev_server, tmp_path):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        db = stack.databases["analytics"]
        now = datetime.now(UTC)
        (gone, gone_email), (stays, _) = [(r["user_id"], r["email"]) for r in await fetch_rows(
            db, "SELECT user_id, email FROM users WHERE user_id > 'C-000002' ORDER BY user_id LIMIT 2")]
        conn = await asyncpg.connect(db)
        for user, months in ((gone, 25), (stays, 23)):
            await conn.execute("UPDATE users SET signup_at = $2 WHERE user_id = $1", user, now - relativedelta(months=30))
            await conn.execute("UPDATE page_events SET occurred_at = $2::timestamptz - (id % 60) * interval '1 day' WHERE user_id = $1",
                               user, now - relativedelta(months=months))
        await conn.close()
        events = await _value(db, "SELECT count(*) FROM page_events WHERE user_id = $1", gone)
        client_id = await _value(db, "SELECT client_id FROM page_events WHERE user_id = $1 LIMIT 1", gone)
        stays_events = await _value(db, "SELECT count(*) FROM page_events WHERE user_id = $1", stays)

        # A system whose schema no longer matches the policy stops its rule, not the others.
        conn = await asyncpg.connect(stack.databases["crm"])
        await conn.execute("ALTER TABLE contacts DROP COLUMN last_seen_at")
        await conn.close()

        async with build_worker(dev_server.client, stack.settings, pool):
            report = await dev_server.client.execute_workflow(
                RetentionSweepWorkflow.run, RetentionSweepInput(reason="test", rules=["inactive_accounts", "analytics"]),
                id=f"retention-analytics-{uuid.uuid4().hex[:6]}", task_queue=stack.settings.task_queue)
        accounts, analytics = report.rules
        assert accounts.rule == "inactive_accounts" and accounts.started == 0
        assert "'last_seen_at' does not exist" in accounts.error
        assert analytics.error is None
        assert (analytics.due, analytics.removed) == (1, {"users": 1, "page_events": events})
        assert await fetch_rows(db, "SELECT 1 FROM users WHERE user_id = $1", gone) == []
        # Its page events stay only as anonymous statistics (the dataset's erasure rules).
        assert await _value(db, "SELECT count(*) FROM page_events WHERE client_id = $1", client_id) == 0
        assert await _value(db, "SELECT count(*) FROM users WHERE user_id = $1", stays) == 1
        assert await _value(db, "SELECT count(*) FROM page_events WHERE user_id = $1", stays) == stays_events
        # The erasure ledger knows what went and whose it was (by keyed hash), for backup restores.
        ledger = await pool.fetch("SELECT dataset, action, subject_hash FROM erasure_ledger "
                                  "WHERE origin = 'retention' AND system = 'analytics' AND policy_version = $1",
                                  report.policy_version)
        assert {(r["dataset"], r["action"]) for r in ledger} >= {("users", "deleted"), ("page_events", "anonymised")}
        assert {r["subject_hash"] for r in ledger if r["dataset"] == "users"} == {
            subject_hash(load_secret_key(stack.settings), gone_email)}


async def test_a_retention_erasure_run_again_is_ledgered_once(pool):
    """A retention run's ledger rows are kept before the system commits; a run killed in between is
    run again and keeps them again. They have no request (NULL), which the ledger's unique index
    counted as distinct until migration 0030: each record was ledgered twice."""
    key = uuid.uuid4().hex
    rows = [("subject-hash", "analytics", "users", key, "deleted", "v1", None, "retention"),
            ("subject-hash", "analytics", "page_events", key, "anonymised", "v1", None, "retention")]
    await write_ledger(pool, rows)
    await write_ledger(pool, rows)
    assert await pool.fetchval("SELECT count(*) FROM erasure_ledger WHERE record_key = $1", key) == 2


async def test_a_crm_demo_database_seeded_before_last_seen_at_is_upgraded(postgres):
    from devstack.demo.sql_systems import SEED_VERSION, ensure_demo_databases

    names = {s: f"{s}_{uuid.uuid4().hex[:6]}" for s in DEMO_TABLES}
    assert await ensure_demo_databases(postgres, postgres.url, names) == dict.fromkeys(DEMO_TABLES, True)
    contacts = "SELECT id, last_seen_at, marketing_consent_at, engagement_segment FROM contacts ORDER BY id"
    mandates = "SELECT id, last_collection_on FROM mandates ORDER BY id"
    crm, billing = postgres.url(names["crm"]), postgres.url(names["billing"])
    expected = await fetch_rows(crm, contacts), await fetch_rows(billing, mandates)
    assert any(r["last_collection_on"] for r in expected[1])
    # What version 1 left behind in the crm (no last_seen_at, no consent date), and version 3 in
    # billing (no last collection of mandates).
    conn = await asyncpg.connect(crm)
    await conn.execute("ALTER TABLE contacts DROP COLUMN last_seen_at, DROP COLUMN marketing_consent_at, "
                       "DROP COLUMN engagement_segment; "
                       "UPDATE demo_meta SET value = '1' WHERE key = 'seeded'")
    await conn.close()
    conn = await asyncpg.connect(billing)
    await conn.execute("ALTER TABLE mandates DROP COLUMN last_collection_on; "
                       "UPDATE demo_meta SET value = '3' WHERE key = 'seeded'")
    await conn.close()

    assert await ensure_demo_databases(postgres, postgres.url, names) == dict.fromkeys(DEMO_TABLES, False)
    assert (await fetch_rows(crm, contacts), await fetch_rows(billing, mandates)) == expected
    for url in (crm, billing):
        assert await _value(url, "SELECT value FROM demo_meta WHERE key = 'seeded'") == SEED_VERSION
