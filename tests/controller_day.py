"""The controller's today for a test that counts days from it, as the API counts them when asked."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BRUSSELS = ZoneInfo("Europe/Brussels")  # the shipped policy's timezone


async def one_controller_day() -> date:
    """Today in the controller's timezone, the test then to run within it: a day that ends in the
    next two minutes is waited out. A date taken once per module (at collection) and a run across
    midnight in Brussels (23:00 UTC in winter) counted a day more than the seed."""
    now = datetime.now(BRUSSELS)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(), BRUSSELS)
    if midnight - now < timedelta(minutes=2):
        await asyncio.sleep((midnight - now).total_seconds() + 1)
    return datetime.now(BRUSSELS).date()
