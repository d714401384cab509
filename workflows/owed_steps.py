"""The steps a staff decision owes, carried out beside the request's main line until done.

A denial, a cancellation, an extension or an objection decision takes effect in the workflow the
moment its update is accepted (a second decision is refused from then on), and then owes its
record (the stored status, the new due date, the decision in the audit trail) and, but for the
objection decision, its letter to the subject, which the law requires (Art. 12(3)/(4) GDPR); the
main line acts on an objection decision only once it is on record. Run inside the update's
handler, a step that failed failed the update: staff were told "refused" about a decision that
had taken effect, and a request closed that way ended with nobody told and nothing left to retry.
Here the handler hands its steps over and waits until they are done or in trouble; they run
outside the update (as activity tasks, acting only once the decision is recorded), and a failure opens a
trouble of their own - stored, alerted to staff once, answered by `retry_step` or `skip_step`
(the letter only: a record cannot be skipped) - even on a closed request, whose workflow does
not end while it owes a step.

Deterministic like the workflow that owns it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.steps import OWED_TROUBLE
    from schemas.workflow import LetterJob
    from workflows.dsr_steps import MAILING, SHORT, Decision, Timeouts, run_step
    from workflows.step_trouble import StepTroubles

# workflow.patched ids: decisions taken before OWED_STEPS ran their steps inside the update's
# handler; before ANSWER_BOUNDED, the update answered only once its steps were done or in trouble,
# so a relay that was down held the officer's call for the policy's `attention_after` (15 min).
OWED_STEPS = "owed-steps"
ANSWER_BOUNDED = "owed-answer-bounded"
# How long a decision's update waits for its steps before it answers with them still owed: a
# record takes milliseconds and a relay a second; longer means the database or the relay is
# failing, and the request's page shows the rest.
ANSWER_WITHIN = timedelta(seconds=20)


async def answered_within(settled: Callable[[], bool]) -> None:
    """Wait until `settled`, ANSWER_WITHIN at most: the update waiting then answers with what is
    still under way (a decision's, an approval's, a lift's or a sql retry's)."""
    with contextlib.suppress(TimeoutError):
        await workflow.wait_condition(settled, timeout=ANSWER_WITHIN)


@dataclass
class OwedStep:
    activity: str
    arg: Any
    timeouts: Timeouts
    skippable: bool  # a letter staff may send by other means; a record cannot be skipped
    result_type: type | None = None
    then: Callable[[Any], None] | None = None  # given the step's result once it is done


class OwedSteps:
    """A queue of owed steps, run in order by `run` (a task of the request's workflow, so that
    its steps are not an update's), with troubles of their own (keys `owed-<step>:<n>`)."""

    def __init__(self) -> None:
        self.troubles = StepTroubles(prefix=OWED_TROUBLE)
        self._queue: list[OwedStep] = []
        self._handed = 0  # steps handed over so far
        self._done = 0  # of which done (or skipped)
        self._request_id = ""
        self.attention_after = timedelta(minutes=15)

    def owe(self, *steps: OwedStep) -> int:
        """Hand steps over; returns their mark: they are done when `done(mark)`."""
        self._queue.extend(steps)
        self._handed += len(steps)
        return self._handed

    def done(self, mark: int) -> bool:
        return self._done >= mark

    async def until_done_or_troubled(self, mark: int) -> None:
        """Wait until the steps up to `mark` are done, or one of them waits for staff, or
        ANSWER_WITHIN has passed (the caller's update then answers with the trouble, or the steps
        still `owed`, in the request's state)."""
        def settled() -> bool:
            return self.done(mark) or self.troubles.current is not None

        if not workflow.patched(ANSWER_BOUNDED):
            await workflow.wait_condition(settled)
            return
        await answered_within(settled)

    async def carried_out(self, *steps: OwedStep) -> None:
        await self.until_done_or_troubled(self.owe(*steps))

    @property
    def idle(self) -> bool:
        return not self._queue

    @property
    def pending(self) -> list[str]:
        """The steps still owed, in order (the request's state shows them)."""
        return [step.activity for step in self._queue]

    async def run(self, request_id: str, attention_after: timedelta) -> None:
        self._request_id, self.attention_after = request_id, attention_after
        while True:
            await workflow.wait_condition(lambda: bool(self._queue))
            step = self._queue[0]
            # Activity tasks, not local steps: a local step would act inside the workflow task that
            # accepts the decision, before that task is recorded; lost with it, the denial's letter
            # would be out for a decision the request never took.
            result = await run_step(step.activity, step.arg, result_type=step.result_type, timeouts=step.timeouts,
                                    skippable=step.skippable, supervisor=self, after_recorded=True)
            self._queue.pop(0)
            self._done += 1
            if step.then is not None:
                step.then(result)

    # ---- the supervisor of its steps (workflows/dsr_steps.py StepSupervisor) ------------------

    async def step_failed(self, step: str, message: str, *, transient: bool, skippable: bool,
                          about: str | None = None) -> Decision:
        # Never abandoned because the request closed: closing it is what these steps record.
        return await self.troubles.failed(self._request_id, step, message, transient=transient, skippable=skippable,
                                          about=about, attention_after=self.attention_after, closed=lambda: False,
                                          days_left=None)

    async def step_recovered(self) -> None:
        await self.troubles.recovered(self._request_id)


def record(activity: str, arg: Any) -> OwedStep:
    return OwedStep(activity, arg, SHORT, skippable=False)


def letter(job: LetterJob) -> OwedStep:
    return OwedStep("send_letter", job, MAILING, skippable=True)
