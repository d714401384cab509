"""How compliance decides an objection to processing based on legitimate interests (Art. 21(1)
GDPR and its counterparts), as an update of the request's workflow: the decision is taken at once
and is on record before the main line answers on it (workflows/dsr.py `_process`).

A mixin of DataSubjectRequestWorkflow (Temporal registers the updates of its base classes), kept
apart so that the workflow's main line stays readable.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.workflow import ObjectionDecision, Plan, RequestState
    from workflows.dsr_steps import event_record, run_step
    from workflows.owed_steps import OWED_STEPS, OwedSteps, record


class ObjectionDecisions:
    # Provided by DataSubjectRequestWorkflow.
    request_id: str
    _plan: Plan | None
    _decision: ObjectionDecision | None
    _decision_owed: int | None  # the mark of its owed record (workflows/owed_steps.py)
    _owed: OwedSteps
    _require_open: Callable[..., None]
    state: Callable[[], RequestState]

    @workflow.update
    async def decide_objection(self, decision: ObjectionDecision) -> RequestState:
        self._decision = decision
        recorded = event_record(self.request_id, "objection.decided", "objection-decision",
                                {"compelling_grounds": decision.compelling_grounds,
                                 "explanation": decision.explanation}, decision.actor)
        if workflow.patched(OWED_STEPS):
            # Taken now; the main line goes on once it is on record (workflows/owed_steps.py).
            self._decision_owed = self._owed.owe(record("record_event", recorded))
            await self._owed.until_done_or_troubled(self._decision_owed)
            return self.state()
        await run_step("record_event", recorded)
        return self.state()

    @decide_objection.validator
    def _validate_decision(self, decision: ObjectionDecision) -> None:
        self._require_open()
        if not self._needs_decision() or self._decision is not None:
            raise ValueError("this request is not an objection awaiting a decision")

    def _decided(self) -> bool:
        """The objection is decided, and the decision on record (older histories: once taken)."""
        mark = self._decision_owed
        return self._decision is not None and (mark is None or self._owed.done(mark))

    def _needs_decision(self) -> bool:
        plan = self._plan
        return (plan is not None and plan.request_type == "objection"
                and any(t.scope == "legitimate_interest" for t in plan.tasks))
