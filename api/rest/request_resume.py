"""Resuming a request whose workflow ended while the request was open, over REST as on the
console's request page (api/console/request_resume.py; what it does: dsrflow/domain/request_resume.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from api.auth import Staff, require_role
from api.deps import State
from api.problems import Problem
from api.staff_writes import RESUME_ROLE, ResumeBody
from dsrflow.domain.request_resume import ResumeRefused, resume_request
from dsrflow.stores.requests_store import get_request

router = APIRouter(prefix="/v1/requests", tags=["requests"])


@router.post("/{request_id}/resume")
async def resume_endpoint(staff: Annotated[Staff, require_role(RESUME_ROLE)], request_id: str, body: ResumeBody,
                          state: State) -> dict[str, Any]:
    """Resume an open request whose workflow ended (failed, was terminated or timed out): the
    queue shows it needing attention, with step `workflow`, and every other action on it answers
    409 until then. It carries on from where it stopped, with what it had done and been told; a
    step done again takes effect once (a letter goes once, a system's result is kept). Fix the
    cause first (`GET /v1/requests/{id}/events` and its history in Temporal say what it was).
    409 while its workflow runs, once the request is closed (unless its restriction is on record and
    not yet lifted: its workflow lifts it), or when resuming cannot help (a
    workflow that completed without closing it). The answer names the new run (`run_id`), how the
    earlier one ended (`ended`) and the workflow task it resumed from (`from_event`)."""
    if await get_request(await state.db(), request_id) is None:
        raise Problem(404, "Not found", f"no request {request_id}")
    try:
        resumed = await resume_request(await state.temporal(), await state.db(), request_id, actor=staff.actor,
                                       reason=body.reason)
    except ResumeRefused as refused:
        raise Problem(refused.status, "Not found" if refused.status == 404 else "Refused", str(refused)) from None
    return {"request_id": request_id, "run_id": resumed.run_id, "ended": resumed.ended,
            "from_event": resumed.from_event}
