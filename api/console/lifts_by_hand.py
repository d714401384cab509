"""Held lifts the worker's sweep handed to staff to carry out by hand, on the console's request
page: each outstanding one (system, since when), and for compliance a form per system recording
that it was lifted, with a note saying how (dsrflow/stores/lifts_by_hand.py; REST:
api/rest/lifts_by_hand.py). Every role sees what is outstanding (an agent may be the one who
phones the processor); recording it is compliance's (api/staff_writes.py `LIFT_BY_HAND_ROLE`).
The form posts plainly and comes back to the panel, outside the live region, so a poll never
swaps a half-written note away."""

from __future__ import annotations

from datetime import datetime
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
from api.staff_writes import LIFT_BY_HAND_ROLE, LiftByHandBody
from api.state import AppState
from dsrflow.domain.references import canonical_uuid, short_reference
from dsrflow.stores.lifts_by_hand import (
    LIFT_NOTE_MAX,
    LiftByHandRefused,
    lifts_by_hand_outstanding,
    record_lift_by_hand,
)

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))

RECORDED = "Recorded: the lift by hand is in the request's timeline and evidence pack."
_PANEL = "lifts-by-hand"


async def lifts_by_hand_context(state: AppState, request_id: str, staff: Staff, done: str | None,
                                error: str | None) -> dict[str, Any]:
    """The request page's panel: the lifts by hand outstanding, whether this role may record one,
    and the outcome or refusal of the last press (signed: api/console/refusals.py)."""
    lifts = [lift | ({"superseded_reference": short_reference(lift["superseded_by"]),
                      "restricted_since": datetime.fromisoformat(lift["restricted_since"])}
                     if lift["superseded_by"] else {})
             for lift in await lifts_by_hand_outstanding(await state.db(), request_id)]
    return {"lifts_by_hand": lifts,
            "may_record_lift": staff.has_role(LIFT_BY_HAND_ROLE), "lift_note_max": LIFT_NOTE_MAX,
            "lift_done": RECORDED if done else None, "lift_undid": _undid(done), "lift_error": error}


def _undid(done: str | None) -> dict[str, str] | None:
    """After recording a lift a newer restriction had told staff not to carry out (the signed outcome
    `<its id>:<system>`), which restriction it undid and where: the panel tells staff to restrict
    the system again and links to that request."""
    by, _, system = (done or "").partition(":")
    return {"by": by, "reference": short_reference(by), "system": system} if canonical_uuid(by) and system else None


@router.post("/requests/{request_id}/record-lift-by-hand")
async def record(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                 state: State) -> Response:
    if not staff.has_role(LIFT_BY_HAND_ROLE):  # a forged post from an agent's session
        raise ConsoleForbidden("Forbidden", f"recording a lift by hand needs the {LIFT_BY_HAND_ROLE} role; "
                                            f"you are {staff.role}")
    pool = await state.db()
    await request_or_404(pool, request_id)
    form = await read_form(request)
    try:
        body = LiftByHandBody.model_validate({key: str(form.get(key, "")).strip() for key in ("system", "note")})
        data = await record_lift_by_hand(pool, request_id, body.system, body.note, actor=staff.actor)
    except ValidationError as exc:
        return back_to_panel(request_id, _PANEL, **refusal_params(state.settings, "lift_error", form_problems(exc)))
    except LiftByHandRefused as refused:
        return back_to_panel(request_id, _PANEL, **refusal_params(state.settings, "lift_error", refused.said()))
    # Lifted after a newer restriction: the outcome names it and the system (ids only, signed).
    done = f"{data['after_restriction']}:{body.system}" if data.get("after_restriction") else "1"
    return back_to_panel(request_id, _PANEL, **outcome_params(state.settings, request_id, "lift_done", done))
