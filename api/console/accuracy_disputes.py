"""A subject's dispute of the accuracy of their data, recorded on the console's request page of a
correction decided (denied or answered): compliance types or pastes the statement the subject sent
(what it records: dsrflow/stores/accuracy_disputes.py; REST: api/rest/accuracy_disputes.py). The
form posts plainly and comes back to the page, outside the live region, so a poll never swaps a
half-written statement away. Once a dispute is recorded, the panel says its recipients are still
to be told of it until compliance records, with its second form, that they were (or that none
received the contested data)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.auth import ConsoleForbidden, Staff, require_console_role
from api.console.panels import back_to_panel, form_problems, request_or_404
from api.console.refusals import outcome_params, refusal_params
from api.deps import State
from api.forms import read_form
from api.pages import problem_pages
from api.request_form import SUBMISSION
from api.staff_writes import DISPUTE_ROLE
from api.state import AppState
from dsrflow.stores.accuracy_disputes import DisputeRefused, record_dispute, record_told
from schemas.accuracy_dispute import STATEMENT_MAX, TOLD_NOTE_MAX, DisputeStatement, DisputeTold

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))

RECORDED = "Recorded: the subject's statement is in the request's timeline and evidence pack."
TOLD_RECORDED = "Recorded: who was told of the dispute is in the request's timeline and evidence pack."
# The panel's outcomes, by the value its forms carry back (`dispute_done`).
_DONE = {"1": RECORDED, "told": TOLD_RECORDED}


def dispute_context(staff: Staff, page: dict[str, Any], done: str | None, error: str | None) -> dict[str, Any]:
    """The request page's panel (`page`: the page's context, its request `r` and evidence `pack`):
    offered to compliance on a correction decided (the refusal's letter offers it to the subject);
    once a dispute is recorded, whether telling its recipients is owed, and the form recording it.
    `error`: a signed refusal."""
    request = page["r"]
    decided = request.get("type") == "rectification" and request.get("status") in ("denied", "completed")
    dispute = page["pack"]["decisions"].get("accuracy_dispute")
    may = staff.has_role(DISPUTE_ROLE)
    return {"may_record_dispute": decided and may, "dispute_max": STATEMENT_MAX,
            "dispute_submission": uuid.uuid4().hex, "dispute_done": _DONE.get(done or ""),
            "dispute_error": error, "dispute": dispute, "may_record_told": bool(dispute) and may,
            "told_max": TOLD_NOTE_MAX}


@router.post("/requests/{request_id}/record-dispute")
async def record(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                 state: State) -> Response:
    async def statement(form: FormData, once: str | None) -> None:
        body = DisputeStatement.model_validate({"statement": str(form.get("statement", "")).strip()})
        await record_dispute(await state.db(), request_id, body.statement, actor=staff.actor, once=once)

    return await _by_form(staff, request, request_id, state, "recording a dispute", statement, done="1")


@router.post("/requests/{request_id}/record-dispute-told")
async def record_told_by_form(staff: Annotated[Staff, require_console_role("agent")], request: Request,
                              request_id: str, state: State) -> Response:
    async def told(form: FormData, once: str | None) -> None:
        # Ticked boxes arrive as repeated `recipients`; "none received it" as its own box.
        body = DisputeTold.model_validate({"recipients": [str(key) for key in form.getlist("recipients")],
                                           "none_to_tell": form.get("none_to_tell") == "yes",
                                           "note": str(form.get("note", "")).strip()})
        await record_told(await state.db(), request_id, body.recipients, none_to_tell=body.none_to_tell,
                          note=body.note, actor=staff.actor, once=once)

    return await _by_form(staff, request, request_id, state, "recording who was told of a dispute", told, done="told")


async def _by_form(staff: Staff, request: Request, request_id: str, state: AppState, doing: str,
                   recording: Callable[[FormData, str | None], Awaitable[None]], *, done: str) -> Response:
    """Either form of the panel: compliance's only (a forged post from an agent's session is
    refused); what `recording` refuses comes back to the panel, signed, as does its outcome `done`."""
    if not staff.has_role(DISPUTE_ROLE):
        raise ConsoleForbidden("Forbidden", f"{doing} needs the {DISPUTE_ROLE} role; you are {staff.role}")
    await request_or_404(await state.db(), request_id)
    form = await read_form(request)
    # The page's one-time key: a double click or a resubmitted page records it once.
    submission = str(form.get("submission", "")).strip()
    try:
        await recording(form, f"form:{submission}" if SUBMISSION.match(submission) else None)
    except ValidationError as exc:
        return back_to_panel(request_id, "accuracy-dispute", **refusal_params(state.settings, "dispute_error",
                                                                                form_problems(exc)))
    except DisputeRefused as refused:
        return back_to_panel(request_id, "accuracy-dispute", **refusal_params(state.settings, "dispute_error", str(refused)))
    return back_to_panel(request_id, "accuracy-dispute", **outcome_params(state.settings, request_id, "dispute_done", done))
