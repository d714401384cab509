"""When each scheduled sweep last succeeded (migration 0035): written by the sweep's activity as
its last step, read by the gauges of dsrflow/infra/metrics.py."""

from __future__ import annotations

from typing import Any

import asyncpg
from pydantic import BaseModel

from dsrflow.infra.failpoints import failpoint
from schemas.sweeps import SWEEP_EVERY


async def record_sweep_success(pool: asyncpg.Pool, sweep: str, report: BaseModel, problems: int = 0) -> None:
    """`sweep` (a name of schemas/sweeps.py) succeeded now, leaving `problems` things undone for a
    person (the run went on past them); its report's counts are kept beside."""
    if sweep not in SWEEP_EVERY:
        raise ValueError(f"unknown sweep {sweep!r}")
    failpoint("sweep-succeeded", sweep)  # its work done, not yet recorded (tests/test_crash_windows_later.py)
    summary: dict[str, Any] = report.model_dump(mode="json")
    await pool.execute(
        """INSERT INTO sweep_runs (sweep, last_success_at, problems, summary) VALUES ($1, now(), $2, $3)
           ON CONFLICT (sweep) DO UPDATE
           SET last_success_at = now(), problems = EXCLUDED.problems, summary = EXCLUDED.summary""",
        sweep, problems, summary)
