"""The deadline watch beside a request's workflow: staff warnings before the current due date,
the overdue flag when it passes and, for as long as the request then stays open, a reminder to
staff each day (OVERDUE_REMINDERS); recomputed when the due date moves: an extension, or a UK
request's clock started again at identity verification (workflows/verification_clock.py). A
warning is sent once per due date; the new date's go as its own, and an overdue flag of a date
the clock moved past is lifted (a back-dated request verified after its receipt's due date).
Before, only an extension woke it: a moved date was warned of at the old one's times. Until a UK
request's clock starts (its subject has not verified yet) it warns of nothing (WATCH_AFTER_CLOCK_START):
the dates counted from receipt are the earliest the request can be due, not its due date.

Deterministic like the workflow that owns it: its timers and activities are the workflow's own
commands, in the order the workflow has always issued them.

Its failing steps have troubles of their own (keys `watch-<step>:<n>`). Before WATCH_TROUBLES they
shared the request's: a warning's alert failing while a step of the main line waited for staff
took that trouble's place, whose record then stayed open for ever (the queue showed the request
as needing attention after all was answered), and one answer of staff ran both steps again.

Its alerts to staff are sent beside its loop, one after another (WATCH_LETTERS_ASIDE): before, a
warning's alert the relay refused for good waited for staff inside the loop, and the overdue flag,
its audit event, the overdue alert and the daily reminders waited behind it (the console offered
Extend, which the workflow then refused).

Beside its loop too, a UK complaint's progress letters to the complainant while it is undecided
(workflows/complaint_progress.py, COMPLAINT_PROGRESS): their failed steps are its troubles.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, timedelta
from typing import Any, Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.clock_start import facts_clock_waits
    from schemas.requests import RequestStatus
    from schemas.steps import WATCH_TROUBLE
    from schemas.vocabulary import ALERT_OVERDUE, warning_alert_kind
    from schemas.workflow import Checkpoints, LetterJob, RequestFacts
    from workflows.complaint_progress import COMPLAINT_PROGRESS, ToldByHand, keep_informed
    from workflows.dsr_steps import (
        MAILING,
        Decision,
        RequestClosed,
        StepSupervisor,
        event_record,
        letter_job,
        run_step,
    )
    from workflows.step_trouble import REMIND_AT, REMIND_EVERY, StepTroubles, controller_zone, later, whole_steps

# workflow.patched id (see above).
WATCH_TROUBLES = "watch-own-troubles"
# workflow.patched id: before it, the overdue alert was the last the watch sent. A request that
# stayed open past its due date (an approval nobody gave, an objection nobody decided, a processor
# that never answered, a failed step nobody retried) was never brought back to staff, while the
# subject waited for an answer the law says was due (freeze audit).
OVERDUE_REMINDERS = "overdue-reminders"
# workflow.patched id (see above). Asked with WATCH_TROUBLES: a watch whose failed step was handed
# to the request's troubles (older histories) keeps sending in its loop, one step at a time.
WATCH_LETTERS_ASIDE = "watch-letters-aside"
# workflow.patched id: before it, the watch warned of a UK request awaiting verification at the times
# of its dates counted from receipt: one back-dated, or whose subject took long over a code that stayed
# valid, was "due in 2 days" or "overdue" (flag, event and alert) for a clock that had not started.
# Asked only of such a request: the other histories carry no marker.
WATCH_AFTER_CLOCK_START = "watch-after-clock-start"
# Staff are reminded of a request still open past its due date as of a stopped one
# (activities/request_start_sweep.py REMIND_EVERY) and a failed step (workflows/step_trouble.py
# REMIND_EVERY, REMIND_AT): the warnings and the overdue alert go at the controller's midnight
# (activities/lifecycle.py deadline_checkpoints); a reminder at 9:00, the morning someone reads it,
# on the controller's wall clock (step_trouble.LOCAL_HOUR).


class WatchedRequest(StepSupervisor, Protocol):
    """What the watch reads of its request's workflow (the supervisor of its older steps)."""

    request_id: str
    _answering: bool  # the response is on its way (a complaint's progress letters stop)
    _told: ToldByHand  # a complaint's progress letters staff sent by hand (they move the others)

    def _days_left(self) -> int: ...

    def _require_facts(self) -> RequestFacts: ...

    @property
    def closed(self) -> bool: ...

    @property
    def extended(self) -> bool: ...

    @property
    def status(self) -> RequestStatus: ...

    def current_checkpoints(self) -> Checkpoints: ...

    def outstanding(self) -> dict[str, Any]: ...


class DeadlineWatch:
    def __init__(self) -> None:
        # (extended?, due date, days before it): older histories' dates never moved, so keyed as
        # they were by (extended?, days).
        self.warnings_sent: set[tuple[bool, date, int]] = set()
        self.overdue_on: date | None = None  # the due date it went past
        self.troubles = StepTroubles(prefix=WATCH_TROUBLE)
        self.attention_after = timedelta(minutes=15)
        self._request: WatchedRequest | None = None
        self._handed_over = False  # the failing step's trouble is the request's (older histories)
        self._letters: asyncio.Task[None] | None = None  # the newest of its alerts sent aside
        self._queued = 0  # its alerts sent aside so far
        self._progress: asyncio.Task[None] | None = None  # a UK complaint's progress letters

    async def run(self, request: WatchedRequest) -> None:
        """Warn staff before the current due date and flag it when it passes."""
        self._request, self.attention_after = request, request.attention_after
        if request._require_facts().progress_days:
            # The facts decide (complaint_progress.COMPLAINT_PROGRESS); the marker is deprecated.
            workflow.deprecate_patch(COMPLAINT_PROGRESS)
            # Beside the loop; a failed letter of them is one of the watch's troubles.
            self._progress = asyncio.create_task(keep_informed(request, self))
        try:
            await self._watch(request)
        except RequestClosed:
            pass  # closed while one of its steps waited for staff
        if self._letters is not None:
            await self._letters  # they end with the watch (cancelled with it)
        if self._progress is not None:
            await self._progress  # so do they

    async def _watch(self, request: WatchedRequest) -> None:
        while not request.closed:
            if facts_clock_waits(request._require_facts(), request.status) and workflow.patched(WATCH_AFTER_CLOCK_START):
                # Nothing is due yet: its dates are counted again once the subject verifies. (Once
                # asked, the patch's answer holds for the run: a request started before it was
                # deployed warns as it did.)
                await workflow.wait_condition(
                    lambda: request.closed or not facts_clock_waits(request._require_facts(), request.status))
                continue
            checkpoints = request.current_checkpoints()
            if self.overdue_on not in (None, checkpoints.due_date):
                self.overdue_on = None  # its due date moved past it (the clock started at verification)
            pending = [
                (days, at) for days, at in checkpoints.warnings
                if (request.extended, checkpoints.due_date, days) not in self.warnings_sent
            ]
            if pending:
                days, at = min(pending, key=lambda p: p[1])
            elif not self.overdue:
                days, at = 0, checkpoints.overdue_at
            else:
                # Past the due date, which no extension moves any more (workflows/extension.py); a
                # back-dated UK request's verification may (workflows/verification_clock.py).
                if workflow.patched(OVERDUE_REMINDERS):
                    await self._remind_while_overdue(request, checkpoints)
                    continue  # closed, or the due date moved
                await workflow.wait_condition(lambda: request.closed)
                return
            extended_now, due_now = request.extended, checkpoints.due_date
            delay = at - workflow.now()

            def moved(extended_now: bool = extended_now, due_now: date = due_now) -> bool:
                return (request.closed or request.extended != extended_now
                        or request.current_checkpoints().due_date != due_now)

            if delay > timedelta(0):
                try:
                    await workflow.wait_condition(moved, timeout=delay)
                    continue  # closed, or the due date moved: recompute
                except TimeoutError:
                    pass
            await self._deadline_event(request, days, checkpoints)

    async def _deadline_event(self, request: WatchedRequest, days: int, checkpoints: Checkpoints) -> None:
        kind = warning_alert_kind(days)
        if days:
            self.warnings_sent.add((request.extended, checkpoints.due_date, days))
        else:
            self.overdue_on = checkpoints.due_date
        key = f"{kind}:{checkpoints.due_date.isoformat()}"
        await run_step("record_event", event_record(
            request.request_id, f"deadline.{kind}", key,
            {"due_date": checkpoints.due_date.isoformat(), "status": request.status.value}), supervisor=self)
        await self._send(request, letter_job(
            request.request_id, "staff_alert", key=key, to_staff=True,
            params={"kind": kind, "days_left": days, "facts": watch_facts(request)}))

    async def _remind_while_overdue(self, request: WatchedRequest, checkpoints: Checkpoints) -> None:
        """One staff alert each day the request stays open past its due date, saying how late it
        is and what holds it back; keyed by the day, so a step run again sends it once. After a
        worker away for days, only the current day's goes. Until closed or the due date moves (an
        extension is refused by then: only the clock started at verification moves it)."""
        zone = controller_zone(checkpoints)  # 9:00 on its wall clock, across a change of clocks
        first = later(checkpoints.overdue_at, REMIND_AT, zone)  # the morning the due date has passed

        def over() -> bool:
            return request.closed or request.current_checkpoints().due_date != checkpoints.due_date

        late = 2  # days since the due date: the overdue alert went on the first, at its midnight
        while not over():
            delay = later(first, REMIND_EVERY * (late - 1), zone) - workflow.now()
            if delay > timedelta(0):
                try:
                    await workflow.wait_condition(over, timeout=delay)
                    return
                except TimeoutError:
                    pass
            late = max(late, whole_steps(first, workflow.now(), REMIND_EVERY, zone) + 1)
            await self._send(request, letter_job(
                request.request_id, "staff_alert", key=f"{ALERT_OVERDUE}:{checkpoints.due_date.isoformat()}:day-{late}",
                to_staff=True, params={"kind": ALERT_OVERDUE, "days_left": -late,
                                       "facts": overdue_reminder_facts(request, late)}))
            late += 1

    async def _send(self, request: WatchedRequest, job: LetterJob) -> None:
        """One of the watch's staff alerts. Aside (WATCH_LETTERS_ASIDE), by a task of its own after
        the alerts before it: one waiting for staff holds back the watch's later alerts, never its
        flags and events. Of the alerts it held back only the newest goes once it is answered (the
        overdue alert says more than a warning, today's reminder more than yesterday's), and none
        once the request is closed."""
        if not (workflow.patched(WATCH_LETTERS_ASIDE) and workflow.patched(WATCH_TROUBLES)):
            await run_step("send_letter", job, timeouts=MAILING, supervisor=self)
            return
        self._queued += 1
        self._letters = asyncio.create_task(self._send_after(self._letters, self._queued, request, job))

    async def _send_after(self, before: asyncio.Task[None] | None, number: int, request: WatchedRequest,
                          job: LetterJob) -> None:
        if before is not None:
            await before
            if number != self._queued or request.closed:
                return
        with contextlib.suppress(RequestClosed):  # closed while it waited for staff
            await run_step("send_letter", job, timeouts=MAILING, supervisor=self)

    # ---- the supervisor of its steps (workflows/dsr_steps.py StepSupervisor) ------------------

    async def step_failed(self, step: str, message: str, *, transient: bool, skippable: bool,
                          about: str | None = None) -> Decision:
        request = self._request
        assert request is not None
        self._handed_over = not workflow.patched(WATCH_TROUBLES)
        if self._handed_over:
            return await request.step_failed(step, message, transient=transient, skippable=skippable, about=about)
        if self._letters is not None or self._progress is not None:
            # Its alerts (and a complaint's progress letters) go beside its loop: a step of the
            # other kind (an event's record and an alert) that fails meanwhile waits for the open
            # trouble to close before opening its own, one trouble at a time, as staff answer them.
            await workflow.wait_condition(lambda: self.troubles.current is None or self.troubles.current.step == step
                                          or request.closed)
            if request.closed:
                raise RequestClosed
        return await self.troubles.failed(
            request.request_id, step, message, transient=transient, skippable=skippable, about=about,
            attention_after=self.attention_after, closed=lambda: request.closed, days_left=request._days_left())

    async def step_recovered(self) -> None:
        request = self._request
        assert request is not None
        if self._handed_over:
            await request.step_recovered()
        else:
            await self.troubles.recovered(request.request_id)

    @property
    def overdue(self) -> bool:
        return self.overdue_on is not None

    def days_sent(self) -> list[int]:
        return sorted({days for _, _, days in self.warnings_sent})


def watch_facts(request: WatchedRequest) -> dict[str, Any]:
    """The warning's facts for staff (activities/staff_alert_words.py): where the request stands
    and, when something holds the response back, what (a processor that has not answered, a task
    or a failed step that needs staff, an objection to decide), so that staff chase it before the
    due date rather than find it after. It read "status in_progress, due 2026-03-02", then an
    English sentence in a letter of the staff language. A letter's data, not a command: older
    histories replay unchanged."""
    return {"what": "deadline", "status": request.status.value, **request.outstanding()}


def overdue_reminder_facts(request: WatchedRequest, late: int) -> dict[str, Any]:
    """The daily overdue reminder's: where the request stands and how late it is (the letter says
    what is owed and by whom)."""
    return {**watch_facts(request), "late": late}
