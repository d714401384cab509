"""Finding a subject's requests by e-mail address or customer number (issue 19): exact and
case-insensitive through keyed hashes (no clear-text copy), paged by keyset like the rest of the
queue; the backfill that makes requests stored before the hashes searchable; and the attacks: a
caller who may not list requests learns nothing about an address, the value never reaches a log
line, and a malformed value is a 422 naming its parameter."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import date

import pytest
import structlog

from api.read_models.request_queries import RequestFilters, queue_query
from bench.queue_listing import seed_queue
from dsrflow.crypto.hashing import lookup_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.infra.db import create_pool
from dsrflow.infra.logging import configure_logging
from dsrflow.stores.request_lookup import backfill_lookup_keys
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.conftest import make_database
from tests.support import api_client, assert_problem, console_sign_in, settings_env, staff_headers

ADA = "Ada.Search@Example.com"


@pytest.fixture
async def search_url(postgres) -> str:
    return await make_database(postgres, "search")


@pytest.fixture
async def search_db(search_url):
    pool = await create_pool(search_url)
    yield pool
    await pool.close()


@pytest.fixture
def search_settings(settings, search_url):
    return settings.model_copy(update={"database_url": search_url})


@pytest.fixture
async def http(search_settings, search_db):
    # Listing reads Postgres only: no Temporal client.
    async with api_client(search_settings, None, "unused") as client:
        client.headers.update(await staff_headers(search_db, "agent"))
        yield client


async def intake(pool, settings, email: str, *, customer_id: str | None = None, type: str = "access") -> str:
    """A request stored by the real intake store (its workflow is not needed here)."""
    new = NewRequest(type=type, subject={"email": email, "customer_id": customer_id})
    row, _ = await create_request(pool, new, loaded_policy=load_policy(settings.policy_path),
                                  secret=load_secret_key(settings), actor="tests", idempotency_key=None)
    return str(row["id"])


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_search_by_email_is_exact_and_case_insensitive(http, search_db, search_settings):
    mine = {await intake(search_db, search_settings, ADA, type=t) for t in ("access", "erasure", "portability")}
    other = await intake(search_db, search_settings, "ada.search@example.org")
    await intake(search_db, search_settings, "x" + ADA)

    for asked in (ADA, ADA.lower(), ADA.upper(), f"  {ADA} "):
        assert set(ids(await http.get("/v1/requests", params={"subject_email": asked}))) == mine, asked
    assert ids(await http.get("/v1/requests", params={"subject_email": "ada.search@example.org"})) == [other]
    assert ids(await http.get("/v1/requests", params={"subject_email": "nobody@example.com"})) == []
    # It combines with the other filters.
    erasures = await http.get("/v1/requests", params={"subject_email": ADA, "type": "erasure"})
    assert len(ids(erasures)) == 1 and set(ids(erasures)) < mine


async def test_search_by_customer_number(http, search_db, search_settings):
    wanted = await intake(search_db, search_settings, "cust.one@example.com", customer_id="C-1042")
    await intake(search_db, search_settings, "cust.two@example.com", customer_id="C-10420")
    await intake(search_db, search_settings, "cust.three@example.com")
    for asked in ("C-1042", "c-1042", " C-1042 "):
        assert ids(await http.get("/v1/requests", params={"customer_id": asked})) == [wanted]


async def test_no_clear_text_copy_is_made(search_db, search_settings):
    rid = await intake(search_db, search_settings, "copy.check@example.com", customer_id="K-77")
    row = await search_db.fetchrow("SELECT subject_email_key, customer_id_key FROM dsr_requests WHERE id = $1",
                                   uuid.UUID(rid))
    secret = load_secret_key(search_settings)
    assert row["subject_email_key"] == lookup_hash(secret, "email", "copy.check@example.com")
    assert row["customer_id_key"] == lookup_hash(secret, "customer_id", "K-77")
    assert "copy.check" not in json.dumps(dict(row))


async def test_search_results_page_by_keyset(http, search_db, search_settings):
    many = {await intake(search_db, search_settings, "paged@example.com") for _ in range(7)}
    await intake(search_db, search_settings, "not.paged@example.com")
    seen, cursor = [], None
    while True:
        r = await http.get("/v1/requests", params={"subject_email": "PAGED@example.com", "limit": 3,
                                                   **({"cursor": cursor} if cursor else {})})
        seen += ids(r)
        if not (cursor := r.json()["next_cursor"]):
            break
    assert len(seen) == 7 and set(seen) == many


@pytest.mark.parametrize(("params", "field"), [
    pytest.param({"subject_email": "ada@"}, "subject_email", id="email-incomplete"),
    pytest.param({"subject_email": "not an address"}, "subject_email", id="email-words"),
    pytest.param({"subject_email": "a" * 400 + "@example.com"}, "subject_email", id="email-long"),
    pytest.param({"customer_id": "C-1\u0000"}, "customer_id", id="customer-control"),
    pytest.param({"customer_id": "C" * 101}, "customer_id", id="customer-long"),
])
async def test_a_malformed_value_is_422_naming_the_parameter(http, params, field):
    problem = assert_problem(await http.get("/v1/requests", params=params), 422)
    assert [e["field"].split(".")[0] for e in problem["errors"]] == [field], problem


async def test_a_caller_who_may_not_list_learns_nothing_about_an_address(http, search_db, search_settings):
    await intake(search_db, search_settings, "exists@example.com")
    revoked = await staff_headers(search_db, "agent")
    await search_db.execute("UPDATE staff_tokens SET revoked_at = now() WHERE revoked_at IS NULL "
                            "AND id = (SELECT id FROM staff_tokens ORDER BY created_at DESC LIMIT 1)")
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer not-a-token"}, revoked):
        answers = [await http.get("/v1/requests", params={"subject_email": value}, headers=headers)
                   for value in ("exists@example.com", "absent@example.com", "malformed@")]
        assert {(a.status_code, a.text) for a in answers} == {(answers[0].status_code, answers[0].text)}
        assert answers[0].status_code == 401
    # The console: every visitor without a session is sent to sign in, whatever the address.
    http.headers.pop("Authorization")
    pages = [await http.get("/console/", params={"subject": value})
             for value in ("exists@example.com", "absent@example.com")]
    assert [p.status_code for p in pages] == [303, 303]
    assert all(p.headers["location"].startswith("/console/sign-in?next=") for p in pages)


async def test_the_search_value_never_reaches_a_log_line(http, search_db, search_settings, capsys):
    await intake(search_db, search_settings, "logged.never@example.com", customer_id="LOG-5150")
    configure_logging(environment="production", level="debug")
    try:
        capsys.readouterr()
        await http.get("/v1/requests", params={"subject_email": "logged.never@example.com"})
        await http.get("/v1/requests", params={"customer_id": "LOG-5150"})
        await http.get("/v1/requests", params={"subject_email": "logged.never@"})
        await http.get("/v1/requests", params={"customer_id": "LOG-5150"}, headers={"Authorization": ""})
        await console_sign_in(http, search_db, "agent")
        await http.get("/console/", params={"subject": "logged.never@example.com"})
        await http.get("/console/", params={"subject": "LOG-5150"})
        out = capsys.readouterr()
    finally:
        structlog.contextvars.clear_contextvars()
        configure_logging(environment="development", level="info")
    logged = out.err + out.out
    for secret_value in ("logged.never", "logged%2Enever", "logged.never%40", "LOG-5150", "log-5150"):
        assert secret_value not in logged, secret_value


async def test_console_subject_box(http, search_db, search_settings):
    ada = {await intake(search_db, search_settings, "console.box@example.com") for _ in range(2)}
    customer = await intake(search_db, search_settings, "console.cust@example.com", customer_id="Z-9")
    http.headers.pop("Authorization")
    await console_sign_in(http, search_db, "agent")

    page = await http.get("/console/", params={"subject": "Console.Box@example.com"})
    assert page.status_code == 200
    assert {rid for rid in ada if f'data-request-id="{rid}"' in page.text} == ada
    assert customer not in page.text
    by_number = await http.get("/console/", params={"subject": "z-9"})
    assert f'data-request-id="{customer}"' in by_number.text and not any(r in by_number.text for r in ada)
    bad = await http.get("/console/", params={"subject": "console.box@"})
    assert bad.status_code == 422 and 'id="subject-error"' in bad.text and "Enter a whole e-mail address" in bad.text


async def test_backfill_hashes_requests_stored_before_the_search(http, search_db, search_settings):
    secret = load_secret_key(search_settings)
    old = str(uuid.uuid4())
    await search_db.execute(
        """INSERT INTO dsr_requests (id, request_type, regime, country, channel, subject_email, customer_id,
               received_at, status, policy_version)
           VALUES ($1, 'access', 'gdpr', 'BE', 'api', 'Before.Search@example.com', 'OLD-1', now(), 'completed', 'v1')""",
        uuid.UUID(old))
    assert ids(await http.get("/v1/requests", params={"subject_email": "before.search@example.com"})) == []

    assert await backfill_lookup_keys(search_db, secret, batch=2) >= 1
    assert ids(await http.get("/v1/requests", params={"subject_email": "before.search@example.com"})) == [old]
    assert ids(await http.get("/v1/requests", params={"customer_id": "old-1"})) == [old]
    assert await backfill_lookup_keys(search_db, secret) == 0  # idempotent: nothing left to do

    # Under another secret every row is hashed again, and searches keyed with it find them.
    total = await search_db.fetchval("SELECT count(*) FROM dsr_requests")
    assert await backfill_lookup_keys(search_db, b"another secret of 32 bytes......") == total
    key = await search_db.fetchval("SELECT subject_email_key FROM dsr_requests WHERE id = $1", uuid.UUID(old))
    assert key == lookup_hash(b"another secret of 32 bytes......", "email", "before.search@example.com")
    assert await backfill_lookup_keys(search_db, secret) == total  # and back


async def test_dsrflow_migrate_makes_old_requests_searchable(http, search_db, search_settings):
    old = str(uuid.uuid4())
    await search_db.execute(
        """INSERT INTO dsr_requests (id, request_type, regime, country, channel, subject_email,
               received_at, status, policy_version)
           VALUES ($1, 'access', 'gdpr', 'BE', 'api', 'cli.backfill@example.com', now(), 'completed', 'v1')""",
        uuid.UUID(old))
    env = {**os.environ, **settings_env(search_settings)}
    runs = [await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "cli.main", "migrate"], env=env,
                                    capture_output=True, text=True, timeout=120) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs
    assert "hashed the identities of" in runs[0].stdout and "hashed" not in runs[1].stdout
    assert ids(await http.get("/v1/requests", params={"subject_email": "CLI.backfill@example.com"})) == [old]


async def test_search_reads_the_hash_index_on_a_large_queue(search_db, search_settings):
    secret = load_secret_key(search_settings)
    await seed_queue(search_db, 20_000, date.today())
    await backfill_lookup_keys(search_db, secret)
    await search_db.execute("ANALYZE dsr_requests")
    for filters in (RequestFilters(subject_email="subject77@example.com"), RequestFilters(customer_id="C-1")):
        sql, args = queue_query(filters, limit=50, cursor=None, today=date.today(),
                                secret=secret)
        plan = (await search_db.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))[0]["Plan"]
        scans = [n for n in _nodes(plan) if n.get("Relation Name") == "dsr_requests"]
        assert [n.get("Index Name") for n in scans] in (
            ["dsr_requests_email_key_queue"], ["dsr_requests_customer_key_queue"]), json.dumps(plan, indent=1)


async def test_request_page_lists_the_subjects_other_requests(search_settings, search_db, dev_server):
    first = await intake(search_db, search_settings, "page.subject@example.com", type="access")
    second = await intake(search_db, search_settings, "PAGE.subject@example.com", customer_id="P-1", type="erasure")
    by_number = await intake(search_db, search_settings, "page.other@example.com", customer_id="p-1")
    stranger = await intake(search_db, search_settings, "page.stranger@example.com")
    await search_db.execute("UPDATE dsr_requests SET status = 'completed', closed_at = now() WHERE id = $1",
                            uuid.UUID(first))
    # A request's workflow is not needed to show its page: the query fails and the stored row answers.
    async with api_client(search_settings, dev_server.client, "unused") as http:
        await console_sign_in(http, search_db, "agent")
        page = await http.get(f"/console/requests/{second}")
        assert page.status_code == 200, page.text
        section = page.text.split('id="other-requests"')[1].split("</section>")[0]
        rows = dict(re.findall(r'<tr data-request-id="([0-9a-f-]{36})">(.*?)</tr>', section, re.S))
        assert set(rows) == {first, by_number}
        assert f'href="/console/requests/{first}"' in rows[first]
        assert "access" in rows[first] and "completed" in rows[first] and "e-mail" in rows[first]
        assert "customer number" in rows[by_number] and "e-mail" not in rows[by_number]
        assert stranger not in section

        alone = await http.get(f"/console/requests/{stranger}")
        assert "None: this is the only request with this e-mail address" in alone.text


async def test_the_request_pages_list_leads_to_the_queue_by_each_identity(search_settings, search_db, dev_server,
                                                                        monkeypatch):
    """Past the list's limit, the page leads to the queue's search: one link per identity the list
    matched on, since the queue searches by one at a time. Before, the one link searched by
    e-mail address only, and the requests matched by customer number dropped out."""
    import api.console.request_page as request_page

    monkeypatch.setattr(request_page, "OTHER_REQUESTS_LIMIT", 1)
    mine = await intake(search_db, search_settings, "limit.subject@example.com", customer_id="L-7", type="erasure")
    await intake(search_db, search_settings, "limit.other@example.com", customer_id="l-7")
    async with api_client(search_settings, dev_server.client, "unused") as http:
        await console_sign_in(http, search_db, "agent")
        section = (await http.get(f"/console/requests/{mine}")).text.split('id="other-requests"')[1]
        assert 'href="/console/?subject=limit.subject%40example.com">all with this e-mail address' in section
        assert 'href="/console/?subject=L-7">all with this customer number' in section
        found = await http.get("/console/?subject=L-7")
        assert found.status_code == 200 and found.text.count("data-request-id=") == 2
