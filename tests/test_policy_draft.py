"""`dsrflow policy draft` and `dsrflow policy check` (issue 19, part 3): against the seeded demo
databases (the draft of crm finds what policy/connexeon.yaml declares for it) and against a
schema of awkward cases (composite keys, a foreign-key cycle, a self-reference, a table with no
identity, quoted mixed-case names, a table in another schema)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import asyncpg
import pytest
import yaml

from activities.connectors.sql_check import check_policy
from activities.connectors.sql_draft import DraftError, draft_system
from dsrflow.settings import Settings
from policy.model import load_policy
from policy.systems import System
from tests.sql_demo import policy_for
from tests.support import settings_env
from tests.yaml_files import dump_yaml, read_yaml

SECRET_VALUE = "ada.lovelace.draft@example.com"  # sampled by the draft: must never be written

AWKWARD = f"""
CREATE SCHEMA other;
CREATE TABLE other.accounts (id bigint PRIMARY KEY, email text);
CREATE TABLE members (
    member_no text PRIMARY KEY,
    contact text,           -- no telling name: the sampled values say it holds addresses
    mobile text,
    newsletter_opt_in boolean,
    referred_by text REFERENCES members (member_no),
    other_account bigint REFERENCES other.accounts (id),
    joined_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    shop text, order_no integer, member_no text REFERENCES members (member_no),
    total numeric, PRIMARY KEY (shop, order_no)
);
CREATE TABLE order_lines (
    shop text, order_no integer, line integer, item text,
    PRIMARY KEY (shop, order_no, line), FOREIGN KEY (shop, order_no) REFERENCES orders (shop, order_no)
);
-- A foreign-key cycle: teams point at their captain, members' badges point at teams.
CREATE TABLE teams (id bigint PRIMARY KEY, name text, captain_badge bigint);
CREATE TABLE badges (id bigint PRIMARY KEY, member_no text REFERENCES members (member_no),
                     team_id bigint REFERENCES teams (id));
ALTER TABLE teams ADD FOREIGN KEY (captain_badge) REFERENCES badges (id);
CREATE TABLE warehouse_stock (sku text PRIMARY KEY, quantity integer);
CREATE TABLE "CamelCustomers" ("Id" bigint PRIMARY KEY, "EMail" text);
INSERT INTO members (member_no, contact, mobile) VALUES
    ('M-1', '{SECRET_VALUE}', '+32 470 12 34 56'), ('M-2', 'grace.draft@example.org', '+32 471 00 00 00');
"""


@pytest.fixture(scope="module")
async def awkward_url(postgres) -> str:
    name = f"awkward_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres.url())
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    conn = await asyncpg.connect(postgres.url(name))
    await conn.execute(AWKWARD)
    await conn.close()
    return postgres.url(name)


async def draft(url: str, system: str, **kwargs) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await draft_system(conn, system, database=url.rsplit("/", 1)[1], **kwargs)
    finally:
        await conn.close()


def datasets(text: str, system: str) -> dict[str, dict]:
    drafted = yaml.safe_load(text)["systems"][system]
    System.model_validate(drafted)  # it loads as the policy's own model
    return {d["name"]: d for d in drafted["datasets"]}


async def test_draft_of_crm_finds_what_the_policy_declares(postgres, template):
    text = await draft(postgres.url(template["crm"]), "crm")
    found = datasets(text, "crm")
    declared = {d.name: d for d in load_policy().policy.systems["crm"].datasets}

    assert set(declared) <= set(found)
    for name, dataset in declared.items():
        assert found[name]["table"] == dataset.table
        assert found[name]["key"] == dataset.key
        assert found[name].get("identify", {}) == dataset.identify, name
        if dataset.via:
            assert found[name]["via"]["dataset"] == dataset.via.dataset
            assert found[name]["via"]["column"] == dataset.via.column
        assert found[name].get("restricted_column") == dataset.restricted_column
        # Every column the policy describes is drafted, and its identity is recognised.
        assert set(dataset.fields) <= set(found[name]["fields"]), name
        for column, rule in dataset.fields.items():
            assert found[name]["fields"][column].get("identity") == rule.identity, column
    assert found["contacts"]["fields"]["email"]["erase"] == "hash"
    assert found["contacts"]["fields"]["first_name"]["category"] == "account"
    assert "companies" not in found and "companies" in text.split("not reached from any identity")[1]
    assert "# review:" in text and "rows" in text
    # Sampled addresses only fed pattern checks.
    assert "@example" not in text


async def test_draft_of_analytics_and_billing_load(postgres, template):
    for system in ("analytics", "billing"):
        found = datasets(await draft(postgres.url(template[system]), system), system)
        declared = load_policy().policy.systems[system].datasets
        roots = [d.name for d in declared if d.identify.get("email")]
        assert all(found[name].get("identify", {}).get("email") for name in roots), system


async def test_draft_of_awkward_schema(awkward_url):
    text = await draft(awkward_url, "club", categories=["account", "payments"])
    found = datasets(text, "club")

    # No telling column name: the sampled values made `contact` the e-mail identity.
    assert found["members"]["identify"] == {"email": "contact", "customer_id": "member_no"}
    assert "sampled values look like e-mail addresses" in text
    assert "looks like a phone number" in text  # mobile: pointed out, not matched on
    # A self-reference and a reference to another schema are named, not followed.
    assert "refers to this table itself" in text and "other.accounts, in another schema" in text
    # Composite primary key: the first column, and a note; the composite FK is not followed.
    assert found["orders"]["via"] == {"dataset": "members", "column": "member_no"}
    assert "composite primary key (shop, order_no)" in text
    assert "order_lines" not in found and "composite foreign key" not in text.split("- name: orders")[0]
    # The FK cycle ends: badges via members, teams via badges (through its captain), once each.
    assert found["badges"]["via"]["dataset"] == "members"
    assert found["teams"]["via"] == {"dataset": "badges", "column": "captain_badge"}
    # No identity, nothing pointing from a drafted table: listed for a person to decide.
    unreached = text.split("not reached from any identity")[1]
    assert "warehouse_stock" in unreached and "order_lines" in unreached
    assert "'CamelCustomers': not a plain lower-case name" in text
    # Categories outside the policy in force are flagged.
    assert "is not a category of the policy in force" in text
    assert SECRET_VALUE not in text and "+32" not in text


async def test_draft_of_another_schema_and_of_nothing(awkward_url):
    text = await draft(awkward_url, "other", schema="other")
    assert datasets(text, "other")["accounts"]["identify"] == {"email": "email"}
    assert "add 'other' to it" in text  # the connector finds tables on the search_path
    conn = await asyncpg.connect(awkward_url)
    await conn.execute("CREATE SCHEMA IF NOT EXISTS empty; CREATE TABLE IF NOT EXISTS empty.stock (sku text)")
    try:
        with pytest.raises(DraftError, match="no table of schema 'empty' holds"):
            await draft_system(conn, "x", schema="empty", database="x")
    finally:
        await conn.close()


def _settings(postgres) -> Settings:
    return Settings(DSRFLOW_DATABASE_URL=postgres.url("not_used"))


async def test_check_passes_on_the_demo_databases(postgres, template):
    checked, problems = await check_policy(policy_for(template), _settings(postgres))
    assert problems == [] and set(checked) == {"crm", "analytics", "billing"}


def _break(content: dict) -> None:
    crm = content["systems"]["crm"]["datasets"]
    crm[0]["fields"]["emial"] = {"category": "account"}
    crm[0]["restricted_column"] = "notes"  # text, not boolean
    crm[1]["table"] = "support_tickets"
    invoices = next(d for d in content["systems"]["billing"]["datasets"] if d["name"] == "invoices")
    invoices["fields"]["issued_on"] = {**invoices["fields"]["issued_on"], "erase": "hash"}  # a date hashed
    # Two analytics datasets that find each other only: no identity leads to them.
    content["systems"]["analytics"]["datasets"].append(
        {"name": "loop_a", "table": "users", "key": "user_id", "via": {"dataset": "loop_b", "column": "user_id"},
         "origin": "observed", "fields": {}})
    content["systems"]["analytics"]["datasets"].append(
        {"name": "loop_b", "table": "users", "key": "user_id", "via": {"dataset": "loop_a", "column": "user_id"},
         "origin": "observed", "fields": {}})


async def test_check_names_each_problem(postgres, template):
    _, problems = await check_policy(policy_for(template, _break), _settings(postgres))
    text = [str(p) for p in problems]
    assert "system 'crm', dataset 'contacts': column 'emial' does not exist in table 'contacts'" in text
    assert any("dataset 'contacts': column 'notes' is text, but restricted_column needs boolean" in t for t in text)
    assert "system 'crm', dataset 'support_requests': table 'support_tickets' does not exist" in text
    assert any(t.startswith("system 'billing'") and "erase: hash needs text" in t for t in text), text
    assert any(t.startswith("system 'analytics'") and "cycle" in t and "no subject identity leads" in t
               for t in text), text


async def test_check_names_an_unreachable_database(postgres, template):
    policy = policy_for({**template, "billing": "no_such_database"})
    _, problems = await check_policy(policy, _settings(postgres))
    assert [p.system for p in problems] == ["billing"] and "cannot connect" in problems[0].message


async def test_cli_draft_and_check(postgres, template, settings, tmp_path):
    env = {**os.environ, **settings_env(settings)}
    out = tmp_path / "crm.yaml"
    drafted = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "cli.main", "policy", "draft", "--database-url", postgres.url(template["crm"]),
        "--system", "crm", "-o", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert drafted.returncode == 0, drafted.stderr
    assert datasets(out.read_text(), "crm")["contacts"]["identify"] == {"email": "email"}

    # check: a policy pointing at the demo databases passes; one that names what is not there
    # fails, naming each problem.
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(dump_yaml(_policy_content(template)))
    good = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "cli.main", "policy", "check"],
                                   env={**env, "DSRFLOW_POLICY": str(policy_file),
                                        "DSRFLOW_DATABASE_URL": postgres.url("unused")},
                                   capture_output=True, text=True, timeout=120)
    assert good.returncode == 0 and good.stdout.startswith("ok: 3 sql system(s)"), good.stdout + good.stderr
    policy_file.write_text(dump_yaml(_policy_content(template, _break)))
    bad = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "cli.main", "policy", "check"],
                                  env={**env, "DSRFLOW_POLICY": str(policy_file),
                                       "DSRFLOW_DATABASE_URL": postgres.url("unused")},
                                  capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "column 'emial' does not exist in table 'contacts'" in bad.stdout
    assert "problem(s) in 3 sql system(s)" in bad.stderr


def _policy_content(names: dict[str, str], edit=None) -> dict:

    from policy.model import DEFAULT_POLICY

    content = read_yaml(DEFAULT_POLICY)
    for system, database in names.items():
        content["systems"][system]["config"] = {"database": database}
    for lang in ("nl", "fr", "de"):  # the translation files sit beside the shipped policy
        content["translations"][lang] = {"file": str(DEFAULT_POLICY.with_name(f"connexeon.{lang}.yaml"))}
    if edit:
        edit(content)
    return content
