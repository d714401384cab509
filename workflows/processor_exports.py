"""Processors without an API in an access or portability request: before the package is built,
each is asked for its export (a `SystemTaskWorkflow` running the `access` action, which e-mails it
the upload link) and the request waits until every one has answered on that page, or staff resolved
or retried the task after it went unanswered. The package then takes their files
(activities/processor_exports.py) and names any processor whose data is missing.

Deterministic like the workflow that owns it. Requests started before this existed replay the old
way (`workflow.patched`): their package names these processors as missing instead.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.workflow import ASKED_BY_EMAIL, Plan
    from workflows.task_fanout import SystemTasks

PROCESSOR_EXPORTS = "processor-exports"


async def collect_exports(tasks: SystemTasks, plan: Plan, closed: Callable[[], bool],
                          days_left: Callable[[], int]) -> bool:
    """Ask and wait; False if the request was closed meanwhile."""
    by_email = [task for task in plan.tasks if task.connector == ASKED_BY_EMAIL]
    if not by_email or not workflow.patched(PROCESSOR_EXPORTS):
        return True
    await tasks.run_and_settle(plan.model_copy(update={"tasks": by_email}), closed, days_left)
    return not closed()
