"""A task told that its request closed unanswered (workflows/system_task.py `request_closed`) polls
at once, while the request's workflow records the close in an activity of its own that runs beside
that poll. The poll could read the request still open: it then asked the processor how its job
stood (pending) and waited for its next poll, 5 minutes to 6 hours on, rather than calling the job
off (activities/connectors/opendsr_calloff.py) or telling the processor asked by e-mail that the
request is withdrawn; meanwhile the processor could act on what the subject had withdrawn (seen as
a flaky test: tests/test_attack_called_off_callbacks.py). A told poll (`TaskInput.told_closed`)
waits a few seconds for the close to be on record; past them (the database slow, the record
failing and retried) it goes on as before, and its next poll calls the job off.

What a try does once its request closed is here too (`closed_unanswered`, `not_tried_after_close`:
activities/fanout.py runs and polls a system's task with them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity

from schemas.workflow import RUNS_AFTER_CLOSE, TaskInput, TaskResult

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


def closed_unanswered(task: TaskInput, row: dict[str, Any]) -> bool:
    """Whether the task's request was closed unanswered (withdrawn, cancelled, refused, closed
    unverified), so that nothing more may reach its system; never said of a restriction's lift,
    which runs once its request ended (completed, or closed part-way with the restriction in force)."""
    return row["closed_at"] is not None and row["status"] != "completed" and task.task.action != RUNS_AFTER_CLOSE


def not_tried_after_close(task: TaskInput, row: dict[str, Any], tried: bool) -> TaskResult | None:
    """The answer of a try that begins once its request was closed and sends its system nothing:
    needing attention, what the task's runs did before standing. None for a try that goes on.
    Every kind alike: before, only an http run stopped (its journal's `stops_on_close`), and a try
    scheduled before the workflow heard of a withdrawal, a retry after a worker died, or a local
    activity run again after its workflow task timed out erased in a `sql` system, e-mailed a
    processor (with a link the close had expired) or submitted an OpenDSR job. `tried`: an earlier
    try of this attempt was cut off before its answer, and may have acted."""
    if task.after_outage and row["closed_at"] is not None and task.task.action != RUNS_AFTER_CLOSE:
        # A task waiting on its SaaS (unreachable, or its quota used up): whatever the close.
        message = "not tried again: the request was closed while the task waited for its system"
    elif closed_unanswered(task, row):
        message = ("not run: the request was closed before this try began, so it sent the system nothing"
                   + ("; an earlier try, cut off before it answered, may have reached it" if tried else ""))
    else:
        return None
    return TaskResult(system=task.task.system, action=task.task.action, status="needs_attention",
                      attempt=task.attempt, recipient=task.task.recipient,
                      message=f"{message}; what the task had done before stands")
