"""Recording that staff carried out by hand a held lift the worker's sweep handed them, over REST as
on the console's request page (api/console/lifts_by_hand.py; what it records:
dsrflow/stores/lifts_by_hand.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from api.auth import Staff, require_role
from api.deps import Pool
from api.problems import Problem
from api.staff_writes import LIFT_BY_HAND_ROLE, LiftByHandBody
from dsrflow.stores.lifts_by_hand import (
    LIFTED_BY_HAND,
    LiftByHandRefused,
    lifts_by_hand_outstanding,
    record_lift_by_hand,
    restrict_again,
)
from dsrflow.stores.requests_store import get_request

router = APIRouter(prefix="/v1/requests", tags=["requests"])


@router.get("/{request_id}/lifts-by-hand")
async def list_lifts_by_hand(staff: Annotated[Staff, require_role("agent")], request_id: str,
                             pool: Pool) -> list[dict[str, Any]]:
    """(Any member of staff, as the request page shows them.) The restriction's lifts staff were told to carry out by hand and have not recorded as done:
    per `system`, `since` (when the worker's sweep handed it to staff: the lift was held back by
    another restriction of the subject that then never came into force there, and the system is
    one a person lifts), and `superseded_by` / `restricted_since` where a newer restriction of the
    subject told staff not to lift it (null otherwise). Empty once each is recorded (`record-lift-by-hand`)."""
    if await get_request(pool, request_id) is None:
        raise Problem(404, "Not found", f"There is no request {request_id}.")
    return await lifts_by_hand_outstanding(pool, request_id)


@router.post("/{request_id}/record-lift-by-hand", status_code=201)
async def record_lift_by_hand_endpoint(staff: Annotated[Staff, require_role(LIFT_BY_HAND_ROLE)], request_id: str,
                                       body: LiftByHandBody, pool: Pool) -> dict[str, Any]:
    """Record that staff lifted a restriction at a system by hand, where the worker's sweep handed
    them its held lift (the timeline's "tell it the restriction has ended"; `lifts-by-hand` lists
    those outstanding): an audit event `restriction.lifted_by_hand` with the system, the `note`
    (how and when; kept in the trail and the evidence pack, never logged) and who, shown in the
    timeline and the evidence pack's restriction; a newer restriction of the subject no longer
    tells staff not to lift it. Where one already had (`lifts-by-hand`'s `superseded_by`), it is
    still recorded (staff lifted before they were told), with `after_restriction` and
    `restricted_since`, and the answer's `restrict_again` tells staff to restrict the system again. Allowed on a closed request (the lift's request is). Once per
    request and system: a second is refused (409, naming it). 409 too where no lift by hand is
    outstanding at that system; 422 naming the field for a malformed system or an empty or
    oversized note; 404 for no such request."""
    try:
        data = await record_lift_by_hand(pool, request_id, body.system, body.note, actor=staff.actor)
    except LiftByHandRefused as refused:
        raise _problem(refused) from None
    answer = {"request_id": request_id, "event_type": LIFTED_BY_HAND, **data}
    if data.get("after_restriction"):  # staff lifted it after a newer restriction: they restrict it again
        answer["restrict_again"] = restrict_again(data["after_restriction"], body.system)
    return answer


def _problem(refused: LiftByHandRefused) -> Problem:
    if refused.field is not None:
        return Problem(refused.status, "Invalid request", refused.said(),
                       errors=[{"field": refused.field, "message": str(refused)}])
    return Problem(refused.status, "Not found" if refused.status == 404 else "Refused", refused.said())
