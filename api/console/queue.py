"""The staff console: the queue by due date (filters, search by request id or by the subject's
e-mail address or customer number, days-left badges,
refreshed while it is open) and the new-request form. The request page is api/console/request_page.py.
Every page needs a console session (api/console/session.py); forms carry the session's CSRF token."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import QueryParams

from api import request_form
from api.auth import Staff, require_console_role
from api.console.refusals import shown_refusal
from api.console.team import view_query
from api.console.view import WORDS, days_left_badge, live_region, received_in
from api.deps import Limiter, PolicyInForce, State, Today
from api.forms import read_form
from api.page_language import page_language
from api.pages import problem_pages, render
from api.problems import Problem
from api.read_models.cursors import InvalidCursor
from api.read_models.request_queries import OPEN_STATUSES, RequestFilters, list_requests
from api.staff_opens import open_as_staff
from api.staff_writes import NEW_REQUEST_KEY
from api.state import AppState
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import typed_reference
from dsrflow.i18n import language_name
from dsrflow.stores.team_store import colleagues, request_by_reference, saved_views
from policy.model import Policy
from schemas.requests import Channel, NewRequest, RequestStatus
from schemas.vocabulary import Regime

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))
PAGE_SIZE = 50
_FILTER_MESSAGES = {"q": "Enter a request's reference (like KD7QX3M9TB) or its whole id (or the workflow id dsr-…).",
                    "due_before": "Enter a date.", "assignee": "Choose whom the requests are assigned to.",
                    "subject_email": "Enter a whole e-mail address.",
                    "customer_id": "Enter a customer number on one line, at most 100 characters."}
# Messages a redirect brings back to the queue (api/console/team.py): not filters.
_NOT_FILTERS = ("cursor", "v", "view_error", "view_error_sig")


def _subject_search(value: str) -> dict[str, str]:
    """The Subject box: an e-mail address has an @, anything else is a customer number."""
    return {"subject_email" if "@" in value else "customer_id": value}


async def _filters(params: QueryParams, pool: asyncpg.Pool, staff: Staff) -> tuple[RequestFilters, dict[str, str]]:
    """The queue's filters from the query string; with none at all, the open requests. A short
    reference in the search box is looked up (the filter takes the request's id)."""
    errors: dict[str, str] = {}
    if not [k for k in params if k not in _NOT_FILTERS]:
        return RequestFilters(status=list(OPEN_STATUSES)), errors
    body: dict[str, Any] = {"status": params.getlist("status")}
    for name in ("type", "regime", "due_before", "q", "overdue", "needs_attention", "stopped", "assignee"):
        if params.get(name):
            body[name] = params[name]
    if params.get("subject", "").strip():
        body.update(_subject_search(params["subject"]))
    if body.get("q"):
        found = await request_by_reference(pool, body["q"])
        if found is None and (reference := typed_reference(body["q"])):
            errors["q"] = f"No request has the reference {reference}."
        body["q"] = found or body["q"]
    filters = request_form.validate(RequestFilters, body, errors, _FILTER_MESSAGES)
    for field in ("subject_email", "customer_id"):  # shown beside the one box they came from
        if field in errors:
            errors["subject"] = errors.pop(field)
    return (filters or RequestFilters(status=list(OPEN_STATUSES))).for_caller(staff.token_id), errors


async def _queue(request: Request, state: AppState, today: date, staff: Staff) -> dict[str, Any]:
    pool, secret = await state.db(), load_secret_key(state.settings)
    filters, errors = await _filters(request.query_params, pool, staff)
    cursor = request.query_params.get("cursor")
    try:
        page = await list_requests(pool, filters, limit=PAGE_SIZE, cursor=cursor, today=today, secret=secret)
    except InvalidCursor:
        page = await list_requests(pool, filters, limit=PAGE_SIZE, today=today, secret=secret)
    rows = [{"item": item,
             "badge": days_left_badge(item.days_left, item.status, clock_waits=item.due_dates_provisional)}
            for item in page.items]
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in _NOT_FILTERS]
    next_url = f"/console/?{urlencode([*kept, ('cursor', page.next_cursor)])}" if page.next_cursor else None
    _, received_on = await received_in(pool, [item.id for item in page.items])
    return {**WORDS, "rows": rows, "received_on": received_on,
            "errors": errors, "filters": filters, "next_url": next_url, "cursor": cursor,
            "statuses": list(RequestStatus), "regimes": list(Regime), "query": urlencode(kept),
            "me": staff.token_id, "colleagues": await colleagues(pool)}


def _queue_region(request: Request, context: dict[str, Any]):
    poll = f"/console/queue?{context['query']}" if context["query"] else "/console/queue"
    if context["cursor"]:
        poll += ("&" if "?" in poll else "?") + urlencode({"cursor": context["cursor"]})
    return live_region(request, "console/_queue.html", context, poll_url=poll, region_id="queue", every="10s")


@router.get("/", response_class=HTMLResponse)
async def queue_page(staff: Annotated[Staff, require_console_role("agent")], request: Request, state: State,
                     today: Today) -> Response:
    """The queue, soonest due first. Searching for one request id or reference opens it."""
    context = await _queue(request, state, today, staff)
    filters, rows = context["filters"], context["rows"]
    if filters.q is not None and len(rows) == 1 and not context["errors"]:
        return RedirectResponse(f"/console/requests/{rows[0]['item'].id}", status_code=303)
    views = await saved_views(await state.db(), staff.token_id)
    return render(request, "console/queue.html", {
        **context, "queue": _queue_region(request, context).html, "views": views,
        "view_query": view_query(context["query"]),
        "view_error": shown_refusal(state.settings, "view_error", request.query_params) or "",  # refusals.py
    }, status_code=422 if context["errors"] else 200)


@router.get("/queue", response_class=HTMLResponse)
async def queue_region(staff: Annotated[Staff, require_console_role("agent")], request: Request, state: State,
                       today: Today) -> Response:
    """The queue's table alone: the page polls it (204 while nothing changed)."""
    return _queue_region(request, await _queue(request, state, today, staff)).response(request)


def _new_request_page(request: Request, policy: Policy, values: dict[str, Any], errors: dict[str, str], *,
                      status: int = 200) -> HTMLResponse:
    return render(request, "console/new_request.html", {
        "values": {"language": policy.languages.default.value, **values}, "errors": errors, **request_form.LABELS,
        "regimes": list(Regime), "channels": list(Channel), **WORDS,
        "submission": values.get("submission") or uuid.uuid4().hex, "timezone": policy.defaults.timezone,
        # The languages the subject may be written to in, each named in itself.
        "subject_languages": [(lang.value, language_name(lang)) for lang in policy.languages.supported],
    }, status_code=status)


@router.get("/requests/new", response_class=HTMLResponse)
async def new_request_form(staff: Annotated[Staff, require_console_role("agent")], request: Request,
                           policy: PolicyInForce) -> HTMLResponse:
    return _new_request_page(request, policy.policy, {"channel": "email", "regime": "gdpr"}, {})


def _received_at(value: str | None, timezone: str, errors: dict[str, str]) -> datetime | None:
    """The form's local date and time, in the controller's timezone."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(timezone))
    except ValueError:
        errors["received_at"] = "Enter the date and time the request reached us."
        return None


@router.post("/requests", response_class=HTMLResponse)
async def create_request(staff: Annotated[Staff, require_console_role("agent")], request: Request,
                         state: State, limiter: Limiter) -> Response:
    form = await read_form(request)
    values = request_form.form_values(form)
    errors: dict[str, str] = {}
    text = request_form.text
    body = {
        **request_form.staff_details(form, errors, words := request_form.field_words(state.policy, page_language(request))),
        "channel": text(form, "channel") or "email",
        "subject": {"email": text(form, "email") or "", "name": text(form, "name"),
                    "customer_id": text(form, "customer_id")},
        "received_at": _received_at(text(form, "received_at"), state.policy.policy.defaults.timezone, errors),
        "identity_attested": form.get("identity_attested") == "true",
    }
    new = request_form.validate(NewRequest, body, errors, nested=("subject",))
    request_form.check_policy(state.policy.policy, new, errors, words=words)
    if new is None or errors:
        return _new_request_page(request, state.policy.policy, values, errors, status=422)
    submission = values.get("submission", "")
    key = f"{NEW_REQUEST_KEY}{submission}" if request_form.SUBMISSION.match(submission) else None
    try:
        row, _ = await open_as_staff(state, limiter, staff, new, idempotency_key=key)
    except Problem as problem:
        if not request_form.refused_fields(problem, errors, words):
            raise
        return _new_request_page(request, state.policy.policy, values, errors, status=422)
    return RedirectResponse(f"/console/requests/{row['id']}", status_code=303)
