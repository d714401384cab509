"""The request page's actions (api/staff_actions.py), posted from its forms: run like the REST API
runs them (api/service.py `run_update`), the workflow deciding; the outcome, or why it was refused,
shows on the page (api/console/request_page.py).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.auth import Staff, require_console_role
from api.console.refusals import outcome_params
from api.console.request_context import live_part, panels_context, request_context, told
from api.console.request_page import subject_context
from api.console.view import days_in_words
from api.deps import State, Today
from api.forms import read_form
from api.page_language import page_language
from api.pages import problem_pages, render
from api.problems import Problem, field_errors
from api.service import live_state, require_step_shown, run_update
from api.staff_actions import STAFF_ACTIONS, StaffAction
from api.staff_bodies import resent_since
from api.state import AppState
from dsrflow.stores.requests_store import get_request

router = APIRouter(prefix="/console/requests", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))


async def run_action(state: AppState, request_id: str, action: StaffAction | None, form: FormData, staff: Staff,
                     ) -> Problem | None:
    """Run the action; None once the workflow accepted it, else why not (a bad field, or the
    workflow's own reason)."""
    assert action is not None  # an unknown action is refused before it runs
    try:
        body = action.body_from_form(form)
        if refused := action.refusal_for(body, staff.has_role, staff.role):
            return Problem(403, "Forbidden", refused)
        answers_step, step = action.step_answered(body)
        if answers_step:  # the form names the step its page showed (a stale page must not answer another)
            await require_step_shown(state, request_id, step)
        # The form names the round of codes its page showed: one sent since is not followed by another;
        # nor is one past the most a request is sent (api/staff_bodies.py CODES_MAX).
        if action.sends_codes() and (
                resent := resent_since(action.round_shown(body), await live_state(state, request_id))):
            return resent
        if unfit := action.unfit_for(await get_request(await state.db(), request_id), body):
            return unfit
        await run_update(state, request_id, action.update,
                         action.workflow_input(body, staff.actor, action.once_from_form(form, staff.actor)))
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        return Problem(422, "Invalid", "; ".join(f"{e['field']}: {e['message']}" for e in errors))
    except Problem as problem:
        return problem
    return None


@router.post("/{request_id}/{action}", response_class=HTMLResponse)
async def act(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str, action: str,
              state: State, today: Today) -> Response:
    """Run one action of api/staff_actions.py; the outcome, or why it was refused (an unknown
    action, a role too low, a bad field, the workflow's reason), shows on the request page. With
    htmx only the live region comes back: a whole page would nest inside it."""
    spec = STAFF_ACTIONS.get(action)
    refusal = (Problem(404, "No such action", f"There is no action {action!r}.") if spec is None
               else Problem(403, "Forbidden", f"{action} needs the {spec.role} role; you are {staff.role}")
               if not staff.has_role(spec.role) else None)
    if await get_request(await state.db(), request_id) is None:
        raise refusal or Problem(404, "Request not found", f"There is no request {request_id}.")
    form = await read_form(request)
    refused = refusal or await run_action(state, request_id, spec, form, staff)
    htmx = bool(request.headers.get("hx-request"))
    if refused is None and not htmx:
        done = urlencode(outcome_params(state.settings, request_id, "done", action))
        return RedirectResponse(f"/console/requests/{request_id}?{done}", status_code=303)
    context = await request_context(state, today, request_id, staff)
    if refused is None:
        assert spec is not None  # no refusal: the action exists
        notice = {"flash": told(spec, context)}
    else:
        notice = {"error": days_in_words(refused.detail or refused.title, page_language(request)),
                  "failed_action": action}
    region = live_part(request, request_id, context, {**notice, "values": dict(form.items())})
    status = refused.status if refused else 200
    if htmx:
        return region.response(request, status_code=status)
    return render(request, "console/request.html", {
        **context, **await panels_context(state, request_id, staff, context), **await subject_context(state, context),
        "live_region": region.html}, status_code=status)
