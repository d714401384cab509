"""One decision per refusal: an appeal (a UK complaint) claims the refusal it reconsiders as it
starts being decided, once its subject has confirmed it (or at once where staff attested it). The
first appeal of a refusal to claim it is decided; a later one, confirmed too late or at the same
instant from another browser, is closed as cancelled and never reaches the decisions of one in
progress (compliance's approval queue, the systems, an outcome letter): its letter names the appeal
that answers it (activities/appeal_claims.py decides and records it under a lock on the refusal).
Before, the intake alone refused a second appeal, and one awaiting confirmation did not count, so two
appeals confirmed one after the other were both decided.

Deterministic like the workflow that calls it: one step, on the path of an appeal prepared with
this code only (other requests' histories carry no marker: ONE_DECISION_PER_REFUSAL)."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.appeal_claims import AppealClaim, AppealTaken
    from schemas.requests import RequestStatus
    from schemas.workflow import RequestFacts
    from workflows.dsr_steps import run_step, send_letter, transition_record

# Patch id: appeals prepared before it carry no `appeal_of`, and were decided however many of one
# refusal were confirmed. The facts decide, since the worker that prepares a request runs its
# workflow too; the marker is deprecated (`workflow.deprecate_patch`), as
# complaint_progress.COMPLAINT_PROGRESS is and for the same reason: an attested appeal asks it right
# after the preparing local activity, and a `patched` call asked in the activation that result
# straddled into from the first task is answered False on replay (workflows/step_trouble.py
# `controller_zone`). Histories recorded with the marker still replay.
ONE_DECISION_PER_REFUSAL = "one-decision-per-refusal"


async def decided_once(facts: RequestFacts, status: RequestStatus, verified_by: str | None,
                       set_status: Callable[..., None], closed: Callable[[], bool]) -> bool:
    """Whether the request goes on to be decided: True for any but an appeal, and for the appeal
    that claims its refusal (then in progress, recorded with the claim); False, with the closing
    recorded, the status set and the letter sent, when another appeal of it is decided instead, or
    when staff closed the request meanwhile."""
    if facts.appeal_of is None:
        return True
    workflow.deprecate_patch(ONE_DECISION_PER_REFUSAL)  # the facts decide (above)
    moving = status != RequestStatus.in_progress
    change = (transition_record(facts.request_id, RequestStatus.in_progress, "in_progress", {"verified_by": verified_by})
              if moving else None)
    taken: AppealTaken | None = await run_step(
        "claim_appeal_decision", AppealClaim(request_id=facts.request_id, in_progress=change),
        result_type=AppealTaken, skippable=False)
    if closed():
        return False  # staff's close came first: theirs is the record and the letter
    if taken is None:
        if moving:
            set_status(RequestStatus.in_progress)  # recorded with the claim
        return True
    set_status(RequestStatus.cancelled, taken.reason)
    # A cancellation by us, which refuses nothing the subject asked but to have this appeal decided
    # apart: its letter names the appeal that is (or was) decided, and what the subject may do next.
    await send_letter(facts.request_id, "cancellation", params={
        "reason": taken.reason, "withdrawn": False, "acted_in": [], "asked_in": [],
        "decided_as": taken.decided_as, "decided": taken.decided})
    return False
