"""A restriction's life after its request completed (Art. 18 GDPR): in force, recorded with its
grounds and the systems it reached, until compliance lifts it with a reason (the
`lift_restriction` update). The subject is told before the lift takes effect (Art. 18(3)): the
letter first, then the policy's notice period (0 days by default), then the lift is carried to
every system of the restriction's plan (which tells the Art. 19 recipients among them), and the
restriction is recorded lifted.

A request closed before it completed (cancelled by staff, withdrawn by the subject, denied) once
some systems had restricted the data leaves them restricted: that restriction goes on record for
the systems it reached and lives the same life, since only compliance's lift, told to the subject
first, may end a restriction; the closing letter said so (activities/templates/letters/_done_so_far).

A mixin of DataSubjectRequestWorkflow: the request's workflow stays open, with its status
`completed` (or the status it closed with), while the restriction is in force, so the lift's
letter, tasks and failed steps run (and are retried or resolved by staff) like those of any
request. Requests started before this existed end with their response, as they always did (the
`restriction-lifecycle` patch); those closed part-way before `restriction-closed-partway` ended
with their close, their systems restricted and nothing on record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus, RequestType
    from schemas.restrictions import (
        LiftAnnounced,
        LiftCarriedOut,
        LiftRestrictionInput,
        LiftSchedule,
        RestrictionInForce,
    )
    from schemas.workflow import Plan, RequestFacts, RequestState
    from workflows.dsr_steps import run_step, send_letter
    from workflows.owed_steps import OwedSteps, answered_within
    from workflows.step_trouble import StepTroubles
    from workflows.task_fanout import SystemTasks

RESTRICTION_LIFECYCLE = "restriction-lifecycle"
# workflow.patched ids: before the first, a lift whose announcement failed and waited for staff
# answered only once staff had retried or skipped it (the caller's request hung meanwhile); before
# the second, a database or relay that did not answer held the caller until the policy's threshold.
LIFT_ANSWERS_ON_TROUBLE = "lift-answers-on-trouble"
LIFT_ANSWER_BOUNDED = "lift-answer-bounded"
# workflow.patched id: before it, the notice period ran from the lift's announcement, so a letter
# that went days late (its step failed and waited for staff) left the subject fewer days' notice
# than the policy promises, or none. Now it runs from the letter, which names that date.
LIFT_NOTICE_FROM_LETTER = "lift-notice-from-letter"
# workflow.patched id: before it, a restriction closed before it completed with systems already
# restricted ended there: nothing on record, no lift offered, the systems restricted for good.
RESTRICTION_CLOSED_PARTWAY = "restriction-closed-partway"
# workflow.patched id: before it, a restriction closed part-way went on record once, at the close: a
# task left running then (LEFT_RUNNING_ON_CLOSE) that restricted the data afterwards (a processor's
# confirmation the task learnt of late, a run that committed) was missing from where it is in force
# (the panel, the evidence pack); closed with no system reached yet, it never went on record at all.
LATE_REACH_RECORDED = "restriction-late-reach-recorded"
# workflow.patched id: before it, a task left running at a part-way close (LATE_REACH_RECORDED)
# that restricted the data once the lift was decided was neither recorded nor lifted: the system
# stayed restricted while the record said the restriction was lifted. Now it goes on record, and
# one that restricted after the lift's tasks had begun is lifted again by the lift's own task.
LATE_REACH_LIFTED = "restriction-late-reach-lifted"


class RestrictionLifecycle:
    # Provided by DataSubjectRequestWorkflow.
    request_id: str
    _facts: RequestFacts | None
    _status: RequestStatus
    _plan: Plan | None
    _tasks: SystemTasks
    _require_facts: Callable[[], RequestFacts]
    _troubles: StepTroubles
    _owed: OwedSteps
    state: Callable[[], RequestState]

    # None until the restriction is on record; then active -> lifting -> lifted.
    _restriction_phase: str | None = None
    _lift: LiftRestrictionInput | None = None
    _lift_announced = False
    lift_owes: tuple[str, ...] = ()  # the lift's steps before the subject is told, still to do
    # True from the end of the request to the end of the lift: the request is completed, yet its
    # workflow still runs steps that staff may have to retry, skip or resolve. One closed part-way
    # runs none while its restriction waits for the lift, and is not carried on meanwhile.
    keeping_restriction = False

    async def keep_restriction_until_lifted(self) -> None:
        facts = self._facts
        if facts is None or facts.request_type != RequestType.restriction or self._plan is None:
            return
        completed = self._status == RequestStatus.completed
        if completed and not workflow.patched(RESTRICTION_LIFECYCLE):
            return
        if not completed and not await self._restricted_before_close():
            return
        self.keeping_restriction = True
        recorded = self._reached()
        await run_step("record_restriction", RestrictionInForce(request_id=self.request_id, systems=recorded),
                       skippable=False)
        self._restriction_phase = "active"
        # Closed part-way, a restriction's task may still need attention: staff no longer retry or
        # resolve it on a closed request (what is on record is what was reached) until the lift,
        # which reaches every system of the plan, replaces those tasks with its own.
        self.keeping_restriction = completed
        recorded = await self._lift_decided(recorded)
        self.keeping_restriction = True
        late = self._follow_late_reach(self._tasks, recorded)  # the restriction's tasks, not the lift's
        lift = self._lift
        assert lift is not None
        self.lift_owes = ("announce_restriction_lift", "send_letter")
        schedule: LiftSchedule = await run_step(
            "announce_restriction_lift", LiftAnnounced(request_id=self.request_id, reason=lift.reason, actor=lift.actor),
            result_type=LiftSchedule, skippable=False)
        self.lift_owes = ("send_letter",)
        lift_on = workflow.now() + timedelta(days=schedule.notice_days)
        await send_letter(self.request_id, "restriction_lift",
                          params={"reason": lift.reason, "lift_on": lift_on.date().isoformat(),
                                  "notice_days": schedule.notice_days})
        self.lift_owes = ()
        self._lift_announced = True
        if schedule.notice_days and workflow.patched(LIFT_NOTICE_FROM_LETTER):
            await workflow.sleep(timedelta(days=schedule.notice_days))  # from the letter, as it says
        elif schedule.notice_days:
            await workflow.sleep(lift_on - workflow.now())
        reached_before = set(self._reached())
        await self._lift_everywhere(lift.actor)
        if late is not None:
            await self._lift_again([s for s in await late if s not in reached_before])
        self._restriction_phase = "lifted"
        # A staff resolution of the lift's last task may still be recording itself.
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.keeping_restriction = False

    def _reached(self) -> list[str]:
        return sorted(r.system for r in self._tasks.results.values() if r.status == "done")

    async def _lift_decided(self, recorded: list[str]) -> list[str]:
        """Until compliance lifts it, a task left running at the close that restricts the data goes
        on record as the restriction's too (LATE_REACH_RECORDED), as the closing letter said it would
        stay in force wherever the systems still asked carry it out. The systems on record then."""
        follows = self._tasks.left_running is not None
        while True:
            def lifted_or_reached(follows: bool = follows, recorded: list[str] = recorded) -> bool:
                return self._lift is not None or (follows and not set(self._reached()) <= set(recorded))

            await workflow.wait_condition(lifted_or_reached)
            if self._lift is not None:
                return recorded
            if not workflow.patched(LATE_REACH_RECORDED):
                follows = False  # recorded once, at the close, as before
                continue
            recorded = sorted({*recorded, *self._reached()})
            await run_step("record_restriction", RestrictionInForce(request_id=self.request_id, systems=recorded),
                           skippable=False)

    def _follow_late_reach(self, restricting: SystemTasks, recorded: list[str]) -> asyncio.Task[list[str]] | None:
        """Beside the lift (LATE_REACH_LIFTED): the tasks left running at the close (`restricting`'s)
        that restrict the data after the lift was decided go on record as reached as each does, as
        before it; the task ends once they all have ended, with the systems they reached so.
        Before, they were no longer followed: the system stayed restricted, missing from the
        restriction, while the record said the restriction was lifted."""
        left = restricting.left_running
        if left is None:
            return None

        def late() -> list[str]:
            return sorted(r.system for r in restricting.results.values()
                          if r.status == "done" and r.system not in recorded)

        if (left.done() and not late()) or not workflow.patched(LATE_REACH_LIFTED):
            return None

        async def follow() -> list[str]:
            on_record = list(recorded)
            while True:
                def reached_or_ended(on_record: list[str] = on_record) -> bool:
                    return left.done() or not set(late()) <= set(on_record)

                await workflow.wait_condition(reached_or_ended)
                if not set(late()) <= set(on_record):
                    on_record = sorted({*on_record, *late()})
                    await run_step("record_restriction", RestrictionInForce(request_id=self.request_id,
                                                                            systems=on_record), skippable=False)
                elif left.done():
                    return late()

        return asyncio.create_task(follow())

    async def _lift_again(self, systems: list[str]) -> None:
        """The lift's task at each of `systems`, whose restriction came after the lift's tasks had
        begun (so that task may have lifted before it), runs again, once: a retry of it by the
        workflow (its next attempt); one that needs a person alerts staff as any lift task does."""
        if not systems:
            return
        assert self._plan is not None
        for system in systems:
            await self._tasks.retry(self._plan, system, actor="workflow")
        await self._tasks.settle(self.request_id, lambda: False, lambda: None)

    async def _restricted_before_close(self) -> bool:
        """Closed before it completed: did a system restrict the data by then? Staff's retry of a
        system still running on its own (a processor's) is waited for first: it may restrict too;
        and, none yet, the tasks left running at the close (their first to restrict puts it on record)."""
        left = self._tasks.left_running
        if (left is not None and not left.done() and not self._reached() and not self._tasks.retries_running
                and workflow.patched(LATE_REACH_RECORDED)):
            await workflow.wait_condition(lambda: bool(self._reached()) or left.done())
        if not (self._reached() or self._tasks.retries_running) or not workflow.patched(RESTRICTION_CLOSED_PARTWAY):
            return False
        await workflow.wait_condition(lambda: not self._tasks.retries_running)
        return bool(self._reached())

    async def _lift_everywhere(self, actor: str) -> None:
        """Every system of the restriction's plan, reached or not (lifting is idempotent): the
        lift's tasks replace the restriction's as the ones staff see, retry and resolve."""
        assert self._plan is not None
        plan = self._plan.model_copy(update={"tasks": [
            t.model_copy(update={"action": "lift_restriction"}) for t in self._plan.tasks]})
        # No deadline watch follows the lift (the request was answered): its tasks that need staff
        # are reminded each morning by the fan-out itself, and no alert counts days to a due date.
        self._plan, self._tasks = plan, SystemTasks(alert_key="lift-attention", owed=self._owed, event_prefix="lift:",
                                                    remind_daily=True)
        await self._tasks.run_and_settle(plan, lambda: False, lambda: None)
        results = self._tasks.results.values()
        await run_step("record_restriction_lifted", LiftCarriedOut(
            request_id=self.request_id, systems=sorted(t.system for t in plan.tasks), actor=actor,
            recipients=sorted({r.recipient for r in results if r.recipient and r.status == "done"})),
            skippable=False)

    @workflow.update
    async def lift_restriction(self, request: LiftRestrictionInput) -> RequestState:
        self._validate_lift(request)  # again, atomically: a concurrent lift may have passed validation too
        self._lift = request
        self._restriction_phase = "lifting"
        # Answer once the subject has been told, so the caller sees the letter on its way; or once
        # telling them failed and waits for staff, so the caller sees that instead of waiting; or
        # after ANSWER_WITHIN, with the steps still to do in the state's `owed`.
        on_trouble = workflow.patched(LIFT_ANSWERS_ON_TROUBLE)

        def told_or_troubled() -> bool:
            return self._lift_announced or (on_trouble and self._troubles.current is not None)

        if not workflow.patched(LIFT_ANSWER_BOUNDED):
            await workflow.wait_condition(told_or_troubled)
            return self.state()
        await answered_within(told_or_troubled)
        return self.state()

    @lift_restriction.validator
    def _validate_lift(self, request: LiftRestrictionInput) -> None:
        facts = self._require_facts()
        if facts.request_type != RequestType.restriction:
            raise ValueError(f"this is a {facts.request_type.value} request: only a restriction can be lifted")
        phase = self._restriction_phase
        if phase == "lifting":
            raise ValueError("the restriction is already being lifted")
        if phase == "lifted":
            raise ValueError("the restriction has already been lifted")
        if phase is None:
            raise ValueError(f"the restriction is not in force (status {self._status.value})")
