"""A task told that its request closed unanswered (workflows/system_task.py `request_closed`) polls
at once, while the request's workflow records the close in an activity of its own that runs beside
that poll. The poll could read the request still open: it then asked the processor how its job
stood (pending) and waited for its next poll, 5 minutes to 6 hours on, rather than calling the job
off (activities/connectors/opendsr_calloff.py) or telling the processor asked by e-mail that the
request is withdrawn; meanwhile the processor could act on what the subject had withdrawn (seen as
a flaky test: tests/test_attack_called_off_callbacks.py). A told poll (`TaskInput.told_closed`)
waits a few seconds for the close to be on record; past them (the database slow, the record
failing and retried) it goes on as before, and its next poll calls the job off."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity

from schemas.workflow import TaskInput

# The request's workflow records its close within a second or two; its activity's retries are not
# waited for.
WAIT_SECONDS = 10.0
_STEP_SECONDS = 0.2


async def once_closed(task: TaskInput, row: dict[str, Any],
                      read: Callable[[str], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """The request's row, read again until its close is on record when the task was told of it."""
    if not task.told_closed or row["closed_at"] is not None:
        return row
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while row["closed_at"] is None and loop.time() < deadline:
        await asyncio.sleep(_STEP_SECONDS)
        if activity.in_activity():
            activity.heartbeat()  # the poll's heartbeat timeout is 8 s
        row = await read(task.request_id)
    return row
