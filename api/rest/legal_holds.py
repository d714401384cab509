"""Legal-claims holds (Art. 17(3)(e) GDPR): compliance places one on a subject, optionally limited
to some systems or categories, with a reason and a review date; erasure keeps what it covers.
Releasing a hold, saying why the claim ended, starts the sweep that erases what the hold kept."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import EmailStr, ValidationError

from api.auth import Staff, require_role
from api.deps import Pool, State
from api.erasure_sweeps import release_and_sweep
from api.legal_hold_body import HoldRelease, NewLegalHold, hold_context
from api.problems import Problem
from api.read_models.staff_reach import LEGAL_CLAIMS_HOLDS, READABLE_BY
from api.state import AppState
from dsrflow.crypto.hashing import subject_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.infra.logging import get_logger
from dsrflow.stores.holds_store import (
    HoldIdempotencyConflict,
    get_hold,
    list_holds,
    place_hold,
    resolve_customer_email,
)

router = APIRouter(prefix="/v1/legal-holds", tags=["legal holds"])
log = get_logger("dsrflow.api.legal_holds")

def _error(field: str, message: str) -> dict[str, Any]:
    return {"loc": ("body", field), "msg": message, "type": "value_error"}


async def _validated(request: Request, state: AppState) -> tuple[NewLegalHold, str]:
    """The body checked against the current policy, and the subject's e-mail address."""
    try:
        raw = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestValidationError([{"loc": ("body",), "msg": "not valid JSON", "type": "json_invalid"}]) from None
    policy = state.policy.policy
    context = hold_context(policy)
    errors: list[dict[str, Any]] = []
    hold: NewLegalHold | None = None
    try:
        hold = NewLegalHold.model_validate(raw, context=context)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
    bad = {e["loc"][1] for e in errors if len(e["loc"]) > 1}
    given = raw if isinstance(raw, dict) else {}
    email = str(hold.email) if hold and hold.email else None
    if not given.get("email") and not given.get("customer_id"):
        if "email" not in bad and "customer_id" not in bad:
            errors.append(_error("email", "name the subject: give email or customer_id"))
    elif not given.get("email") and "customer_id" not in bad:
        # Only the customer id: the address comes from a request that named both.
        email = await resolve_customer_email(await state.db(), str(given["customer_id"]).strip())
        if email is None:
            errors.append(_error("customer_id", "no request names this customer id; give the subject's email"))
    if errors:
        raise RequestValidationError(errors)
    assert hold is not None and email is not None
    return hold, email


def _view(hold: dict[str, Any]) -> dict[str, Any]:
    return jsonable_encoder({
        "id": hold["id"],
        "subject": {"email": hold["subject_email"], "customer_id": hold["customer_id"]},
        "systems": hold["systems"],
        "categories": hold["categories"],
        "basis": hold["basis"],
        "reason": hold["reason"],
        "review_date": hold["review_date"],
        "placed_at": hold["placed_at"],
        "placed_by": hold["placed_by"],
        "released_at": hold["released_at"],
        "released_by": hold["released_by"],
        # Why the claim ended; None on a hold released before a release said why (migration 0053).
        "release_reason": hold["release_reason"],
        "active": hold["active"],
    })


@router.post(
    "", status_code=201,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": NewLegalHold.model_json_schema()}}}},
)
async def place(staff: Annotated[Staff, require_role("compliance")], request: Request, state: State,
                idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> JSONResponse:
    """Place a legal-claims hold. The subject need not have filed a request: give their e-mail
    address, or a customer id an earlier request ties to one. Repeating the call with the same
    `Idempotency-Key` header (after an answer that never came) returns the hold it placed (200)
    instead of placing a second one; the key used for another hold is refused (409)."""
    body, email = await _validated(request, state)
    try:
        async with (await state.db()).acquire() as conn:
            hold, placed = await place_hold(
                conn, secret=load_secret_key(state.settings), email=email, customer_id=body.customer_id,
                systems=body.systems, categories=body.categories, basis=body.basis, reason=body.reason,
                review_date=body.review_date, actor=staff.actor, idempotency_key=idempotency_key,
            )
    except HoldIdempotencyConflict as exc:
        raise Problem(409, "Idempotency key reused", str(exc)) from None
    return JSONResponse(_view(hold), status_code=201 if placed else 200)


@router.get("")
async def index(
    staff: Annotated[Staff, require_role(READABLE_BY[LEGAL_CLAIMS_HOLDS])],
    state: State,
    pool: Pool,
    active: Annotated[bool | None, Query(description="true: only active holds; false: only released ones")] = None,
    email: Annotated[EmailStr | None, Query(description="only holds on this subject")] = None,
) -> dict[str, Any]:
    holds = await list_holds(
        pool, active_only=active is True, released_only=active is False,
        subject_hash=subject_hash(load_secret_key(state.settings), str(email)) if email else None,
    )
    return {"holds": [_view(h) for h in holds]}


@router.get("/{hold_id}")
async def read(staff: Annotated[Staff, require_role(READABLE_BY[LEGAL_CLAIMS_HOLDS])], hold_id: str,
               pool: Pool) -> dict[str, Any]:
    hold = await get_hold(pool, hold_id)
    if hold is None:
        raise Problem(404, "Not found", f"no legal hold {hold_id}")
    return _view(hold)


@router.delete(
    "/{hold_id}", status_code=204,
    responses={202: {"description": "Released, but the erasure sweep could not start; repeat the call"}},
)
async def release(staff: Annotated[Staff, require_role("compliance")], hold_id: str, state: State,
                  body: Annotated[HoldRelease | None, Body()] = None) -> Response:
    """Release a hold, saying why the claim ended (`reason` in the body, kept with the release; a
    call without a body records none, as DELETE took no body before a release said why), then
    start erasing what it kept. Releasing again changes nothing (the first reason stands) but
    starts the sweep again if it could not start before."""
    hold, sweep_failed = await release_and_sweep(state, await state.db(), hold_id, staff.actor,
                                                 reason=body.reason if body else None)
    if hold is None:
        raise Problem(404, "Not found", f"no legal hold {hold_id}")
    if sweep_failed is not None:
        return JSONResponse(
            {**_view(hold), "sweep_started": False,
             "note": f"the hold is released but the erasure sweep could not start ({sweep_failed}); "
                     f"repeat DELETE /v1/legal-holds/{hold['id']} to start it"},
            status_code=202,
        )
    return Response(status_code=204)
