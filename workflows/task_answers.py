"""Whether staff's retry or resolution may answer a system's task as it stands (the `retry_task` and
`resolve_task` updates' validators and handlers, workflows/staff_carry_on.py), and the words of a
refusal. Pure: no command of the workflow."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.staff_answers import STALE_ANSWER
    from schemas.workflow import TaskResult, waits_unreached


def require_answerable(result: TaskResult | None, system: str, attempt: int | None, action: str | None, *,
                       resolving: bool) -> None:
    """Refuse a retry or a resolution of a task that does not need attention, or sent for another
    task than the one standing (`attempt` and `action`, as the caller read them: a stale page, a
    double press, a colleague's retry meanwhile must not answer a failure nobody saw; nor a
    restriction's form its lift's task, whose attempts count from 1 again). A task waiting on its
    unreachable SaaS, or for its quota's renewal, may be resolved (`resolving`), not retried: it is
    being tried."""
    if result is None:
        raise ValueError(f"no task for system {system!r} in this request's plan")
    other_action = action is not None and action != result.action
    if other_action or (attempt is not None and attempt != result.attempt):
        sent, now = (_task_words(action, attempt, other_action), _task_words(result.action, result.attempt,
                                                                             other_action))
        raise ValueError(f"the {system} task's attempt this was sent for ({sent}) has been answered since, "
                         f"and its attempt now is another ({now}, {attempt_words(result)}): {STALE_ANSWER}")
    if waits_unreached(result):
        if resolving:
            return  # staff did by hand what the task waits to do
        raise ValueError(f"the {system} task is pending, tried again by itself while its system cannot be "
                         "reached or its quota is used up; it can be resolved (done by other means), not retried")
    if result.status != "needs_attention":
        raise ValueError(f"the {system} task is {result.status}; only a task needing attention can be retried or resolved")


def _task_words(action: str | None, attempt: int | None, with_action: bool) -> str:
    """An attempt as staff name it ("2"), with its task's action where that is what differs
    ("restrict, 1" against "lift restriction, 1")."""
    named = [action.replace("_", " ")] if with_action and action else []
    return ", ".join([*named, *([str(attempt)] if attempt is not None else [])])


def attempt_words(result: TaskResult) -> str:
    """Where a task's attempt stands, for staff whose answer was meant for an earlier one."""
    if result.status == "needs_attention":
        return f"which needs attention: {result.message}" if result.message else "which needs attention"
    if result.status == "pending":
        return "under way"
    said = result.status.replace("_", " ")
    return f"{said}: {result.message}" if result.message else said

