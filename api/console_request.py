"""The console's request page: the request and its deadlines, each system's task, what holds
kept, the timeline of events, every letter sent (rendered), and the actions the signed-in role
may take now. The live part of the page polls itself every few seconds and changes as the
workflow moves on; actions post through htmx and swap it in place (without JavaScript, a form
posts and the page comes back).

Actions call the same workflow updates as the REST API (api/service.py `run_update`): the
workflow decides, and its refusal is shown beside the form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from api.auth import ConsoleForbidden, Staff, require_console_role
from api.console_view import allowed_actions, days_left_badge, describe_event, live_region, temporal_ui_link
from api.listing import controller_today
from api.pages import PAGE_HEADERS, problem_pages, render
from api.problems import Problem, field_errors
from api.request_form import text
from api.service import live_state, run_update
from dsrflow.evidence import assemble_evidence
from dsrflow.keys import load_secret_key
from dsrflow.requests_store import get_request
from schemas.requests import DenialReason, RequestStatus
from schemas.workflow import (
    CancelInput,
    DenyInput,
    ExtendInput,
    ObjectionDecision,
    ResendInput,
    ResolveTaskInput,
    RetryTaskInput,
)
from workflows.dsr import DataSubjectRequestWorkflow as Workflow

router = APIRouter(prefix="/console/requests", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))
# Letters are the controller's own HTML: shown in a sandboxed frame that may run nothing.
_LETTER_HEADERS = {**PAGE_HEADERS, "X-Frame-Options": "SAMEORIGIN",
                   "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                   "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"}


@dataclass(frozen=True)
class Action:
    role: str
    update: Any  # the workflow update it runs
    build: Callable[[FormData, str], BaseModel]  # (form, actor) -> the update's input
    done: str


ACTIONS = {
    "extend": Action("compliance", Workflow.extend,
                     lambda f, actor: ExtendInput(reason=text(f, "reason") or "", actor=actor),
                     "Deadline extended; the subject is told the reason and the new date."),
    "deny": Action("compliance", Workflow.deny,
                   lambda f, actor: DenyInput(reason_code=text(f, "reason_code") or "other",
                                              explanation=text(f, "explanation") or "", actor=actor),
                   "Request denied; the letter with the reasons and remedies is sent."),
    "cancel": Action("agent", Workflow.cancel,
                     lambda f, actor: CancelInput(reason=text(f, "reason") or "", actor=actor),
                     "Request cancelled."),
    "resend-verification": Action("agent", Workflow.resend_verification,
                                  lambda f, actor: ResendInput(actor=actor),
                                  "A new code and link are sent; the old ones no longer work."),
    "retry-task": Action("compliance", Workflow.retry_task,
                         lambda f, actor: RetryTaskInput(system=text(f, "system") or "", actor=actor),
                         "The task ran again."),
    "resolve-task": Action("compliance", Workflow.resolve_task,
                           lambda f, actor: ResolveTaskInput(system=text(f, "system") or "",
                                                             note=text(f, "note") or "", actor=actor),
                           "The task is recorded as handled."),
    "decide-objection": Action("compliance", Workflow.decide_objection,
                               lambda f, actor: ObjectionDecision(
                                   compelling_grounds=f.get("compelling_grounds") == "true",
                                   explanation=text(f, "explanation") or "", actor=actor),
                               "Decision recorded."),
}


def _tasks(pack: dict[str, Any], live) -> list[dict[str, Any]]:
    """Every planned system with its latest result: the workflow's live one, else the stored one."""
    stored = {t["system"]: t for t in pack["results"]}
    current = {r.system: r.model_dump() for r in live.results} if live else {}
    planned = [t["system"] for t in (pack["plan"] or {}).get("tasks", [])]
    systems = planned + sorted((set(stored) | set(current)) - set(planned))
    labels = {t["system"]: t["label"] for t in (pack["plan"] or {}).get("tasks", [])}
    return [{"label": labels.get(s, s), "status": "waiting", "system": s,
             **stored.get(s, {}), **current.get(s, {})} for s in systems]


async def _context(request: Request, request_id: str, staff: Staff) -> dict[str, Any]:
    state = request.app.state.dsr
    pack = await assemble_evidence(await state.db(), request_id, secret=load_secret_key(state.settings))
    if pack is None:
        raise Problem(404, "Request not found", f"There is no request {request_id}.")
    live = await live_state(state, request_id)
    row, deadlines = pack["request"], pack["deadlines"]
    status = live.status if live else RequestStatus(row["status"])
    due = (live.current_due_date if live and live.current_due_date else deadlines["current_due_date"])
    extended = live.extended if live else deadlines["extended"]
    days_left = (due - controller_today(state)).days if due else None
    tasks = _tasks(pack, live)
    return {
        "pack": pack, "r": row, "live": live, "status": status, "due": due, "extended": extended,
        "extension_reason": (live.extension_reason if live else None)
        or (deadlines["extension"] or {}).get("reason"),
        "badge": days_left_badge(days_left, status), "tasks": tasks,
        "timeline": [(e, describe_event(e)) for e in reversed(pack["audit"]["events"])],
        "actions": allowed_actions(staff.has_role, live, {"status": row["status"], "extended": extended}, tasks),
        "denial_reasons": list(DenialReason),
        "temporal_link": temporal_ui_link(state.settings, request_id),
    }


def _region(request: Request, request_id: str, context: dict[str, Any], notice: dict[str, Any] | None = None):
    # A closed request hardly changes any more (a download, a late callback): poll it gently.
    every = "30s" if context["status"].is_closed else "3s"
    return live_region(request, "console/_request_live.html", context, notice=notice,
                       poll_url=f"/console/requests/{request_id}/live", region_id="live", every=every)


@router.get("/{request_id}", response_class=HTMLResponse)
async def request_page(request: Request, request_id: str, done: str | None = None,
                       staff: Staff = require_console_role("agent")) -> HTMLResponse:
    context = await _context(request, request_id, staff)
    notice = {"flash": ACTIONS[done].done} if done in ACTIONS else None
    return render(request, "console/request.html",
                  {**context, "live_region": _region(request, request_id, context, notice).html})


@router.get("/{request_id}/live", response_class=HTMLResponse)
async def request_live(request: Request, request_id: str, staff: Staff = require_console_role("agent")) -> Response:
    """The live part of the request page (204 while nothing changed since version `v`)."""
    return _region(request, request_id, await _context(request, request_id, staff)).response(request)


@router.get("/{request_id}/letters/{purpose}/{key}", response_class=HTMLResponse)
async def letter(request: Request, request_id: str, purpose: str, key: str,
                 staff: Staff = require_console_role("agent")) -> HTMLResponse:
    """A sent letter as the subject saw it (codes and links withheld in the stored copy)."""
    pool = await request.app.state.dsr.db()
    body = await pool.fetchval("SELECT body_html FROM sent_letters WHERE letter_key = $1",
                               f"{request_id}:{purpose}:{key}")
    if body is None:
        raise Problem(404, "Letter not found", "No such letter was sent for this request.")
    return HTMLResponse(body, headers=_LETTER_HEADERS)


@router.post("/{request_id}/{action}", response_class=HTMLResponse)
async def act(request: Request, request_id: str, action: str,
              staff: Staff = require_console_role("agent")) -> Response:
    """Run one action; the outcome (or the workflow's refusal) shows on the request page."""
    spec = ACTIONS.get(action)
    if spec is None:
        raise Problem(404, "No such action", f"There is no action {action!r}.")
    if not staff.has_role(spec.role):
        raise ConsoleForbidden("Forbidden", f"{action} needs the {spec.role} role; you are {staff.role}")
    if await get_request(await request.app.state.dsr.db(), request_id) is None:
        raise Problem(404, "Request not found", f"There is no request {request_id}.")
    form = await request.form()
    status, notice = 200, {"flash": spec.done}
    try:
        await run_update(request.app.state.dsr, request_id, spec.update, spec.build(form, staff.actor))
    except ValidationError as exc:
        status = 422
        notice = {"error": "; ".join(e["message"] for e in field_errors(list(exc.errors())))}
    except Problem as problem:
        if problem.status == 404:
            raise
        status, notice = problem.status, {"error": problem.detail or problem.title}
    if status == 200 and not request.headers.get("hx-request"):
        return RedirectResponse(f"/console/requests/{request_id}?done={action}", status_code=303)
    notice |= {"failed_action": action if status != 200 else None, "values": dict(form.items())}
    context = await _context(request, request_id, staff)
    region = _region(request, request_id, context, notice)
    if request.headers.get("hx-request"):
        return region.response(request, status_code=status)
    return render(request, "console/request.html", {**context, "live_region": region.html}, status_code=status)
