"""The UK GDPR's month to answer starts once the identity is verified (DESIGN.md, Deadlines; the
ICO's guidance on the right of access): a request's workflow registers it with dates counted from
receipt, and once the subject has verified by code, the dates are counted again from that day
(activities/lifecycle.py `start_clock_at_verification`, which stores and audits them). An attested
request is verified at receipt, so its dates stand; under any other law the clock runs from receipt
(GDPR Art. 12(3)), and a UK complaint to us counts from its own receipt (DPA 2018 s. 164A).

Deterministic like the workflow that calls it: one step, asked for behind CLOCK_AT_VERIFICATION.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.verification_clock import ClockStarted, VerifiedAt
    from schemas.vocabulary import Regime
    from schemas.workflow import RequestFacts
    from workflows.dsr_steps import run_step

# workflow.patched id: before it, a UK request kept the dates counted from receipt once verified
# (earlier than the law's, so never late, but not the rule DESIGN.md states).
CLOCK_AT_VERIFICATION = "uk-clock-at-verification"


async def clock_from_verification(facts: RequestFacts, policy_version: str, verified_at: datetime) -> RequestFacts:
    """`facts` with the dates counted from the day of `verified_at`, the instant the subject's code
    was accepted, where the request's law starts its clock there (UK GDPR); else `facts` as they
    were. The deadline watch sees the new dates through the workflow's current checkpoints."""
    if facts.regime != Regime.uk_gdpr or not workflow.patched(CLOCK_AT_VERIFICATION):
        return facts  # asked of UK requests only: the others' histories carry no marker
    started: ClockStarted | None = await run_step(
        "start_clock_at_verification",
        VerifiedAt(request_id=facts.request_id, policy_version=policy_version, verified_at=verified_at),
        # Nothing staff could do by other means: a failure waits for them to retry it.
        result_type=ClockStarted, skippable=False)
    if started is None:  # a UK complaint to us: its clock is the complaint's receipt
        return facts
    return facts.model_copy(update={"due_date": started.due_date, "extended_due_date": started.extended_due_date,
                                    "due": started.due, "extended": started.extended})
