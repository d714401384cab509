"""The dashboard's aggregations on real Postgres rows, and the SVG charts drawn from them."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import date, datetime

import pytest

from api.read_models.dashboard_queries import (
    closed_per_month,
    month_starts,
    open_by_due_week,
    requests_per_month,
)
from api.read_models.svg import bar_chart, line_chart, nice_ticks
from tests.conftest import database_pool

TODAY = date(2026, 6, 17)  # a Wednesday
TZ = "Europe/Brussels"
SVG = "{http://www.w3.org/2000/svg}"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# received (UTC), type, status, closed (UTC), current due date, origin
ROWS = [
    ("2026-06-01T10:00Z", "access", "in_progress", None, "2026-07-01", "subject"),
    ("2026-06-02T10:00Z", "access", "awaiting_verification", None, "2026-07-02", "subject"),
    ("2026-06-03T10:00Z", "erasure", "in_progress", None, "2026-06-16", "staff"),            # overdue
    ("2026-05-31T22:30Z", "erasure", "in_progress", None, "2026-07-01", "subject"),          # 1 June in Brussels
    ("2026-05-10T10:00Z", "access", "in_progress", None, "2026-06-19", "staff"),
    ("2025-06-30T10:00Z", "access", "completed", "2025-07-20T10:00Z", "2025-07-30", "staff"),  # received before the window
    ("2026-06-05T10:00Z", "erasure", "in_progress", None, "2026-07-06", "retention"),       # never counted
    ("2026-05-01T10:00Z", "rectification", "completed", "2026-05-11T10:00Z", "2026-06-01", "staff"),
    ("2026-05-02T10:00Z", "objection", "denied", "2026-05-06T10:00Z", "2026-06-02", "staff"),
    ("2026-04-01T10:00Z", "access", "completed", "2026-06-03T10:00Z", "2026-05-04", "staff"),   # late, 63 days
    ("2026-06-04T10:00Z", "access", "cancelled", "2026-06-05T10:00Z", "2026-07-06", "staff"),   # not answered
    ("2026-03-02T10:00Z", "access", "completed", "2026-06-02T22:30Z", "2026-06-02", "staff"),   # 3 June in Brussels: late
    ("2026-06-16T10:00Z", "access", "awaiting_verification", None, None, "subject"),            # no due date yet
    ("2026-06-10T10:00Z", "portability", "in_progress", None, "2026-09-30", "subject"),
]


@pytest.fixture(scope="module")
async def dashboard_pool(postgres):
    async with database_pool(postgres, "dashboard", max_size=3) as (_, pool):
        for received, kind, status, closed, due, origin in ROWS:
            await pool.execute(
                """INSERT INTO dsr_requests (id, request_type, regime, country, channel, origin, subject_email,
                                             received_at, status, policy_version, current_due_date, closed_at)
                   VALUES ($1, $2, 'gdpr', 'BE', 'api', $3, 'someone@example.com', $4, $5, 'v1', $6, $7)""",
                uuid.uuid4(), kind, origin, utc(received), status,
                date.fromisoformat(due) if due else None, utc(closed) if closed else None)
        yield pool


def test_month_starts_cover_twelve_months_to_this_one():
    starts = month_starts(TODAY, 12)
    assert starts[0] == date(2025, 7, 1) and starts[-1] == date(2026, 6, 1) and len(starts) == 12


async def test_requests_per_month_by_type(dashboard_pool):
    counts = await requests_per_month(dashboard_pool, today=TODAY, timezone=TZ)
    zeros = [0] * 8
    assert counts == {
        "access": zeros + [1, 1, 1, 4],
        "erasure": zeros + [0, 0, 0, 2],
        "objection": zeros + [0, 0, 1, 0],
        "portability": zeros + [0, 0, 0, 1],
        "rectification": zeros + [0, 0, 1, 0],
    }


async def test_closed_per_month_median_and_on_time(dashboard_pool):
    months = {m.month: m for m in await closed_per_month(dashboard_pool, today=TODAY, timezone=TZ)}
    assert len(months) == 12
    july, may, june = months[date(2025, 7, 1)], months[date(2026, 5, 1)], months[date(2026, 6, 1)]
    assert (july.answered, july.on_time, july.median_days) == (1, 1, 20.0)
    assert (may.answered, may.on_time, may.median_days, may.on_time_share) == (2, 2, 7.0, 1.0)
    # 63 days and 92.52 days; the second closed on 3 June in Brussels, a day after its due date.
    assert (june.answered, june.on_time, june.median_days, june.on_time_share) == (2, 0, 77.8, 0.0)
    assert months[date(2026, 1, 1)].median_days is None and months[date(2026, 1, 1)].on_time_share is None


async def test_open_by_due_week(dashboard_pool):
    buckets = await open_by_due_week(dashboard_pool, today=TODAY)
    counts = {b.label: b.count for b in buckets}
    assert [b.label for b in buckets][:3] == ["overdue", "2026-06-15", "2026-06-22"]
    assert len(buckets) == 10
    assert counts == {"overdue": 1, "2026-06-15": 1, "2026-06-22": 0, "2026-06-29": 3, "2026-07-06": 0,
                      "2026-07-13": 0, "2026-07-20": 0, "2026-07-27": 0, "2026-08-03": 0, "later": 1}


def test_nice_ticks():
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(100) == [0, 50, 100]
    assert nice_ticks(1.0) == [0, 0.5, 1.0]
    assert nice_ticks(93) == [0, 50, 100]
    assert nice_ticks(1, whole=True) == [0, 1] and nice_ticks(3, whole=True) == [0, 1, 2, 3]


def test_bar_chart_stacks_series_and_escapes_text():
    svg = bar_chart("c1", ["Jan", "Feb", "Mar"], {"access": [1, 0, 2], "<erasure>": [3, 0, 0]},
                    title="Requests & more", description="per month")
    root = ET.fromstring(svg)  # well-formed
    assert root.find(f"{SVG}title").text == "Requests & more"
    assert root.get("role") == "img" and root.get("aria-labelledby") == "c1-title c1-desc"
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert sorted(r.find(f"{SVG}title").text for r in bars) == [
        "Jan: <erasure> 3", "Jan: access 1", "Mar: access 2"]
    # Stacked: January's bars touch, erasure on top of access.
    jan_access = next(r for r in bars if r.find(f"{SVG}title").text == "Jan: access 1")
    jan_erasure = next(r for r in bars if r.find(f"{SVG}title").text == "Jan: <erasure> 3")
    assert float(jan_erasure.get("y")) + float(jan_erasure.get("height")) == pytest.approx(float(jan_access.get("y")), abs=0.11)
    assert "&lt;erasure&gt;" in svg  # legend text escaped


def test_line_chart_leaves_gaps_for_missing_months():
    svg = line_chart("c2", ["a", "b", "c", "d", "e"], [2, 3, None, 4, 5], title="t", description="d")
    root = ET.fromstring(svg)
    assert len(list(root.iter(f"{SVG}polyline"))) == 2
    assert len(list(root.iter(f"{SVG}circle"))) == 4
