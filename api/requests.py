"""Staff REST for requests: open, read, and the compliance actions on a running request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from activities.packages import read_package
from api.auth import Staff, require_role
from api.fields import Text
from api.openapi_examples import NEW_REQUEST, REQUEST_VIEW, json_response
from api.problems import Problem
from api.service import open_request, request_view, run_update
from dsrflow.audit import append_event
from dsrflow.keys import load_secret_key
from dsrflow.requests_store import get_request
from schemas.requests import DenialReason, NewRequest
from schemas.workflow import (
    ApproveInput,
    CancelInput,
    DenyInput,
    ExtendInput,
    ObjectionDecision,
    ResendInput,
    ResolveTaskInput,
    RetryTaskInput,
)
from workflows.dsr import DataSubjectRequestWorkflow

router = APIRouter(prefix="/v1/requests", tags=["requests"])


class ExtendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(min_length=10, max_length=4000, examples=["Request covers six systems and 9 years of records"])


class DenyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason_code: DenialReason
    explanation: Text = Field(min_length=10, max_length=4000,
                              examples=["This is the fourth identical request in a month; we answered on 2 March"])


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(min_length=3, max_length=4000, examples=["Subject withdrew the request by phone"])


def _state(request: Request):
    return request.app.state.dsr


_VIEW = {200: json_response(REQUEST_VIEW, "The request, its deadlines and live workflow state")}


@router.post("", status_code=201, responses={
    201: json_response(REQUEST_VIEW, "Opened"), 200: json_response(REQUEST_VIEW, "Already opened with this key")})
async def create(
    body: Annotated[NewRequest, Body(openapi_examples=NEW_REQUEST)],
    request: Request,
    staff: Staff = require_role("agent"),
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Open a request. Repeating the call with the same `Idempotency-Key` header (or the same
    `client_request_id`) returns the same request instead of opening a second one."""
    state = _state(request)
    row, created = await open_request(
        state, body, actor=staff.actor, idempotency_key=idempotency_key, origin="staff"
    )
    view = await request_view(state, str(row["id"]))
    return JSONResponse(jsonable_encoder(view), status_code=201 if created else 200)


@router.get("/{request_id}", responses=_VIEW)
async def read(request_id: str, request: Request, staff: Staff = require_role("agent")) -> dict[str, Any]:
    return jsonable_encoder(await request_view(_state(request), request_id))


async def _act(request: Request, request_id: str, update: Any, arg: Any) -> dict[str, Any]:
    state = _state(request)
    await run_update(state, request_id, update, arg)
    return jsonable_encoder(await request_view(state, request_id))


@router.post("/{request_id}/extend", responses=_VIEW)
async def extend(request_id: str, body: ExtendBody, request: Request,
                 staff: Staff = require_role("compliance")) -> dict[str, Any]:
    """Extend the deadline once, before the due date, with the reason sent to the subject."""
    return await _act(request, request_id, DataSubjectRequestWorkflow.extend,
                      ExtendInput(reason=body.reason, actor=staff.actor))


@router.post("/{request_id}/deny", responses=_VIEW)
async def deny(request_id: str, body: DenyBody, request: Request,
               staff: Staff = require_role("compliance")) -> dict[str, Any]:
    """Refuse the request (Art. 12(4)/(5)); the subject gets the reasons and their remedies."""
    return await _act(request, request_id, DataSubjectRequestWorkflow.deny,
                      DenyInput(reason_code=body.reason_code, explanation=body.explanation,
                                actor=staff.actor))


@router.post("/{request_id}/cancel", responses=_VIEW)
async def cancel(request_id: str, body: CancelBody, request: Request,
                 staff: Staff = require_role("agent")) -> dict[str, Any]:
    return await _act(request, request_id, DataSubjectRequestWorkflow.cancel,
                      CancelInput(reason=body.reason, actor=staff.actor))


@router.post("/{request_id}/resend-verification", responses=_VIEW)
async def resend_verification(request_id: str, request: Request,
                              staff: Staff = require_role("agent")) -> dict[str, Any]:
    """Send the subject a new code and link; the earlier ones stop working and attempts reset."""
    return await _act(request, request_id, DataSubjectRequestWorkflow.resend_verification,
                      ResendInput(actor=staff.actor))


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Text | None = Field(None, max_length=2000, examples=["Package checked: 4 systems, no third-party data"])


@router.post("/{request_id}/approve", responses=_VIEW)
async def approve(request_id: str, request: Request, body: ApproveBody | None = None,
                  staff: Staff = require_role("compliance")) -> dict[str, Any]:
    """Release a response the policy holds for compliance (status `awaiting_approval`): the
    response letter, with the package link for access and portability, goes out now. Review the
    package first with `GET /v1/requests/{id}/package`; refuse with `deny` instead."""
    return await _act(request, request_id, DataSubjectRequestWorkflow.approve,
                      ApproveInput(note=body.note if body else None, actor=staff.actor))


@router.get("/{request_id}/package", response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}}, "description": "the package (zip)"}})
async def package(request_id: str, request: Request, staff: Staff = require_role("compliance")) -> StreamingResponse:
    """The access or portability package as the subject will receive it, for review before
    approval. Each download is audited (`package.reviewed`)."""
    state = _state(request)
    pool = await state.db()
    row = await get_request(pool, request_id)
    found = row and await pool.fetchrow(
        "SELECT id, kind FROM packages WHERE request_id = $1 ORDER BY created_at DESC LIMIT 1", row["id"])
    if not found:
        raise Problem(404, "Not found", f"no package for request {request_id}")
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{request_id}:reviewed:{found['id']}:{staff.token_id}",
                           request_id=request_id, event_type="package.reviewed", actor=staff.actor,
                           data={"package_id": str(found["id"])})
    chunks = read_package(state.settings.home, load_secret_key(state.settings), str(found["id"]))
    return StreamingResponse(chunks, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{found["kind"]}-{request_id[:8]}-review.zip"',
        "Cache-Control": "no-store"})


class TaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system: Text = Field(min_length=1, max_length=64, examples=["billing"])


class ResolveBody(TaskBody):
    note: Text = Field(min_length=5, max_length=2000, examples=["Told the provider by e-mail, ticket 88"])


@router.post("/{request_id}/retry-task", responses=_VIEW)
async def retry_task(request_id: str, body: TaskBody, request: Request,
                     staff: Staff = require_role("compliance")) -> dict[str, Any]:
    """Run a system's task again after it needed attention (e.g. once the system is back)."""
    return await _act(request, request_id, DataSubjectRequestWorkflow.retry_task,
                      RetryTaskInput(system=body.system, actor=staff.actor))


@router.post("/{request_id}/resolve-task", responses=_VIEW)
async def resolve_task(request_id: str, body: ResolveBody, request: Request,
                       staff: Staff = require_role("compliance")) -> dict[str, Any]:
    """Record that staff carried out a system's action by other means."""
    return await _act(request, request_id, DataSubjectRequestWorkflow.resolve_task,
                      ResolveTaskInput(system=body.system, note=body.note, actor=staff.actor))


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    compelling_grounds: bool
    explanation: Text = Field(min_length=10, max_length=4000,
                              examples=["Fraud monitoring of this account is required by our card acquirer"])


@router.post("/{request_id}/decide-objection", responses=_VIEW)
async def decide_objection(request_id: str, body: DecisionBody, request: Request,
                           staff: Staff = require_role("compliance")) -> dict[str, Any]:
    """Decide an objection to legitimate-interest processing: without compelling grounds the
    processing stops in every system; with them, the subject is told why it continues."""
    return await _act(request, request_id, DataSubjectRequestWorkflow.decide_objection,
                      ObjectionDecision(compelling_grounds=body.compelling_grounds,
                                        explanation=body.explanation, actor=staff.actor))
