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

Staff may also tell the complainant of progress by hand, when there is some (`ProgressByHand`, an
update: a letter quoting their note); the automatic letters then count from that one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from dsrflow.domain.deadlines import takes_complaints
    from schemas.progress_note import TellProgressInput
    from schemas.requests import RequestStatus
    from schemas.workflow import ApproveInput, Checkpoints, RequestFacts, RequestState
    from workflows.dsr_steps import MAILING, RequestClosed, StepSupervisor, event_record, letter_job, run_step
    from workflows.owed_steps import OwedSteps, letter, record
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
# Patch id: a progress letter staff sent by hand moves the automatic letters' cadence (its timer is
# cancelled and the next counted from that letter). Asked only in the update that sends one, which
# no history recorded before it holds: those replay as they ran.
PROGRESS_BY_HAND = "complaint-progress-by-hand"
TOLD_BY_HAND = "complaint.progress_told"  # the audit event: who told the complainant, and the note


class ToldByHand:
    """The progress letters staff sent by hand on one complaint."""

    def __init__(self) -> None:
        self.count = 0
        self.since: datetime | None = None  # the newest one's moment: the automatic letters count from it
        self.marks: dict[str, tuple[int, str]] = {}  # once-key -> (its owed steps' mark, its note)


class Complaint(Protocol):
    """What the progress letters read of the complaint's workflow (workflows/dsr.py)."""

    request_id: str
    _answering: bool  # the response (the outcome) is on its way
    _told: ToldByHand

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
    staff's reminders go), until the complaint is decided or closed; after a letter staff sent by
    hand, counted from that letter's day instead. After a worker away for longer than the
    interval, only the newest letter due goes."""
    facts = complaint._require_facts()
    assert facts.progress_days is not None
    every = timedelta(days=facts.progress_days)
    # 9:00 the controller's time on the day of receipt, as staff's reminders go (on its wall clock
    # where the checkpoints name its zone: step_trouble.LOCAL_HOUR).
    checkpoints = complaint.current_checkpoints()
    zone = controller_zone(checkpoints)
    start = later(day_began(facts.received_at, checkpoints, zone), REMIND_AT, zone)
    told = complaint._told
    # The numbers (letter keys) before the cadence last moved, the newest sent, and since when.
    offset = last = 0
    since: datetime | None = None
    first = later(start, every, zone)

    def decided() -> bool:
        return complaint.closed or complaint._answering

    async def send(n: int) -> None:
        nonlocal last
        number = last = offset + n
        params = progress_params(complaint, number)
        if since is not None:  # its next is counted from the letter sent by hand, not from receipt
            params["next_date"] = controller_day(later(first, every * n, zone), zone).isoformat()
        await run_step("send_letter", letter_job(complaint.request_id, PURPOSE, key=str(number), params=params),
                       timeouts=MAILING, supervisor=supervisor)

    with contextlib.suppress(RequestClosed):  # closed while a failed letter waited for staff
        while True:
            # With no letter by hand, the same timers as before it existed: recorded runs replay.
            await at_intervals(first, every, _ended_or_moved(decided, told, since), send, zone)
            if decided() or told.since == since:
                return
            since = told.since
            assert since is not None
            offset = last
            first = next_letter_after(since, checkpoints, zone, every)


def _ended_or_moved(decided: Callable[[], bool], told: ToldByHand, since: datetime | None) -> Callable[[], bool]:
    return lambda: decided() or told.since != since


def next_letter_after(moment: datetime, checkpoints: Checkpoints, zone: tzinfo | None, every: timedelta) -> datetime:
    """9:00 the controller's time on the day `every` after `moment`'s."""
    return later(later(day_began(moment, checkpoints, zone), REMIND_AT, zone), every, zone)


def controller_day(moment: datetime, zone: tzinfo | None) -> date:
    return moment.astimezone(zone or UTC).date()


def progress_params(complaint: Complaint, number: int) -> dict[str, Any]:
    """The letter's facts: which one it is (its next is counted from it), the stage, and whether
    the date we aimed to answer by has passed."""
    late = workflow.now() >= complaint.current_checkpoints().overdue_at
    return {"number": number, "stage": stage(complaint.status), "late": late}


# Why a request is no complaint to tell of progress (the API says so first, 422: api/staff_actions.py).
NOT_A_COMPLAINT = ("only a complaint to us under the UK GDPR (Data Protection Act 2018, s. 164A) is told of its "
                   "progress: this request is not one")


def not_a_complaint(regime: str, appeal_of: str | None) -> str | None:
    return None if appeal_of and takes_complaints(regime) else NOT_A_COMPLAINT


def closed_complaint(status: RequestStatus) -> str:
    return (f"this complaint is closed (status {status.value}): the complainant has been told its outcome or why "
            "it closed, and no progress letter follows that")


class ProgressByHand:
    """A progress letter staff send when there is progress (s. 164A(5)(b)), an update of the
    complaint's workflow: their note quoted, recorded with who sent it, sent once per press (its
    `once` key), and the automatic letters counted from it. A mixin of DataSubjectRequestWorkflow."""

    # Provided by DataSubjectRequestWorkflow.
    request_id: str
    _answering: bool
    _approval: ApproveInput | None
    _owed: OwedSteps
    _told: ToldByHand
    _require_facts: Callable[[], RequestFacts]
    state: Callable[[], RequestState]
    current_checkpoints: Callable[[], Checkpoints]
    if TYPE_CHECKING:
        @property
        def closed(self) -> bool: ...

        @property
        def status(self) -> RequestStatus: ...

    @workflow.update
    async def tell_progress(self, request: TellProgressInput) -> RequestState:
        self._require_undecided_complaint(request)  # again, atomically: a decision may have come first
        told = self._told
        if request.once is not None and request.once in told.marks:
            # Pressed twice, or a retried call: the first press's letter is the one.
            await self._owed.until_done_or_troubled(told.marks[request.once][0])
            return self.state()
        told.count += 1
        number = told.count
        facts = self._require_facts()
        params = {**progress_params(self, number), "note": request.note, "by_hand": True, "next_date": None}
        if workflow.patched(PROGRESS_BY_HAND):
            told.since = workflow.now()
            if facts.progress_days:  # the next automatic letter, should it still be undecided then
                checkpoints = self.current_checkpoints()
                zone = controller_zone(checkpoints)
                following = next_letter_after(told.since, checkpoints, zone, timedelta(days=facts.progress_days))
                params["next_date"] = controller_day(following, zone).isoformat()
        key = f"staff-{number}"
        recorded = event_record(self.request_id, TOLD_BY_HAND, f"progress-told:{number}",
                                {"note": request.note, "letter": key}, request.actor)
        mark = self._owed.owe(record("record_event", recorded),
                              letter(letter_job(self.request_id, PURPOSE, key=key, params=params)))
        if request.once is not None:
            told.marks[request.once] = (mark, request.note)
        await self._owed.until_done_or_troubled(mark)
        return self.state()

    @tell_progress.validator
    def _validate_tell_progress(self, request: TellProgressInput) -> None:
        self._require_undecided_complaint(request)

    def _require_undecided_complaint(self, request: TellProgressInput) -> None:
        facts = self._require_facts()
        # Complaints prepared before `appeal_of` was carried name none; their progress days say so.
        if refused := not_a_complaint(facts.regime, facts.appeal_of or ("?" if facts.progress_days else None)):
            raise ValueError(refused)
        status = self.status
        if status.is_closed:
            raise ValueError(closed_complaint(status))
        if self._answering or self._approval is not None:
            raise ValueError("this complaint is decided: its outcome is on its way to the complainant, and no "
                             "progress letter follows that")
        kept = self._told.marks.get(request.once) if request.once is not None else None
        if kept is not None and kept[1] != request.note:
            raise ValueError("this idempotency key was already used for another progress letter on this complaint: "
                             "that letter is the one sent, this one was not")
