"""The staff alerts of a fan-out's tasks that need attention (workflows/task_fanout.py): one per
task and attempt, sent as soon as the task needs staff; and, for a fan-out no deadline watch
follows (a restriction's lift, after the answer), a reminder each morning until staff retry or
resolve it.

Deterministic like the workflow that owns it: its letters, timers and patch markers are the
workflow's own commands, in the order the fan-out has always issued them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.workflow import TaskResult
    from workflows.dsr_steps import send_letter
    from workflows.step_trouble import alert_tried, remind_each_morning

# workflow.patched id: before this one, a task of a fan-out no deadline watch follows (a
# restriction's lift, after the answer) that needed staff was alerted once, never again (wait
# audit, RELIABILITY.md). Such a fan-out (`remind_daily`) reminds staff each morning until the
# task is retried or resolved.
TASK_REMINDERS = "task-reminders"


class TaskAlerts:
    def __init__(self, results: Mapping[str, TaskResult], key: str, remind_daily: bool) -> None:
        self._results = results  # the fan-out's, as they change: a reminder reads the task's now
        # Staff alerts are sent once per key: a second fan-out of the same request (a restriction's
        # lift) needs keys of its own.
        self._key = key
        self._remind_daily = remind_daily  # TASK_REMINDERS: no deadline watch's reminders follow it
        self._reminding: set[asyncio.Task[None]] = set()  # held: asyncio keeps only weak references
        self._alerted: set[tuple[str, int]] = set()  # (system, attempt) staff were told of

    def unalerted(self, stuck: list[TaskResult]) -> bool:
        """Some task of `stuck` needs attention at an attempt staff were not told of yet."""
        return bool({(r.system, r.attempt) for r in stuck} - self._alerted)

    async def alert(self, request_id: str, stuck: list[TaskResult], days_left: Callable[[], int | None]) -> None:
        """One staff alert per task and attempt that needs attention (and, for a fan-out that
        `remind_daily`, one each morning after it while it still does)."""
        for result in stuck:
            if (result.system, result.attempt) not in self._alerted:
                self._alerted.add((result.system, result.attempt))
                key = f"{self._key}:{result.system}:{result.attempt}"
                await send_letter(
                    request_id, "staff_alert", key=key, to_staff=True,
                    params={"kind": "needs_attention", "days_left": days_left(),
                            "facts": stuck_facts(result)},
                )
                if self._remind_daily and workflow.patched(TASK_REMINDERS):
                    reminding = asyncio.create_task(self._remind(request_id, key, result, days_left))
                    self._reminding.add(reminding)
                    reminding.add_done_callback(self._reminding.discard)

    async def _remind(self, request_id: str, key: str, stuck: TaskResult, days_left: Callable[[], int | None]) -> None:
        """Each morning while the task needs staff at this attempt (a retry or a resolution ends
        it); never raised, so a relay that refuses it opens no trouble beside the task's."""
        def over() -> bool:
            now = self._results[stuck.system]
            return now.attempt != stuck.attempt or now.status != "needs_attention"

        async def remind(waited: int) -> None:
            await alert_tried(request_id, f"{key}:day-{waited}", {
                "days_left": days_left(), "facts": {**stuck_facts(self._results[stuck.system]), "waited": waited}})

        await remind_each_morning(workflow.now(), over, remind)


def stuck_facts(result: TaskResult) -> dict[str, Any]:
    """A staff alert's facts for a system's task that needs staff: which system and action, and
    the error as it came (activities/staff_alert_words.py). It read "crm (erasure): <message>", no
    sentence, no way out, and in English whatever the staff's language."""
    return {"what": "task_stuck", "system": result.system, "action": result.action, "message": result.message}
