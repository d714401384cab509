"""The sql connector against the seeded demo databases on the real (embedded) PostgreSQL (a copy
of them per test: tests/sql_demo.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date

import pytest

from activities.connectors.base import (
    ConnectorEnv,
    ErasureContext,
    PermanentConnectorError,
    Subject,
)
from activities.connectors.sql import SqlConnector
from activities.connectors.sql_database import SqlSystemUnavailable
from devstack.demo.sql_systems import SQL_SYSTEMS, ensure_demo_databases
from devstack.postgres import EmbeddedPostgres
from devstack.processes import free_port
from dsrflow.settings import Settings
from tests.sql_demo import (
    ADA,
    GRACE,
    SECRET,
    TABLES,
    TRACKED,
    Systems,
    clone,
    policy_for,
)


async def records(systems: Systems, subject: Subject) -> dict[str, list]:
    return {s: [r async for r in c.access(subject)] for s, c in systems.connectors.items()}


async def test_access_returns_each_subjects_rows_with_policy_categories(systems: Systems) -> None:
    systems.connectors["analytics"].prefetch = 7  # many cursor round trips for ada's 40 events
    ada = await records(systems, ADA)
    assert {r.dataset for r in ada["crm"]} == {"contacts", "support_requests", "chat_transcripts"}
    assert {r.dataset for r in ada["analytics"]} == {"users", "page_events"}
    assert {r.dataset for r in ada["billing"]} == {"customers", "invoices", "payments", "mandates"}
    for system, found in ada.items():
        datasets = {d.name: d for d in systems.policy.systems[system].datasets}
        for record in found:
            rules = datasets[record.dataset].fields
            assert record.fields and set(record.fields) <= set(rules)
            assert all(rules[c].category == record.category for c in record.fields)
            assert all(datasets[record.dataset].origin_of(c) == record.origin_of[c] for c in record.fields)
    contact = next(r for r in ada["crm"] if r.dataset == "contacts" and r.category == "account")
    assert contact.fields["email"] == "ada@example.com" and contact.fields["first_name"] == "Ada"
    assert "restricted" not in contact.fields  # only columns the policy lists
    events = [r for r in ada["analytics"] if r.dataset == "page_events" and r.category == "logs"]
    assert len(events) == 40 and isinstance(events[0].fields["ip"], str)
    invoices = [r.fields for r in ada["billing"] if r.dataset == "invoices"]
    assert {i["issued_on"][:4] for i in invoices} == {"2025", "2026"}
    assert all(isinstance(i["total"], str) for i in invoices)  # exact decimals
    assert len([r for r in ada["billing"] if r.dataset == "payments"]) == len(invoices) == 3

    grace = await records(systems, GRACE)
    assert {r.dataset for r in grace["billing"]} == {"customers", "mandates"}
    assert grace["crm"] and grace["analytics"]

    tracked = await records(systems, TRACKED)
    assert tracked["crm"] == [] and tracked["billing"] == []
    assert {r.dataset for r in tracked["analytics"]} == {"users", "page_events"}


async def test_access_by_customer_number(systems: Systems) -> None:
    # Both identities must agree on whose records they are (the e-mail is compared case-blind).
    subject = Subject(request_id="r", email="ADA@example.com", customer_id="C-000000")
    found = await records(systems, subject)
    assert {r.dataset for r in found["billing"]} == {"customers", "invoices", "payments", "mandates"}


async def test_identities_that_disagree_reach_no_one(systems: Systems) -> None:
    """An e-mail nobody has, or someone else's, with Ada's customer number: neither person's
    records are read or changed; the system says why, without quoting either identity."""
    before = await systems.counts()
    for email in ("nobody@example.net", "grace@example.com"):
        subject = Subject(request_id="r", email=email, customer_id="C-000000")
        for system in ("billing", "analytics"):
            with pytest.raises(PermanentConnectorError, match="point at different records") as refused:
                await systems.connectors[system].erase(subject)
            assert email not in str(refused.value) and "C-000000" not in str(refused.value)
            with pytest.raises(PermanentConnectorError, match="point at different records"):
                await records(systems, subject)
    assert await systems.counts() == before


async def test_erasure_removes_grace_and_nobody_else(systems: Systems) -> None:
    before = await systems.counts()
    contact_id = await systems.value("crm", "SELECT id FROM contacts WHERE email = 'grace@example.com'")
    customer_id = await systems.value("billing", "SELECT id FROM customers WHERE email = 'grace@example.com'")
    mine = {
        "crm.contacts": 1,
        "crm.support_requests": await systems.value("crm", "SELECT count(*) FROM support_requests WHERE contact_id = $1", contact_id),
        "crm.chat_transcripts": await systems.value("crm", "SELECT count(*) FROM chat_transcripts WHERE contact_id = $1", contact_id),
        "analytics.users": 1,
    }
    # Her (revoked) mandate is an accounting record: it and the customer data it needs are kept.
    mandates = await systems.value("billing", "SELECT count(*) FROM mandates WHERE customer_id = $1", customer_id)
    assert mandates > 0
    events = await systems.value("analytics", "SELECT count(*) FROM page_events WHERE user_id = 'C-000001'")
    assert events > 0 and mine["crm.support_requests"] > 0

    outcomes = {s: await c.erase(GRACE) for s, c in systems.connectors.items()}
    assert all(o.status == "done" for o in outcomes.values())
    assert outcomes["crm"].datasets["contacts"] == {"found": 1, "changed": 1, "deleted": 1, "kept": 0}
    assert outcomes["analytics"].datasets["page_events"]["anonymised"] == events
    assert outcomes["billing"].datasets["invoices"]["found"] == 0

    after = await systems.counts()
    # Page events stay as anonymous statistics, accounting records are held; every other row of
    # hers is gone, nobody else's.
    assert after == {k: v - mine.get(k, 0) for k, v in before.items()}
    assert outcomes["billing"].kept == 1 + mandates
    kept = await systems.value("billing", "SELECT count(*) FROM customers WHERE id = $1 AND restricted AND email IS NULL AND phone IS NULL", customer_id)
    assert kept == 1
    assert await systems.value("crm", "SELECT count(*) FROM contacts WHERE lower(email) LIKE 'grace@%'") == 0
    for table in ("support_requests", "chat_transcripts"):
        assert await systems.value("crm", f"SELECT count(*) FROM {table} WHERE contact_id = $1", contact_id) == 0
    assert await systems.value("analytics", "SELECT count(*) FROM users WHERE user_id = 'C-000001'") == 0
    assert await systems.value("analytics", "SELECT count(*) FROM page_events WHERE user_id = 'C-000001'") == 0
    assert await systems.value("analytics", "SELECT count(*) FROM page_events WHERE user_id IS NULL") == events
    assert await systems.value(
        "analytics", "SELECT count(*) FROM page_events WHERE user_id IS NULL AND (ip IS NOT NULL OR client_id IS NOT NULL)"
    ) == 0
    assert await systems.value("billing", "SELECT count(*) FROM customers WHERE email = 'grace@example.com'") == 0

    checksums = await systems.checksums()
    again = {s: await c.erase(GRACE) for s, c in systems.connectors.items()}
    assert all(o.status == "not_found" and o.changed == 0 for o in again.values())
    assert await systems.checksums() == checksums


async def test_evidence_is_kept_before_the_erasure_commits(systems: Systems) -> None:
    """The erasure ledger is written inside the system's transaction: if keeping the evidence
    fails, nothing is erased (the activity's retry does both); if it succeeds, it names every
    erased record."""
    crm = systems.connectors["crm"]
    checksums = await systems.checksums()

    async def unavailable(outcome) -> None:
        raise ConnectionError("the app database went away")

    with pytest.raises(ConnectionError):
        await crm.erase(GRACE, ErasureContext(today=date.today(), before_commit=unavailable))
    assert await systems.checksums() == checksums

    seen = []

    async def keep(outcome) -> None:
        # Still inside the transaction: the rows are gone for it, not yet for anyone else.
        seen.append(outcome)
        assert await systems.value("crm", "SELECT count(*) FROM contacts WHERE email = 'grace@example.com'") == 1

    outcome = await crm.erase(GRACE, ErasureContext(today=date.today(), before_commit=keep))
    assert seen == [outcome] and outcome.erased["contacts"] and all(a == "deleted" for _, a in outcome.erased["contacts"])
    assert await systems.value("crm", "SELECT count(*) FROM contacts WHERE email = 'grace@example.com'") == 0


async def test_anonymised_child_keeps_its_parent(postgres: EmbeddedPostgres, template: dict[str, str]) -> None:
    """Support requests kept as anonymised statistics still point at their contact: the contact
    is anonymised by its field rules instead of deleted."""
    def edit(content: dict) -> None:
        datasets = {d["name"]: d for d in content["systems"]["crm"]["datasets"]}
        datasets["support_requests"]["erasure"] = "anonymise"

    names = await clone(postgres, template)
    systems = Systems(postgres, names, policy_for(names, edit))
    try:
        contact_id = await systems.value("crm", "SELECT id FROM contacts WHERE email = 'grace@example.com'")
        outcome = await systems.connectors["crm"].erase(GRACE)
        assert outcome.datasets["contacts"] == {"found": 1, "changed": 1, "anonymised": 1, "kept": 0}
        assert outcome.datasets["chat_transcripts"]["deleted"] == 1
        row = (await systems.fetch("crm", "SELECT * FROM contacts WHERE id = $1", contact_id))[0]
        assert len(row["email"]) == 64 and row["first_name"] is None and row["phone"] is None
        assert row["created_at"] is not None  # erase: keep
        kept = await systems.fetch("crm", "SELECT subject, body FROM support_requests WHERE contact_id = $1", contact_id)
        assert kept and all(r["subject"] is None and r["body"] is None for r in kept)
        again = await systems.connectors["crm"].erase(GRACE)
        assert again.status == "not_found" and again.changed == 0
    finally:
        await systems.close()


async def test_rectification_reaches_only_rectifiable_columns(systems: Systems) -> None:
    """Only columns the policy declares rectifiable change, with values they accept: an identity
    the policy keeps (e-mail), an invoice total or a value of the wrong shape never does, even
    when a correction names them (intake refuses them too: tests/test_rectification_security.py)."""
    totals = await systems.fetch("billing", "SELECT id, total FROM invoices ORDER BY id")
    corrections = {"name": "Ada King", "last_name": "King", "email": "ada.king@example.com",
                   "total": "0", "nickname": "x", "phone": "call me maybe"}
    outcomes = {s: await c.rectify(ADA, corrections) for s, c in systems.connectors.items()}
    assert outcomes["billing"].datasets == {"customers": {"found": 1, "changed": 1}}
    assert outcomes["crm"].datasets == {"contacts": {"found": 1, "changed": 1}}
    assert outcomes["analytics"].datasets == {}
    assert outcomes["crm"].message == "no field in this system for: email, name, nickname, phone, total"
    assert outcomes["billing"].message == "no field in this system for: email, last_name, nickname, phone, total"

    contact = (await systems.fetch("crm", "SELECT * FROM contacts WHERE id = 1"))[0]
    assert (contact["first_name"], contact["last_name"], contact["email"]) == ("Ada", "King", "ada@example.com")
    customer = (await systems.fetch("billing", "SELECT * FROM customers WHERE customer_number = 'C-000000'"))[0]
    assert (customer["name"], customer["email"]) == ("Ada King", "ada@example.com")
    assert customer["phone"] != "call me maybe"
    assert await systems.fetch("billing", "SELECT id, total FROM invoices ORDER BY id") == totals
    assert await systems.value("analytics", "SELECT email FROM users WHERE user_id = 'C-000000'") == "ada@example.com"

    again = await systems.connectors["billing"].rectify(ADA, {"name": "Ada King"})
    assert (again.status, again.found, again.changed) == ("done", 1, 0)


async def test_restriction_lift_and_objection(systems: Systems) -> None:
    async def restricted(value: bool) -> dict[str, int]:
        return {
            f"{s}.{t}": await systems.value(s, f"SELECT count(*) FROM {t} WHERE restricted = $1", value)
            for s in TABLES for t in TABLES[s] if t != "companies"
        }

    outcomes = {s: await c.restrict(ADA) for s, c in systems.connectors.items()}
    # Every row of hers (3 invoices, 3 payments, 1 mandate, 1 customer in billing) is marked.
    assert outcomes["billing"].found == outcomes["billing"].changed == 8
    assert outcomes["analytics"].changed == 41 and outcomes["crm"].changed == 4
    marked = await restricted(True)
    assert sum(marked.values()) == sum(o.changed for o in outcomes.values())
    assert marked["crm.contacts"] == 1 and marked["billing.invoices"] == 3
    assert (await systems.connectors["crm"].restrict(ADA)).changed == 0  # idempotent

    lifted = {s: await c.lift_restriction(ADA) for s, c in systems.connectors.items()}
    assert sum(o.changed for o in lifted.values()) == sum(marked.values())
    assert sum((await restricted(True)).values()) == 0

    before = (await systems.fetch("crm", "SELECT marketing_opt_in, profiling_opt_out FROM contacts WHERE id = 1"))[0]
    assert before["marketing_opt_in"] is True
    sums_before = await systems.checksums()
    outcome = await systems.connectors["crm"].object(ADA, "direct_marketing")
    assert (outcome.status, outcome.changed) == ("done", 1)
    after = (await systems.fetch("crm", "SELECT marketing_opt_in, profiling_opt_out FROM contacts WHERE id = 1"))[0]
    assert after["marketing_opt_in"] is False and after["profiling_opt_out"] == before["profiling_opt_out"]
    untouched = await systems.connectors["billing"].object(ADA, "direct_marketing")
    assert untouched.status == "done" and untouched.found == 0 and "direct_marketing" in untouched.message
    sums = await systems.checksums()
    assert {k: v for k, v in sums.items() if not k.startswith("crm.")} == {
        k: v for k, v in sums_before.items() if not k.startswith("crm.")
    }
    opted_out = await systems.value("crm", "SELECT count(*) FROM contacts WHERE NOT marketing_opt_in")
    assert (await systems.connectors["crm"].object(ADA, "profiling")).changed == 1
    assert await systems.value("crm", "SELECT count(*) FROM contacts WHERE NOT marketing_opt_in") == opted_out


async def test_missing_column_or_table_is_permanent(postgres: EmbeddedPostgres, template: dict[str, str]) -> None:
    def add_column(content: dict) -> None:
        contacts = content["systems"]["crm"]["datasets"][0]
        contacts["fields"]["fax"] = {"category": "account", "erase": "null"}

    def rename_table(content: dict) -> None:
        content["systems"]["billing"]["datasets"][2]["table"] = "settlements"

    names = await clone(postgres, template)
    for edit, system, expected in [
        (add_column, "crm", ["'crm'", "'contacts'", "'fax'"]),
        (rename_table, "billing", ["'billing'", "'payments'", "'settlements'"]),
    ]:
        systems = Systems(postgres, names, policy_for(names, edit))
        try:
            with pytest.raises(PermanentConnectorError) as caught:
                await systems.connectors[system].erase(ADA)
            assert all(part in str(caught.value) for part in expected), str(caught.value)
        finally:
            await systems.close()


async def test_unreachable_database_is_retryable(postgres: EmbeddedPostgres) -> None:
    policy = policy_for({})
    env = ConnectorEnv(
        system_name="crm", system=policy.systems["crm"], policy=policy,
        settings=Settings(DSRFLOW_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x"),
        secret=SECRET, callback_url="http://127.0.0.1:8000/v1/callbacks/opendsr",
    )
    connector = SqlConnector(env)
    try:
        with pytest.raises(SqlSystemUnavailable):
            await connector.restrict(ADA)
        missing = SqlConnector(replace(env, settings=Settings(DSRFLOW_DATABASE_URL=postgres.url("x"))))
        with pytest.raises(PermanentConnectorError, match="does not exist"):
            await missing.restrict(ADA)  # the database itself is missing: configuration
        await missing.close()
    finally:
        await connector.close()


async def test_seeding_is_idempotent_and_deterministic(postgres: EmbeddedPostgres, template: dict[str, str]) -> None:
    # Closed however the test ends: a connection left on a template keeps every later copy of it
    # from being made ("being accessed by other users").
    first = Systems(postgres, template, policy_for(template))
    fresh = {system: f"again_{system}_{uuid.uuid4().hex[:8]}" for system in SQL_SYSTEMS}
    again = Systems(postgres, fresh, policy_for(fresh))
    try:
        before = await first.checksums()
        assert await ensure_demo_databases(postgres, postgres.url, template) == dict.fromkeys(SQL_SYSTEMS, False)
        assert await first.checksums() == before

        for name in fresh.values():
            await postgres.ensure_database(name)
        # Databases that already exist (server None) are seeded too.
        assert await ensure_demo_databases(None, postgres.url, fresh) == dict.fromkeys(SQL_SYSTEMS, True)
        assert await again.checksums() == before
        counts = await first.counts()
        assert counts["crm.contacts"] > 800 and counts["analytics.page_events"] > 20 * counts["analytics.users"]
    finally:
        await first.close()
        await again.close()
