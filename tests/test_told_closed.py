"""A task told its request closed unanswered polls at once, beside the activity of the request's
workflow that records the close: its poll waits for the close to be on record
(activities/told_closed.py, patch told-poll-awaits-close). Before, it could read the request open,
ask the processor how its job stood and wait for its next poll (5 minutes to 6 hours), the job not
called off meanwhile: seen as tests/test_attack_called_off_callbacks.py failing one run in six."""

from __future__ import annotations

import asyncio
import time
import uuid

from activities.told_closed import once_closed
from dsrflow.stores.requests_store import get_request
from schemas.workflow import SystemTask, TaskInput
from tests.support import stored_request


async def _read(pool, rid: str) -> dict:
    row = await get_request(pool, rid)
    assert row is not None
    return row


async def test_a_told_poll_reads_the_close_recorded_beside_it_and_an_untold_one_does_not_wait(pool, settings):
    rid = await stored_request(pool, settings, "told-closed", type_="erasure")
    task = TaskInput(request_id=rid, policy_version="v", task=SystemTask(
        system="email_marketing", action="erase", connector="opendsr", label="E-mail marketing"))
    row = await _read(pool, rid)
    started = time.monotonic()
    assert await once_closed(task, row, lambda r: _read(pool, r)) is row  # not told: read once
    assert time.monotonic() - started < 0.1

    async def close_soon() -> None:  # the request's workflow's transition, recorded a moment later
        await asyncio.sleep(0.5)
        await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1",
                           uuid.UUID(rid))

    closing = asyncio.create_task(close_soon())
    told = await once_closed(task.model_copy(update={"told_closed": True}), row, lambda r: _read(pool, r))
    await closing
    assert told["closed_at"] is not None and told["status"] == "cancelled"
    assert time.monotonic() - started < 3
