"""Recording a subject's dispute of the accuracy of their data against a correction we refused,
over REST as on the console's request page (api/console/accuracy_disputes.py; what it records:
dsrflow/stores/accuracy_disputes.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header

from api.auth import Staff, require_role
from api.deps import State
from api.problems import Problem
from api.staff_writes import DISPUTE_ROLE
from dsrflow.stores.accuracy_disputes import DISPUTED, TOLD, DisputeRefused, record_dispute, record_told
from schemas.accuracy_dispute import DisputeStatement, DisputeTold

router = APIRouter(prefix="/v1/requests", tags=["requests"])


@router.post("/{request_id}/record-dispute", status_code=201)
async def record_dispute_endpoint(staff: Annotated[Staff, require_role(DISPUTE_ROLE)], request_id: str,
                                  body: DisputeStatement, state: State,
                                  idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                                  ) -> dict[str, Any]:
    """Record the subject's statement disputing the accuracy of the data a correction (rectification)
    request did not correct, once that request is decided (denied, or answered: refused in part
    perhaps): an audit event `dispute.recorded` with the statement, shown in the request's timeline
    and evidence pack. Its refusal letter offers it under the CCPA (the dispute noted on request,
    with a statement) and PIPEDA (the unresolved challenge recorded). The same `Idempotency-Key`
    again records nothing more. 404 for no such request; 409 for another type of request or one
    not yet decided. That its recipients were told of it: `record-dispute-told`."""
    once = f"header:{idempotency_key}" if idempotency_key else None
    try:
        await record_dispute(await state.db(), request_id, body.statement, actor=staff.actor, once=once)
    except DisputeRefused as refused:
        raise _problem(refused) from None
    return {"request_id": request_id, "event_type": DISPUTED, "statement": body.statement}


@router.post("/{request_id}/record-dispute-told", status_code=201)
async def record_dispute_told_endpoint(staff: Annotated[Staff, require_role(DISPUTE_ROLE)], request_id: str,
                                       body: DisputeTold, state: State,
                                       idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                                       ) -> dict[str, Any]:
    """Record that the recipients of the data a recorded dispute contests were told of it (staff
    tell them by hand: the CCPA's regulations have the dispute noted to any person to whom we
    disclose, share or sell the information; PIPEDA has it made known to third parties having
    access to it): `recipients`, keys of the policy's `recipients` that received data of the
    request's systems (another key: 422 naming it), or `none_to_tell` where none received the
    contested data; and how and when (`note`). An audit event `dispute.recipients_told`, shown in
    the timeline and the evidence pack (`decisions.accuracy_dispute`); until it is recorded the
    request page says it is owed. The same `Idempotency-Key` again records nothing more. 404 for
    no such request; 409 while no dispute is recorded on it."""
    once = f"header:{idempotency_key}" if idempotency_key else None
    try:
        told = await record_told(await state.db(), request_id, body.recipients, none_to_tell=body.none_to_tell,
                                 note=body.note, actor=staff.actor, once=once)
    except DisputeRefused as refused:
        raise _problem(refused) from None
    return {"request_id": request_id, "event_type": TOLD, **told}


def _problem(refused: DisputeRefused) -> Problem:
    if refused.field is not None:  # a body's value the request's policy version refuses
        return Problem(refused.status, "Invalid request", f"{refused.field}: {refused}",
                       errors=[{"field": refused.field, "message": str(refused)}])
    return Problem(refused.status, "Not found" if refused.status == 404 else "Refused", str(refused))
