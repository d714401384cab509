"""The compliance dashboard's figures, aggregated in Postgres from the request rows.

Months and weeks are the controller's (its timezone, weeks from Monday). Requests the controller
opened itself under a retention rule (origin `retention`) are left out: they are not requests from
data subjects and a sweep can open hundreds at once. "Answered" means completed or denied; a
request is answered on time when it closed on or before its current (possibly extended) due date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg
from dateutil.relativedelta import relativedelta

from schemas.clock_start import clock_waits_sql

ANSWERED = ("completed", "denied")
CLOSED = ("completed", "denied", "cancelled", "closed_unverified")
# A UK GDPR request whose month waits for its subject's verification (schemas/clock_start.py).
_CLOCK_WAITS = clock_waits_sql("r")


@dataclass(frozen=True)
class MonthClosed:
    month: date
    answered: int
    on_time: int
    median_days: float | None

    @property
    def on_time_share(self) -> float | None:
        return self.on_time / self.answered if self.answered else None


@dataclass(frozen=True)
class DueBucket:
    label: str  # "overdue", a week's Monday as ISO date, or "later"
    start: date | None
    count: int


def month_starts(today: date, months: int) -> list[date]:
    first = today.replace(day=1)
    return [first - relativedelta(months=n) for n in range(months - 1, -1, -1)]


async def requests_per_month(pool: asyncpg.Pool, *, today: date, timezone: str,
                             months: int = 12) -> dict[str, list[int]]:
    """Requests received per month, by type: {type: [count per month, oldest first]}."""
    starts = month_starts(today, months)
    rows = await pool.fetch(
        """SELECT date_trunc('month', received_at AT TIME ZONE $1)::date AS month,
                  request_type, count(*) AS n
             FROM dsr_requests
            WHERE origin <> 'retention' AND (received_at AT TIME ZONE $1)::date >= $2
              AND (received_at AT TIME ZONE $1)::date < $3
            GROUP BY 1, 2""",
        timezone, starts[0], starts[-1] + relativedelta(months=1),
    )
    index = {m: i for i, m in enumerate(starts)}
    counts: dict[str, list[int]] = {}
    for row in rows:
        counts.setdefault(row["request_type"], [0] * months)[index[row["month"]]] = row["n"]
    return dict(sorted(counts.items()))


async def closed_per_month(pool: asyncpg.Pool, *, today: date, timezone: str,
                           months: int = 12) -> list[MonthClosed]:
    """Per month of closing: requests answered, how many on time, median days from receipt."""
    starts = month_starts(today, months)
    rows = await pool.fetch(
        """SELECT date_trunc('month', closed_at AT TIME ZONE $1)::date AS month,
                  count(*) AS answered,
                  count(*) FILTER (WHERE (closed_at AT TIME ZONE $1)::date <= current_due_date) AS on_time,
                  percentile_cont(0.5) WITHIN GROUP (
                      ORDER BY extract(epoch FROM closed_at - received_at) / 86400) AS median_days
             FROM dsr_requests
            WHERE origin <> 'retention' AND status = ANY($4::text[]) AND closed_at IS NOT NULL
              AND (closed_at AT TIME ZONE $1)::date >= $2 AND (closed_at AT TIME ZONE $1)::date < $3
            GROUP BY 1""",
        timezone, starts[0], starts[-1] + relativedelta(months=1), list(ANSWERED),
    )
    found = {row["month"]: row for row in rows}
    return [
        MonthClosed(month, found[month]["answered"], found[month]["on_time"],
                    round(found[month]["median_days"], 1)) if month in found
        else MonthClosed(month, 0, 0, None)
        for month in starts
    ]


async def open_by_due_week(pool: asyncpg.Pool, *, today: date, weeks: int = 8) -> list[DueBucket]:
    """Open requests by the week their current due date falls in: those already overdue, this
    week and the next `weeks - 1`, and later. Requests still being registered have no due date
    yet and are not counted, nor is a UK GDPR request awaiting its subject's verification: its
    month has not started, and its date counted from receipt is not one it is due by (before, one
    received long ago counted as overdue)."""
    monday = today - timedelta(days=today.weekday())
    end = monday + timedelta(weeks=weeks)
    rows = await pool.fetch(
        f"""SELECT CASE WHEN current_due_date < $1 THEN 'overdue'
                       WHEN current_due_date >= $2 THEN 'later'
                       ELSE to_char(date_trunc('week', current_due_date), 'YYYY-MM-DD') END AS bucket,
                  count(*) AS n
             FROM dsr_requests r
            WHERE origin <> 'retention' AND NOT (status = ANY($3::text[]))
              AND current_due_date IS NOT NULL AND NOT {_CLOCK_WAITS}
            GROUP BY 1""",
        today, end, list(CLOSED),
    )
    found = {row["bucket"]: row["n"] for row in rows}
    buckets = [DueBucket("overdue", None, found.get("overdue", 0))]
    for n in range(weeks):
        start = monday + timedelta(weeks=n)
        buckets.append(DueBucket(start.isoformat(), start, found.get(start.isoformat(), 0)))
    buckets.append(DueBucket("later", end, found.get("later", 0)))
    return buckets
