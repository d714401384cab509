"""Working on the queue as a team: assigning a request (to a colleague, or taking it), internal
notes on a request, and each member of staff's saved queue views.

These are not workflow updates (api/staff_writes.py `TEAM_ROLES` says why, and the role each
needs, checked on every post): Postgres writes (dsrflow/stores/team_store.py), each change to a
request an audit event. Forms
post plainly and come back to the page (no JavaScript needed); a refusal shows on the page."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from api.auth import ConsoleForbidden, Staff, require_console_role
from api.console.panels import back_to_panel, request_or_404
from api.console.refusals import outcome_params, refusal_params
from api.deps import Pool, State
from api.forms import read_form
from api.pages import problem_pages
from api.problems import Problem
from api.read_models.actors import actor_name
from api.read_models.staff_reach import may_read, readable_notes
from api.request_form import SUBMISSION
from api.staff_writes import TEAM_ROLES
from dsrflow.stores.team_store import (
    TeamRefused,
    add_note,
    assign,
    assignment,
    colleagues,
    delete_view,
    save_view,
    staff_names,
)

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))

# The queue's filters a view keeps (the query string of /console/, without paging): every filter
# of the queue's form but the two searches (one request, one subject's: not a view of the queue).
# "stopped" was left out when the filter came, so a view of stopped requests showed them all.
VIEW_PARAMS = ("status", "type", "regime", "overdue", "due_before", "needs_attention", "stopped", "assignee")


def _check(staff: Staff, action: str) -> None:
    role = TEAM_ROLES[action]
    if not staff.has_role(role):
        raise ConsoleForbidden("Forbidden", f"{action} needs the {role} role; you are {staff.role}")


async def team_context(pool: Any, request_id: str, staff: Staff) -> dict[str, Any]:
    """The request page's team panel: who has it, the colleagues to hand it to, the notes the
    signed-in role may read (api/read_models/staff_reach.py)."""
    names = await staff_names(pool)
    return {"assignment": await assignment(pool, request_id), "colleagues": await colleagues(pool),
            "notes": [{**n, "author_name": actor_name(n["author"], names)}
                      for n in await readable_notes(pool, request_id, partial(may_read, staff.has_role))],
            "me": staff.token_id, "note_submission": uuid.uuid4().hex}


@router.post("/requests/{request_id}/assignment")
async def assign_request(staff: Annotated[Staff, require_console_role("agent")], request: Request,
                         request_id: str, pool: Pool, state: State) -> Response:
    """`assignee`: a colleague's token id, `me` (take it), or empty (nobody)."""
    _check(staff, "assign")
    await request_or_404(pool, request_id)
    form = await read_form(request)
    chosen = str(form.get("assignee", "")).strip()
    try:
        await assign(pool, request_id, staff.token_id if chosen == "me" else (chosen or None), actor=staff.actor)
    except TeamRefused as refused:
        return back_to_panel(request_id, "team", **refusal_params(state.settings, "team_error", str(refused)))
    return back_to_panel(request_id, "team", **outcome_params(state.settings, request_id, "team_done",
                                                      "assigned" if chosen else "unassigned"))


def _submission(form: FormData) -> str | None:
    """The note form's one-time key (its page's `submission`): a double click or a resubmitted page
    posts it again, and the note is kept once; the page after it carries a new one, so the same
    words noted again on purpose are a second note. A form without a well-formed one keeps each."""
    submission = str(form.get("submission", "")).strip()
    return submission if SUBMISSION.match(submission) else None


@router.post("/requests/{request_id}/notes")
async def note(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
               pool: Pool, state: State) -> Response:
    _check(staff, "note")
    await request_or_404(pool, request_id)
    form = await read_form(request)
    try:
        await add_note(pool, request_id, str(form.get("note", "")), actor=staff.actor, once=_submission(form))
    except TeamRefused as refused:
        return back_to_panel(request_id, "notes", **refusal_params(state.settings, "note_error", str(refused)))
    return back_to_panel(request_id, "notes", **outcome_params(state.settings, request_id, "note_done", "1"))


def view_query(query: str) -> str:
    """The queue filters of a query string, in a stable order; nothing else is kept."""
    return urlencode([(k, v) for k, v in parse_qsl(query) if k in VIEW_PARAMS and v])


@router.post("/views")
async def save(staff: Annotated[Staff, require_console_role("agent")], request: Request, pool: Pool,
               state: State) -> Response:
    """Save the queue's current filters (`query`) under `name`, for the signed-in member of staff."""
    _check(staff, "save-view")
    form = await read_form(request)
    query = view_query(str(form.get("query", "")))
    try:
        await save_view(pool, staff.token_id, str(form.get("name", "")), query)
    except TeamRefused as refused:
        return RedirectResponse(f"/console/?{urlencode(refusal_params(state.settings, 'view_error', str(refused)))}",
                                status_code=303)
    return RedirectResponse(f"/console/?{query}" if query else "/console/", status_code=303)


@router.post("/views/{view_id}/delete")
async def delete(staff: Annotated[Staff, require_console_role("agent")], view_id: str, pool: Pool) -> Response:
    _check(staff, "delete-view")
    if not await delete_view(pool, staff.token_id, view_id):
        raise Problem(404, "View not found", "You have no saved view with this id.")
    return RedirectResponse("/console/", status_code=303)

