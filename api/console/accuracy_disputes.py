"""A subject's dispute of the accuracy of their data, recorded on the console's request page of a
correction decided (denied or answered): compliance types or pastes the statement the subject sent
(what it records: dsrflow/stores/accuracy_disputes.py; REST: api/rest/accuracy_disputes.py). The
form posts plainly and comes back to the page, outside the live region, so a poll never swaps a
half-written statement away."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from api.auth import ConsoleForbidden, Staff, require_console_role
from api.console.panels import back_to_panel, form_problems, request_or_404
from api.console.refusals import outcome_params, refusal_params
from api.deps import State
from api.forms import read_form
from api.pages import problem_pages
from api.request_form import SUBMISSION
from api.staff_writes import DISPUTE_ROLE
from dsrflow.stores.accuracy_disputes import DisputeRefused, record_dispute
from schemas.accuracy_dispute import STATEMENT_MAX, DisputeStatement

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))

RECORDED = "Recorded: the subject's statement is in the request's timeline and evidence pack."


def dispute_context(staff: Staff, request: dict[str, Any], done: str | None, error: str | None) -> dict[str, Any]:
    """The request page's panel: offered to compliance on a correction decided (the refusal's
    letter offers it to the subject). `error`: a signed refusal."""
    decided = request.get("type") == "rectification" and request.get("status") in ("denied", "completed")
    return {"may_record_dispute": decided and staff.has_role(DISPUTE_ROLE), "dispute_max": STATEMENT_MAX,
            "dispute_submission": uuid.uuid4().hex, "dispute_done": RECORDED if done else None,
            "dispute_error": error}


@router.post("/requests/{request_id}/record-dispute")
async def record(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                 state: State) -> Response:
    if not staff.has_role(DISPUTE_ROLE):
        raise ConsoleForbidden("Forbidden", f"recording a dispute needs the {DISPUTE_ROLE} role; you are {staff.role}")
    await request_or_404(await state.db(), request_id)
    form = await read_form(request)
    # The page's one-time key: a double click or a resubmitted page records the statement once.
    submission = str(form.get("submission", "")).strip()
    try:
        body = DisputeStatement.model_validate({"statement": str(form.get("statement", "")).strip()})
        await record_dispute(await state.db(), request_id, body.statement, actor=staff.actor,
                             once=f"form:{submission}" if SUBMISSION.match(submission) else None)
    except ValidationError as exc:
        return back_to_panel(request_id, "accuracy-dispute", **refusal_params(state.settings, "dispute_error",
                                                                                form_problems(exc)))
    except DisputeRefused as refused:
        return back_to_panel(request_id, "accuracy-dispute", **refusal_params(state.settings, "dispute_error", str(refused)))
    return back_to_panel(request_id, "accuracy-dispute", **outcome_params(state.settings, request_id, "dispute_done", "1"))
