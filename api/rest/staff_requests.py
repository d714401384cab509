"""Staff REST for requests: open, read, review the package, and the staff actions on a running
request (one endpoint per action of api/staff_actions.py)."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from api.auth import Staff, require_role
from api.deps import Limiter, Pool, State
from api.problems import Problem
from api.read_models.staff_reach import may_read, readable_view
from api.rest.openapi_examples import NEW_REQUEST, REQUEST_VIEW, json_response
from api.service import live_state, request_view, require_step_shown, run_update
from api.staff_actions import STAFF_ACTIONS, StaffAction
from api.staff_bodies import resent_since
from api.staff_opens import open_as_staff
from api.staff_writes import CONSOLE_KEYS
from api.state import AppState
from dsrflow.crypto.keys import load_secret_key
from dsrflow.crypto.package_files import read_package
from dsrflow.domain.audit import append_event
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.team_store import request_by_reference
from schemas.clock_start import clock_waits_for_verification
from schemas.requests import NewRequest

router = APIRouter(prefix="/v1/requests", tags=["requests"])
_VIEW: dict[int | str, dict[str, Any]] = {
    200: json_response(REQUEST_VIEW, "The request, its deadlines and live workflow state")}


@router.post("", status_code=201, responses={
    201: json_response(REQUEST_VIEW, "Opened"), 200: json_response(REQUEST_VIEW, "Already opened with this key")})
async def create(
    staff: Annotated[Staff, require_role("agent")],
    body: Annotated[NewRequest, Body(openapi_examples=NEW_REQUEST)],
    state: State,
    limiter: Limiter,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Open a request. Repeating the call with the same `Idempotency-Key` header (or the same
    `client_request_id`) returns the same request instead of opening a second one. The answer is
    the stored request; `GET /v1/requests/{id}` adds its workflow's live state. A key starting
    `mailbox:` or `console:` is refused (422): the console's own keys. One token opens at most
    DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN requests (200 an hour): past it 429, nothing stored, and a
    repeat is not counted (api/staff_opens.py)."""
    if idempotency_key is not None and idempotency_key.startswith(CONSOLE_KEYS):
        # Quoted: each prefix ends in a colon, and "console:: the console ..." read as a typo.
        refused = f"must not start with {' or '.join(map(repr, CONSOLE_KEYS))}: the console opens requests under those keys"
        raise Problem(422, "Invalid request", f"Idempotency-Key: {refused}",
                      errors=[{"field": "Idempotency-Key", "message": refused}])
    row, created = await open_as_staff(state, limiter, staff, body, idempotency_key=idempotency_key)
    # Not the workflow's state: started a moment ago, it would have nothing to say yet, and asking
    # it costs the engine and a worker a query for every request opened.
    view = _with_clock(await request_view(state, str(row["id"]), live_too=False, opened=row if created else None))
    return JSONResponse(jsonable_encoder(view), status_code=201 if created else 200)


@router.get("/{request_id}", responses=_VIEW)
async def read(staff: Annotated[Staff, require_role("agent")], request_id: str, state: State) -> dict[str, Any]:
    """The request by its id, its workflow id (`dsr-<id>`) or its short `reference`."""
    found = await request_by_reference(await state.db(), request_id[:100])
    return await _view(staff, state, found or request_id)


async def _view(staff: Staff, state: AppState, request_id: str) -> dict[str, Any]:
    """The request as the caller may read it (api/read_models/staff_reach.py)."""
    view = _with_clock(await request_view(state, request_id))
    return jsonable_encoder(await readable_view(await state.db(), partial(may_read, staff.has_role), view))


def _with_clock(view: dict[str, Any]) -> dict[str, Any]:
    """`view` with `due_dates_provisional`, as the queue's items say it: a UK GDPR request awaiting
    verification, whose dates (counted from receipt) move later once its subject verifies. A
    script reading one request read its receipt's count as the due date, the queue's flag aside."""
    return {**view, "due_dates_provisional": clock_waits_for_verification(
        view["regime"], view["status"], appeal=bool((view["details"] or {}).get("appeal_of")))}


@router.get("/{request_id}/package", response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}}, "description": "the package (zip)"}})
async def package(staff: Annotated[Staff, require_role("compliance")], request_id: str, state: State,
                  pool: Pool) -> StreamingResponse:
    """The access or portability package as the subject will receive it, for review before
    approval. Each download is audited (`package.reviewed`)."""
    row = await get_request(pool, request_id)
    found = row and await pool.fetchrow(
        "SELECT id, request_id, kind, path, purged_at, purge_reason FROM packages WHERE request_id = $1 "
        "ORDER BY created_at DESC LIMIT 1",
        row["id"])
    if not found:
        raise Problem(404, "Not found", f"no package for request {request_id}")
    if found["purged_at"] is not None:
        raise Problem(410, "Package deleted", f"the package's file was deleted ({found['purge_reason']}) on "
                      f"{found['purged_at']:%Y-%m-%d}; the audit trail records it")
    # A key of its own per download: keyed by token and package, only a member of staff's first
    # download was recorded, and one months later (the request long answered) left no trace.
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{found['request_id']}:reviewed:{found['id']}:{uuid.uuid4()}",
                           request_id=request_id, event_type="package.reviewed", actor=staff.actor,
                           data={"package_id": str(found["id"])})
    chunks = read_package(state.storage.blocks(found["path"]), load_secret_key(state.settings), str(found["id"]))
    return StreamingResponse(chunks, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{found["kind"]}-{request_id[:8]}-review.zip"',
        "Cache-Control": "no-store"})


def _action_endpoint(action: StaffAction) -> Callable[..., Any]:
    """`POST /v1/requests/{id}/<action>`: the action's body as JSON, its role required; answers
    the request as it is afterwards, or 409 with the workflow's reason for refusing."""

    async def endpoint(staff: Staff, request_id: str, state: AppState, body: BaseModel | None = None,
                       idempotency_key: str | None = None) -> dict[str, Any]:
        if refused := action.refusal_for(body, staff.has_role, staff.role):
            raise Problem(403, "Forbidden", refused)
        if unfit := action.unfit_for(await get_request(await state.db(), request_id), body):
            raise unfit
        answers_step, step = action.step_answered(body)
        if answers_step and step is not None:  # optional here: scripts written before it answer any step
            await require_step_shown(state, request_id, step)
        if action.sends_codes() and (
                resent := resent_since(action.round_shown(body), await live_state(state, request_id))):
            raise resent
        # A prefix the console's keys never hold (StaffAction.once_from_form), so no caller's key stands for a press.
        once = f"header:{idempotency_key}" if idempotency_key else None
        await run_update(state, request_id, action.update, action.workflow_input(body, staff.actor, once))
        return await _view(staff, state, request_id)

    # FastAPI reads parameters from the signature: give it this action's body model and role
    # (the role first, so that a refused caller reaches nothing else).
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [inspect.Parameter("staff", keyword, annotation=Annotated[Staff, require_role(action.role)]),
                  inspect.Parameter("request_id", keyword, annotation=str),
                  inspect.Parameter("state", keyword, annotation=State)]
    if action.body is not None:
        parameters.append(inspect.Parameter("body", keyword, annotation=action.body) if action.body_required
                          else inspect.Parameter("body", keyword, annotation=action.body | None, default=None))
    if action.keyed:
        parameters.append(inspect.Parameter("idempotency_key", keyword, default=None,
                                            annotation=Annotated[str | None, Header(max_length=200)]))
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=dict[str, Any])  # type: ignore[attr-defined]
    return endpoint


for _action in STAFF_ACTIONS.values():
    router.add_api_route(f"/{{request_id}}/{_action.name}", _action_endpoint(_action), methods=["POST"],
                         name=_action.name.replace("-", "_"), description=_action.description, responses=_VIEW)
