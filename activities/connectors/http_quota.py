"""Rate limits and daily quotas of an http system, kept in Postgres so every worker, and every
later activity attempt, sees the same count (migrations/0008_http_quota.sql).

Per second: each request reserves the next free slot of its bucket in one statement and waits
for it, so N workers together stay under the rate. Per day: a request takes one unit of the
day's quota first; when none is left it raises QuotaExhausted with the time the next quota day
begins, and the caller lets the workflow wait (a timer), never a sleeping activity.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from activities.errors import TRANSIENT_DB_ERRORS
from dsrflow.i18n import SOURCE_LANGUAGE, long_datetime
from policy.http_model import Limits


def renewal_words(moment: datetime) -> str:
    """When a quota renews, in a task's note: written for a person, in UTC with the zone named
    ("7 December 2026, 08:00 UTC"), not ISO (QuotaExhausted says why)."""
    return long_datetime(moment, SOURCE_LANGUAGE, "UTC")


class QuotaExhausted(Exception):
    """The message becomes the task's note on the request page (the activity's failure), stored
    once in English for every reader, as a system's errors are: the moment the quota renews is
    written for a person, in UTC with the zone named ("7 December 2026, 08:00 UTC"), not ISO. UTC,
    not the controller's timezone: a connector knows its service's quota day, not the request's
    policy version, and a moment named with its zone reads right anywhere."""

    def __init__(self, bucket: str, limit: int, resumes_at: datetime) -> None:
        quota = f"daily quota of {limit} requests" if limit else "daily quota"
        super().__init__(f"{quota} used up; it renews at {renewal_words(resumes_at)}")
        self.limit = limit
        self.resumes_at = resumes_at


class ServiceClock:
    """Now, as the workflow sees it: inside an activity, the time the server scheduled this
    attempt (virtual under the time-skipping test server) plus the time spent since; outside
    one, the wall clock."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._base: datetime | None
        try:
            self._base = activity.info().current_attempt_scheduled_time
        except RuntimeError:
            self._base = None

    def now(self) -> datetime:
        if self._base is None:
            return datetime.now(UTC)
        return self._base.astimezone(UTC) + timedelta(seconds=time.monotonic() - self._start)


class QuotaLedger:
    def __init__(self, pool: asyncpg.Pool | None, bucket: str, limits: Limits, clock: ServiceClock) -> None:
        self.pool = pool
        self.bucket = bucket
        self.limits = limits
        self.clock = clock
        self.zone = ZoneInfo(limits.timezone)

    async def acquire(self) -> date | None:
        """Take one request's share of the daily quota, then wait for this bucket's next slot.
        Returns the quota day the share was taken from (None: no daily quota), for `give_back`;
        stopped while it waits for the slot, it gives the share back itself."""
        day = await self._take_daily_unit() if self.limits.per_day is not None else None
        if self.limits.per_second is not None:
            try:
                await self._wait_for_slot(1.0 / self.limits.per_second)
            except BaseException:
                await self.give_back(day)
                raise
        return day

    async def give_back(self, day: date | None) -> None:
        """Return a share of `day`'s quota taken for a request that never went (stopped before it,
        or its connection never made): the service counted nothing, and a network outage's tries
        must not use up the day's quota, leaving erasures waiting a day for nothing. A database
        unreachable meanwhile keeps the share used: counting one too many only errs on the side
        of the service's limit."""
        if day is None or self.pool is None:
            return
        with contextlib.suppress(*TRANSIENT_DB_ERRORS):
            await self.pool.execute(
                "UPDATE http_quota_days SET used = used - 1 WHERE bucket = $1 AND day = $2 AND used > 0",
                self.bucket, day)

    def _quota_day(self) -> tuple[datetime, datetime]:
        local = self.clock.now().astimezone(self.zone)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        following = (start + timedelta(days=1, hours=3)).replace(hour=0)  # DST-proof
        return start, following

    def next_day(self) -> datetime:
        """When the service's next quota day begins (UTC)."""
        return self._quota_day()[1].astimezone(UTC)

    async def _take_daily_unit(self) -> date:
        if self.pool is None:
            raise RuntimeError("a daily quota needs the app database")
        day, following = self._quota_day()
        used = await self.pool.fetchval(
            """INSERT INTO http_quota_days (bucket, day, used) VALUES ($1, $2, 1)
               ON CONFLICT (bucket, day) DO UPDATE SET used = http_quota_days.used + 1
               WHERE http_quota_days.used < $3
               RETURNING used""",
            self.bucket, day.date(), self.limits.per_day)
        if used is None:
            raise QuotaExhausted(self.bucket, self.limits.per_day or 0, following.astimezone(UTC))
        return day.date()

    async def _wait_for_slot(self, interval: float) -> None:
        if self.pool is None:
            raise RuntimeError("a rate limit needs the app database")
        step = timedelta(seconds=interval)
        wait = await self.pool.fetchval(
            """INSERT INTO http_rate_slots AS s (bucket, next_at) VALUES ($1, clock_timestamp() + $2)
               ON CONFLICT (bucket) DO UPDATE SET next_at = greatest(s.next_at, clock_timestamp()) + $2
               RETURNING extract(epoch FROM (s.next_at - $2 - clock_timestamp()))::float8""",
            self.bucket, step)
        if wait and wait > 0:
            await asyncio.sleep(wait)

    async def used_today(self) -> int:
        if self.pool is None:
            raise RuntimeError("a daily quota needs the app database")
        day, _ = self._quota_day()
        used: int = await self.pool.fetchval(
            "SELECT coalesce(max(used), 0) FROM http_quota_days WHERE bucket = $1 AND day = $2",
            self.bucket, day.date())
        return used
