"""An open request whose workflow ended, on the console's request page: every member of staff sees
why nothing on the page works (each action is refused while no workflow runs), and compliance may
resume it once the cause is fixed (api/staff_writes.py `RESUME_ROLE`; what resuming does:
dsrflow/domain/request_resume.py; REST: api/rest/request_resume.py). The form posts plainly and
comes back to the page, outside the live region, so a poll never swaps a half-written reason away."""

from __future__ import annotations

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
from api.staff_writes import RESUME_ROLE, ResumeBody
from dsrflow.domain.request_resume import ResumeRefused, resume_request
from dsrflow.stores.team_store import NOTE_MAX

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))

RESUMED = "Resumed: the request carries on from where it stopped. Its page shows its steps as they run."


def resume_context(staff: Staff, done: str | None, error: str | None) -> dict[str, Any]:
    """The request page's panel, beside its `workflow_ended` (the start sweep's open flag, which
    the page's context reads: request_page.py): whether this member of staff may resume it.
    `error`: a signed refusal."""
    return {"may_resume": staff.has_role(RESUME_ROLE), "resume_max": NOTE_MAX,
            "resume_done": RESUMED if done else None, "resume_error": error}


@router.post("/requests/{request_id}/resume")
async def resume(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                 state: State) -> Response:
    if not staff.has_role(RESUME_ROLE):
        raise ConsoleForbidden("Forbidden", f"resuming a request needs the {RESUME_ROLE} role; you are {staff.role}")
    await request_or_404(await state.db(), request_id)
    try:
        body = ResumeBody.model_validate({"reason": str((await read_form(request)).get("reason", "")).strip()})
        await resume_request(await state.temporal(), await state.db(), request_id, actor=staff.actor,
                             reason=body.reason)
    except ValidationError as exc:
        return back_to_panel(request_id, "workflow-ended", **refusal_params(state.settings, "resume_error",
                                                                              form_problems(exc)))
    except ResumeRefused as refused:
        return back_to_panel(request_id, "workflow-ended", **refusal_params(state.settings, "resume_error", str(refused)))
    return back_to_panel(request_id, "workflow-ended", **outcome_params(state.settings, request_id, "resume_done", "1"))
