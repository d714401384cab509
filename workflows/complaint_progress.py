"""A UK complaint's progress letters (Data Protection Act 2018 s. 164A(5)(b): the controller informs
the complainant about the progress of the complaint). Its acknowledgement promises to keep the
complainant informed; a complaint then waits for compliance's approval, and before this nothing
told them anything until the outcome. Now, while it is undecided, a `complaint_progress` letter
goes the policy's `remedies.<regime>.appeal.progress_days` after its receipt and again every that
many days: where it stands, when we aim to answer (or that we are late, with the Commissioner's
remedy), each keyed by its number so that a step run again never sends it twice.

Run beside the deadline watch (workflows/deadline_watch.py), whose failed steps' troubles it shares
with staff. Deterministic: timers on the workflow's clock and one activity per letter. It stops at
the outcome (the response is on its way, or a denial), a withdrawal or any other close.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.workflow import Checkpoints, RequestFacts
    from workflows.dsr_steps import MAILING, RequestClosed, StepSupervisor, letter_job, run_step
    from workflows.step_trouble import REMIND_AT, at_intervals, controller_zone, day_began, later

# Patch id: complaints prepared before it carry no `progress_days`, and so have no progress letters:
# the facts decide, since the worker that prepares a request runs its workflow too. Deprecated
# (`workflow.deprecate_patch`), as step_trouble.LOCAL_HOUR is and for the same reason: asked in the
# activation that the preparing local activity's result straddled into from the first task, a
# `patched` call was answered False on replay and failed it (about 1 complaint in 40 on the
# time-skipping server with a query arriving during that task). Histories recorded with the
# undeprecated marker (tests/histories/complaint_progress*) still replay.
COMPLAINT_PROGRESS = "complaint-progress"
PURPOSE = "complaint_progress"


class Complaint(Protocol):
    """What the progress letters read of the complaint's workflow (workflows/dsr.py)."""

    request_id: str
    _answering: bool  # the response (the outcome) is on its way

    def _require_facts(self) -> RequestFacts: ...

    @property
    def closed(self) -> bool: ...

    @property
    def status(self) -> RequestStatus: ...

    def current_checkpoints(self) -> Checkpoints: ...


def stage(status: RequestStatus) -> str:
    """Where the complaint stands, as its letter says it."""
    if status == RequestStatus.awaiting_verification:
        return "verification"  # the complainant has not confirmed their identity yet
    return "compliance" if status == RequestStatus.awaiting_approval else "review"


async def keep_informed(complaint: Complaint, supervisor: StepSupervisor) -> None:
    """The n-th progress letter at 9:00 on the day `n * progress_days` after receipt (the hour
    staff's reminders go), until the complaint is decided or closed. After a worker away for
    longer than the interval, only the newest letter due goes."""
    facts = complaint._require_facts()
    assert facts.progress_days is not None
    every = timedelta(days=facts.progress_days)
    # 9:00 the controller's time on the day of receipt, as staff's reminders go (on its wall clock
    # where the checkpoints name its zone: step_trouble.LOCAL_HOUR).
    checkpoints = complaint.current_checkpoints()
    zone = controller_zone(checkpoints)
    start = later(day_began(facts.received_at, checkpoints, zone), REMIND_AT, zone)

    def decided() -> bool:
        return complaint.closed or complaint._answering

    async def send(number: int) -> None:
        await run_step("send_letter", letter_job(complaint.request_id, PURPOSE, key=str(number),
                                                 params=progress_params(complaint, number)),
                       timeouts=MAILING, supervisor=supervisor)

    with contextlib.suppress(RequestClosed):  # closed while a failed letter waited for staff
        await at_intervals(later(start, every, zone), every, decided, send, zone)


def progress_params(complaint: Complaint, number: int) -> dict[str, Any]:
    """The letter's facts: which one it is (its next is counted from it), the stage, and whether
    the date we aimed to answer by has passed."""
    late = workflow.now() >= complaint.current_checkpoints().overdue_at
    return {"number": number, "stage": stage(complaint.status), "late": late}
