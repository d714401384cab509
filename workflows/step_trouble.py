"""A request's failing step, as its workflow handles it (workflows/dsr_steps.py `run_step`).

A step that failed for good, or kept failing past the policy's threshold, opens a trouble: stored
(so the queue shows the request as needing attention), alerted to staff, and shown by the `state`
query; while it stays open and unanswered, staff are reminded of it each morning (TROUBLE_REMINDERS). The step then waits: a transient trouble is retried on its own after another
threshold, or sooner when staff say so; a deterministic one waits for staff to retry it (after
fixing its cause) or skip it (having done its work by other means). Repeated failures of the same
step stay one trouble, with one alert (and one reminder a day). The trouble closes when the step succeeds or is skipped.

Deterministic like the workflow that owns it. Its own bookkeeping runs as plain activities retried
until the database answers, never through `run_step`, so a trouble cannot cause another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from schemas.staff_answers import STALE_ANSWER
    from schemas.steps import StepTrouble, TroubleRecord
    from schemas.workflow import Checkpoints
    from workflows.dsr_steps import MAILING, RETRY, SHORT, Decision, RequestClosed, letter_job


# workflow.patched id: before it, a close arriving with a transient trouble's own retry timer let
# the step run once more (the response's letter could go out after a cancellation).
CLOSE_BEATS_RETRY_TIMER = "close-beats-retry-timer"
# How long a trouble's staff alert is tried before the trouble goes on without it (on record, so
# the queue shows the request needing attention). Closing the trouble waits for the alert: sent,
# or given up, never raised. Before, a relay refusing the alert for good (a staff list that
# rejects outside senders) failed the request's workflow once staff retried or skipped the step,
# and one refusing it for a while held the request's main line after the step had recovered.
ALERT_TRIED_FOR = timedelta(hours=1)
# workflow.patched id: before it, a trouble's alert was the only e-mail staff had of it. A step
# that failed for good and waited for staff (above all a denial's or a cancellation's letter the
# relay refused, owed on a closed request, which the deadline's reminders no longer cover) was
# shown by the queue and DsrStepNeedsAttentionForADay alone, for as long as nobody looked.
TROUBLE_REMINDERS = "trouble-reminders"
# How often staff are reminded of what waits for them (a trouble here, an overdue request in
# workflows/deadline_watch.py), and when in the controller's day: at 9:00, the morning someone
# reads it, counted from the request's deadline checkpoints (the controller's midnights, as UTC
# instants) on the controller's wall clock (LOCAL_HOUR).
REMIND_EVERY = timedelta(days=1)
REMIND_AT = timedelta(hours=9)
# Patch id, deprecated (`controller_zone`): before it, the controller's days were counted in 24 h
# steps from the checkpoints' midnight: across a change of clocks between that midnight and a
# moment, the moment in the first or last hour of its day was counted in the day before or after (a
# reminder or a complaint's progress letter a day early or late), and every reminder or letter after
# a change went at 8:00 or 10:00. The checkpoints decide: those that name the controller's zone
# (prepared since) keep its wall clock; the older ones keep the old arithmetic, and so replay as
# they ran.
LOCAL_HOUR = "reminders-keep-local-hour"


def trouble_facts(trouble: StepTrouble, waited: int | None = None) -> dict[str, Any]:
    """A staff alert's facts for a failed step waiting for staff (activities/staff_alert_words.py):
    the step, which of its kind, its error as it came, and whether staff may record it as done
    (the actions StepTroubles.require allows); a reminder's (`waited`: the days since the day it
    failed) also how long it has waited. The letter says them in the staff language."""
    facts: dict[str, Any] = {"what": "step_failed", "step": trouble.step, "about": trouble.about,
                             "message": trouble.message, "skippable": trouble.skippable}
    return facts if waited is None else {**facts, "waited": waited}


async def alert_tried(request_id: str, key: str, params: dict[str, Any]) -> None:
    """A `needs_attention` staff alert tried for ALERT_TRIED_FOR and never raised: a reminder of
    something that already waits for staff, so an alert that cannot go opens no trouble of its own."""
    try:
        await workflow.execute_activity(
            "send_letter",
            letter_job(request_id, "staff_alert", key=key, to_staff=True, params={"kind": "needs_attention", **params}),
            retry_policy=RETRY, schedule_to_close_timeout=ALERT_TRIED_FOR, **MAILING)
    except ActivityError:
        workflow.logger.warning("a staff alert could not be sent", extra={"alert": key})


@runtime_checkable
class _Dated(Protocol):
    """What a trouble's reminders read of the request's workflow: its current deadline checkpoints
    (a ValueError while the request is not registered yet)."""

    def current_checkpoints(self) -> Checkpoints: ...


def _checkpoints() -> Checkpoints | None:
    owner = workflow.instance()
    if not isinstance(owner, _Dated):
        return None
    try:
        return owner.current_checkpoints()
    except ValueError:  # registration is what failed: no deadline, so no controller's calendar
        return None


def controller_zone(checkpoints: Checkpoints | None) -> tzinfo | None:
    """The controller's zone the reminders and letters keep their hour in (LOCAL_HOUR), or None:
    24 h steps, as before (checkpoints that name no zone, or a history that ran without it).

    zoneinfo in a workflow: the sandbox passes the module through and lets ZoneInfo(name) be
    built (it refuses only from_file, clear_cache and reset_tzpath); the zone's file (the system's
    tz data, which the activities' deadline_checkpoints read already) is read once per worker
    process and cached. Every instant here is computed from the history's (receipt, a checkpoint,
    workflow.now()) by the zone's rules, so a replay on the same tz data computes what the run did;
    only a tz data update that rewrites a zone's rules for days a running request has already
    counted could differ. The name is the policy's `defaults.timezone`, no personal data.

    The checkpoints decide, not the patch's marker: only code with this arithmetic names the zone
    in them, and the same worker runs the activity that builds them and the workflow that reads
    them. The marker is deprecated (`deprecate_patch`): a `patched` call asked in the activation a
    local activity's result straddled into from the task before is answered False on replay, whose
    run asked it in the next task (seen on the time-skipping server with a query arriving during
    the first task: "Non-deprecated patch marker encountered ... no corresponding change command");
    a deprecated marker missing its call is no nondeterminism. Histories recorded with the
    undeprecated marker still replay."""
    if checkpoints is None or checkpoints.timezone is None:
        return None
    workflow.deprecate_patch(LOCAL_HOUR)
    return ZoneInfo(checkpoints.timezone)


def later(moment: datetime, by: timedelta, zone: tzinfo | None) -> datetime:
    """`moment + by` on the controller's wall clock (9:00 plus a day is 9:00 the next day, whatever
    change of clocks lies between); in elapsed time where `zone` is None."""
    if zone is None:
        return moment + by
    return (moment.astimezone(zone) + by).astimezone(UTC)  # aware + timedelta: wall-clock arithmetic


def whole_steps(start: datetime, moment: datetime, every: timedelta, zone: tzinfo | None) -> int:
    """How many whole `every`s from `start` to `moment` (floored), on the controller's wall clock
    where `zone` is given (the inverse of `later`)."""
    if zone is None:
        return (moment - start) // every
    return (_wall(moment, zone) - _wall(start, zone)) // every


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def first_reminder(since: datetime, checkpoints: Checkpoints | None, zone: tzinfo | None) -> datetime:
    """When a trouble opened at `since` is first reminded of: 9:00 the controller's time on the day
    after the one it opened (its alert went when it opened); a day after it opened if the request
    has no deadline yet."""
    if checkpoints is None:
        return since + REMIND_EVERY
    return later(day_began(since, checkpoints, zone), REMIND_EVERY + REMIND_AT, zone)


def day_began(moment: datetime, checkpoints: Checkpoints, zone: tzinfo | None) -> datetime:
    """The controller's midnight that began `moment`'s day (the checkpoints are the controller's
    midnights, as UTC instants; `zone`, controller_zone's), the days its reminders and letters are
    counted in."""
    midnight = checkpoints.overdue_at
    return later(midnight, REMIND_EVERY * whole_steps(midnight, moment, REMIND_EVERY, zone), zone)


async def remind_each_morning(since: datetime, over: Callable[[], bool],
                              remind: Callable[[int], Awaitable[None]]) -> None:
    """`remind(waited)` each morning (first_reminder, then every REMIND_EVERY) until `over()`;
    `waited`: the days since the day it began at `since`. Each reminder's alert is keyed by that
    day, so a step run again sends it once, and after a worker away for days only the current
    day's goes."""
    checkpoints = _checkpoints()
    zone = controller_zone(checkpoints)
    await at_intervals(first_reminder(since, checkpoints, zone), REMIND_EVERY, over, remind, zone)


async def at_intervals(first: datetime, every: timedelta, over: Callable[[], bool],
                       act: Callable[[int], Awaitable[None]], zone: tzinfo | None) -> None:
    """`act(n)` at `first + (n - 1) * every`, n = 1, 2 ..., until `over()`, on the controller's
    wall clock where `zone` is given (`later`). After a worker away for several intervals, only the
    newest `n` due is acted on."""
    n = 1
    while not over():
        delay = later(first, every * (n - 1), zone) - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(over, timeout=delay)
                return
            except TimeoutError:
                if over():  # ended in the same moment: the timer's expiry wins the wait
                    return
        n = max(n, whole_steps(first, workflow.now(), every, zone) + 1)
        await act(n)
        n += 1


class StepTroubles:
    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix  # of its troubles' keys: a workflow may hold more than one StepTroubles
        self.current: StepTrouble | None = None
        self._count = 0
        self._decision: tuple[Decision, str, str] | None = None  # (decision, actor, resolution if skipped)
        self._opened: asyncio.Task[None] | None = None
        self._reminding: asyncio.Task[None] | None = None  # held: asyncio keeps only weak references to tasks
        self._waiting = False  # the failed step waits (for staff, or to be retried on its own)
        self._closing = 0  # closes whose record is being written

    async def failed(self, request_id: str, step: str, message: str, *, transient: bool, skippable: bool,
                     attention_after: timedelta, closed: Callable[[], bool], days_left: int | None,
                     about: str | None = None) -> Decision:
        """Open (or carry on) the step's trouble and wait for what to do next."""
        if self.current is None or self.current.step != step:
            self._count += 1
            self.current = StepTrouble(key=f"{self._prefix}{step}:{self._count}", step=step, message=message,
                                       transient=transient, skippable=skippable, since=workflow.now(), about=about)
            # In the background: the database or the mail relay may be what is failing.
            self._opened = asyncio.create_task(self._open(request_id, self.current, days_left))
            if workflow.patched(TROUBLE_REMINDERS):
                self._reminding = asyncio.create_task(
                    self._remind(request_id, self.current, closed, dated=days_left is not None))
        else:
            self.current = self.current.model_copy(
                update={"message": message, "transient": transient, "answered_by": None, "about": about})
        self._decision = None
        self._waiting = True
        try:
            await workflow.wait_condition(lambda: self._decision is not None or closed(),
                                          timeout=attention_after if transient else None)
        except TimeoutError:
            # Transient: try again on our own, unless the request was closed in the same moment
            # (its update and this timer in one workflow task: the timer's expiry wins the wait).
            if not (closed() and workflow.patched(CLOSE_BEATS_RETRY_TIMER)):
                return "retry"
        finally:
            self._waiting = False
        if closed():
            await self._close(request_id, "the request was closed meanwhile", "workflow")
            raise RequestClosed
        assert self._decision is not None
        decision, actor, resolution = self._decision
        if decision == "skip":
            await self._close(request_id, resolution, actor)
        return decision

    async def recovered(self, request_id: str) -> None:
        """The troubled step has succeeded (on its own or retried by staff)."""
        if self.current is not None:
            actor = self._decision[1] if self._decision else "workflow"
            await self._close(request_id, "the step succeeded when tried again", actor)

    @property
    def waiting(self) -> bool:
        """A failed step waits and nobody has answered it yet: nothing of it is under way, so
        closing the request now stops it (`failed` raises RequestClosed)."""
        return self._waiting and self._decision is None

    def decide(self, decision: Decision, actor: str, note: str = "") -> None:
        self.require(decision)
        self._answer(decision, actor, f"skipped by staff: {note}")

    def abandon(self, resolution: str) -> None:
        """The workflow gives up the waiting step itself: what it was for no longer needs it."""
        self._answer("skip", "workflow", resolution)

    def _answer(self, decision: Decision, actor: str, resolution: str) -> None:
        self._decision = (decision, actor, resolution)
        assert self.current is not None
        self.current = self.current.model_copy(update={"answered_by": actor})

    def require(self, decision: Decision, key: str | None = None) -> None:
        """Refuse a decision nothing waits for (checked by the validator and again, atomically,
        by the update's handler), or sent for another failed step than the one waiting (`key`, the
        trouble the caller read: a stale page must not answer a step failed since)."""
        trouble = self.current
        if trouble is None:
            raise ValueError("no step of this request has failed; there is nothing to retry or skip")
        if key is not None and key != trouble.key:
            raise ValueError(f"the failed step this was sent for ({key}) has been answered or has succeeded since, "
                             f"and the step failing now is another ({trouble.key}): {STALE_ANSWER}")
        if self._decision is not None:
            raise ValueError(f"the failed step {trouble.step} has already been answered")
        if decision == "skip" and not trouble.skippable:
            raise ValueError(f"the step {trouble.step} cannot be skipped: retry it once its cause is fixed, "
                             "or cancel the request")

    async def _open(self, request_id: str, trouble: StepTrouble, days_left: int | None) -> None:
        await workflow.execute_activity("record_step_trouble", TroubleRecord(request_id=request_id, trouble=trouble),
                                        retry_policy=RETRY, **SHORT)
        await self._alert(request_id, trouble.key, "", {"days_left": days_left, "facts": trouble_facts(trouble)})

    async def _remind(self, request_id: str, opened: StepTrouble, closed: Callable[[], bool], *, dated: bool) -> None:
        """One staff alert each morning the trouble stays open, saying how long it has waited and
        what staff can do. None while staff's answer is under way (their retry runs the step
        again); it stops when the trouble closes or the request does."""
        def over() -> bool:
            return self.current is None or self.current.key != opened.key or closed()

        async def remind(waited: int) -> None:
            trouble = self.current
            assert trouble is not None  # not over()
            if trouble.answered_by is None:
                checkpoints = _checkpoints() if dated else None
                # The days left as staff's alerts count them: negative (days late) past the due date.
                days_left = (checkpoints.overdue_at - workflow.now()).days if checkpoints else None
                await self._alert(request_id, opened.key, f":day-{waited}",
                                  {"days_left": days_left, "facts": trouble_facts(trouble, waited)})

        await remind_each_morning(opened.since, over, remind)

    async def _alert(self, request_id: str, trouble_key: str, day: str, params: dict[str, Any]) -> None:
        """A trouble's staff alert (`day`: a reminder's)."""
        await alert_tried(request_id, f"step:{trouble_key}{day}", params)

    async def _close(self, request_id: str, resolution: str, actor: str) -> None:
        trouble, self.current, self._decision = self.current, None, None
        assert trouble is not None
        self._closing += 1
        try:
            if self._opened is not None:
                await self._opened  # the trouble is on record before it is closed
            await workflow.execute_activity(
                "record_step_trouble",
                TroubleRecord(request_id=request_id, trouble=trouble, resolution=resolution, actor=actor),
                retry_policy=RETRY, **SHORT)
        finally:
            self._closing -= 1

    @property
    def settled(self) -> bool:
        """No trouble open, and none being closed: stopping the task that owns it loses nothing."""
        return self.current is None and not self._closing
