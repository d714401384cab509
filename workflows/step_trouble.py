"""A request's failing step, as its workflow handles it (workflows/dsr_steps.py `run_step`).

A step that failed for good, or kept failing past the policy's threshold, opens a trouble: stored
(so the queue shows the request as needing attention), alerted to staff once, and shown by the
`state` query. The step then waits: a transient trouble is retried on its own after another
threshold, or sooner when staff say so; a deterministic one waits for staff to retry it (after
fixing its cause) or skip it (having done its work by other means). Repeated failures of the same
step stay one trouble, with one alert. The trouble closes when the step succeeds or is skipped.

Deterministic like the workflow that owns it. Its own bookkeeping runs as plain activities retried
until the database answers, never through `run_step`, so a trouble cannot cause another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from schemas.steps import StepTrouble, TroubleRecord
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


def described(trouble: StepTrouble) -> str:
    """E.g. "send_letter (denial letter)": the step, and which of its kind it was."""
    return f"{trouble.step} ({trouble.about})" if trouble.about else trouble.step


def trouble_detail(trouble: StepTrouble) -> str:
    """A staff alert's sentence for a failed step waiting for staff, with what they can do on the
    request's page (the actions StepTroubles.require allows)."""
    way_out = ("run it again once its cause is fixed, or record it as done" if trouble.skippable
               else "run it again once its cause is fixed, or cancel the request")
    return f"The step {described(trouble)} failed: {trouble.message.rstrip('. ')}. On the request's page, {way_out}."


class StepTroubles:
    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix  # of its troubles' keys: a workflow may hold more than one StepTroubles
        self.current: StepTrouble | None = None
        self._count = 0
        self._decision: tuple[Decision, str, str] | None = None  # (decision, actor, resolution if skipped)
        self._opened: asyncio.Task[None] | None = None
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

    def require(self, decision: Decision) -> None:
        """Refuse a decision nothing waits for (checked by the validator and again, atomically,
        by the update's handler)."""
        trouble = self.current
        if trouble is None:
            raise ValueError("no step of this request has failed; there is nothing to retry or skip")
        if self._decision is not None:
            raise ValueError(f"the failed step {trouble.step} has already been answered")
        if decision == "skip" and not trouble.skippable:
            raise ValueError(f"the step {trouble.step} cannot be skipped: retry it once its cause is fixed, "
                             "or cancel the request")

    async def _open(self, request_id: str, trouble: StepTrouble, days_left: int | None) -> None:
        await workflow.execute_activity("record_step_trouble", TroubleRecord(request_id=request_id, trouble=trouble),
                                        retry_policy=RETRY, **SHORT)
        try:
            await workflow.execute_activity(
                "send_letter",
                letter_job(request_id, "staff_alert", key=f"step:{trouble.key}", to_staff=True,
                           params={"kind": "needs_attention", "days_left": days_left,
                                   "detail": trouble_detail(trouble)}),
                retry_policy=RETRY, schedule_to_close_timeout=ALERT_TRIED_FOR, **MAILING)
        except ActivityError:
            workflow.logger.warning("the staff alert for a failed step could not be sent",
                                    extra={"trouble": trouble.key})

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
