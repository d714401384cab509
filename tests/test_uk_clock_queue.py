"""A UK GDPR request awaiting its subject's verification, as staff see it listed: its month has not
started (schemas/clock_start.py), so the queue (`GET /v1/requests` and the console's), its
overdue and due-before filters and the dashboard's due weeks count it neither due nor overdue,
whatever its date counted from receipt says. Before, one received 40 days earlier was "overdue by
9 days", in the overdue filter, in the dashboard's overdue bar, in the overdue gauge and in its evidence pack, though the law's clock had not
started. A UK complaint to us, a GDPR request and a verified UK request keep their receipt's count.

In-process, on a database of its own (the queue and the dashboard count every row)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from api.read_models.dashboard_queries import open_by_due_week
from dsrflow.infra.db import create_pool
from dsrflow.stores.requests_store import record_policy_version
from policy.model import load_policy
from tests.conftest import make_database
from tests.controller_day import one_controller_day
from tests.support import api_client, console_sign_in, staff_headers

OVERDUE_DAYS = 9


@pytest.fixture
async def listed(settings, postgres):
    """(API client signed in to the console as compliance, pool, {kind: request id}, today) on a
    database of its own holding four open requests, each past its date counted from receipt."""
    today = await one_controller_day()
    url = await make_database(postgres, "ukqueue")
    pool = await create_pool(url)
    loaded = load_policy(settings.policy_path)
    async with pool.acquire() as conn:  # the evidence pack reads the request's policy version
        await record_policy_version(conn, loaded)
    ids = {kind: await _seed(pool, loaded.version, regime, status, details, today - timedelta(days=OVERDUE_DAYS))
           for kind, regime, status, details in (
               ("waiting", "uk_gdpr", "awaiting_verification", {}),
               ("complaint", "uk_gdpr", "awaiting_verification", {"appeal_of": str(uuid.uuid4())}),
               ("gdpr", "gdpr", "awaiting_verification", {}),
               ("verified", "uk_gdpr", "in_progress", {}))}
    # Listing reads Postgres only: no Temporal client.
    async with api_client(settings.model_copy(update={"database_url": url}), None, "unused") as http:
        await console_sign_in(http, pool, "compliance")
        http.headers.update(await staff_headers(pool, "agent"))
        yield http, pool, ids, today
    await pool.close()


async def _seed(pool, version: str, regime: str, status: str, details: dict, past_due: date) -> str:
    request_id = str(uuid.uuid4())
    await pool.execute(
        """INSERT INTO dsr_requests (id, request_type, regime, country, channel, subject_email, received_at,
               status, policy_version, due_date, extended_due_date, current_due_date, details)
           VALUES ($1, 'erasure', $2, 'GB', 'api', $3, $4, $5, $8, $6::date, $6::date + 61, $6::date, $7::jsonb)""",
        request_id, regime, f"{request_id[:8]}@example.com", datetime.now(UTC) - timedelta(days=40), status,
        past_due, details, version)
    return request_id


async def _listed(http, query: str = "") -> dict[str, dict]:
    r = await http.get(f"/v1/requests?{query}")
    assert r.status_code == 200, r.text
    return {item["id"]: item for item in r.json()["items"]}


async def test_a_uk_request_awaiting_verification_is_neither_due_nor_overdue_in_the_queue_or_the_dashboard(listed):
    http, pool, ids, today = listed
    past_due = today - timedelta(days=OVERDUE_DAYS)
    waiting, counted = ids["waiting"], {ids[kind] for kind in ("complaint", "gdpr", "verified")}

    items = await _listed(http)
    assert {k: items[waiting][k] for k in ("overdue", "days_left", "due_dates_provisional", "current_due_date")} == {
        "overdue": False, "days_left": None, "due_dates_provisional": True, "current_due_date": past_due.isoformat()}
    for rid in counted:
        assert (items[rid]["overdue"], items[rid]["days_left"], items[rid]["due_dates_provisional"]) == (True, -OVERDUE_DAYS, False)
    assert set(await _listed(http, "overdue=true")) == counted
    assert set(await _listed(http, "overdue=false")) == {waiting}
    assert set(await _listed(http, f"due_before={today.isoformat()}")) == counted

    # The console's queue and its overdue filter say the same.
    rows = _rows((await http.get("/console/queue")).text)
    assert "provisional: due 1 month after verification" in rows[waiting] and "overdue" not in rows[waiting]
    assert all(f"overdue by {OVERDUE_DAYS} days" in rows[rid] for rid in counted)
    assert set(_rows((await http.get("/console/queue?overdue=true")).text)) == counted

    # The dashboard's due weeks: three overdue, the waiting one in no week.
    buckets = await open_by_due_week(pool, today=today)
    assert buckets[0].label == "overdue" and buckets[0].count == 3 and sum(b.count for b in buckets) == 3
    # And the metrics' gauge, behind the DsrRequestsOverdue alert, which fired for the waiting one.
    metrics = (await http.get("/metrics", headers=await staff_headers(pool, "admin"))).text
    assert re.search(r"^dsrflow_requests_overdue 3\.0$", metrics, re.M), metrics
    # And each request's evidence pack.
    compliance = await staff_headers(pool, "compliance")
    for rid in (waiting, *counted):
        pack = await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)
        assert pack.status_code == 200, pack.text
        assert pack.json()["deadlines"]["overdue"] is (rid != waiting), rid


def _rows(html: str) -> dict[str, str]:
    """The queue's rows by request id, each as its text."""
    return {rid: " ".join(re.sub(r"<[^>]+>", " ", row).split())
            for rid, row in re.findall(r'data-request-id="([0-9a-f-]{36})"(.*?)</tr>', html, re.S)}
