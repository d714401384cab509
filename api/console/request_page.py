"""The console's request page: the request and its deadlines, each system's task, what holds
kept, the timeline of events, every letter sent (rendered), and the actions the signed-in role
may take now (what it shows: api/console/request_context.py). The live part of the page polls itself every few seconds and changes as the
workflow moves on; actions post through htmx and swap it in place (without JavaScript, a form
posts and the page comes back).

Actions (api/console/request_actions.py) are those of api/staff_actions.py, run like the REST
API runs them (api/service.py `run_update`): the workflow decides, and its refusal is shown
beside the form.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import Staff, require_console_role
from api.console.refusals import shown_outcome
from api.console.request_context import live_part, panels_context, request_context, told
from api.console.view import received_in
from api.deps import State, Today
from api.pages import problem_pages, render
from api.read_models.subject_requests import LIMIT as OTHER_REQUESTS_LIMIT
from api.read_models.subject_requests import other_requests
from api.staff_actions import STAFF_ACTIONS
from api.state import AppState
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.team_store import request_by_reference

router = APIRouter(prefix="/console/requests", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))


async def subject_context(state: AppState, context: dict[str, Any]) -> dict[str, Any]:
    """The subject's other requests: on the page itself, not in the live region that polls."""
    r, pool = context["r"], await state.db()
    others = await other_requests(pool, r["id"], r["subject"]["email"], r["subject"]["customer_id"],
                                  load_secret_key(state.settings))
    zones, received_on = await received_in(pool, [o.id for o in others])
    return {"other_requests": others, "received_in": zones, "received_on": received_on,
            "other_requests_limit": OTHER_REQUESTS_LIMIT}


@router.get("/{request_id}", response_class=HTMLResponse)
async def request_page(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                       state: State, today: Today) -> Response:
    """The request page; a short reference (or the workflow id) typed into the address leads here
    under the request's id."""
    pool = await state.db()
    found = await request_by_reference(pool, request_id[:100])
    if found is not None and found != request_id:
        return RedirectResponse(f"/console/requests/{found}", status_code=303)
    context = await request_context(state, today, request_id, staff)
    # Outcomes and refusals come back in the address, signed (outcomes for this request): another's
    # link shows none (refusals.py).
    params = request.query_params
    done = shown_outcome(state.settings, request_id, "done", params)
    notice = {"flash": told(STAFF_ACTIONS[done], context)} if done in STAFF_ACTIONS else None
    return render(request, "console/request.html", {
        **context, **await panels_context(state, request_id, staff, context, params),
        **await subject_context(state, context), "live_region": live_part(request, request_id, context, notice).html})


@router.get("/{request_id}/live", response_class=HTMLResponse)
async def request_live(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                       state: State, today: Today) -> Response:
    """The live part of the request page (204 while nothing changed since version `v`)."""
    return live_part(request, request_id, await request_context(state, today, request_id, staff)).response(request)
