"""The console's Inbox: e-mails to the controller's privacy address (docs/mailbox.md), new ones by
arrival, each with a suggested type and language. An agent turns one into a request in one step
(the message's receipt is the request's `received_at`: the clock started when it reached us),
attaches it to an existing request, or dismisses it as not a request, with a reason.

Every action needs the agent role and the session's CSRF token (api/auth.py), happens once (a
second press, or a form left open after a colleague decided, finds the message decided and says
so), and is audited (dsrflow/stores/mailbox_store.py)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import request_form
from api.auth import Staff, require_console_role
from api.console.view import LANGUAGE_NAMES, WORDS, days_left_badge
from api.deps import Limiter, Pool, State, Today
from api.forms import read_form
from api.page_language import page_language
from api.pages import problem_pages, render
from api.problems import Problem
from api.read_models.actors import actor_name
from api.read_models.cursors import InvalidCursor
from api.read_models.inbox_queries import inbox_message, list_inbox
from api.staff_opens import open_as_staff
from api.state import AppState
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import canonical_uuid
from dsrflow.i18n import language_name
from dsrflow.stores.mailbox_store import CONVERT_KEY, decide, finish_interrupted_converts
from dsrflow.stores.team_store import request_by_reference, staff_names
from policy.mailbox import load_mailbox_policy
from schemas.plain_text import one_line, refuse_reordering, refused_control
from schemas.requests import NewRequest, RequestStatus
from schemas.vocabulary import Regime

router = APIRouter(prefix="/console/inbox", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))
MAX_REASON = 500
PAGE_SIZE = 200  # messages per page of the inbox


async def _message(state: AppState, pool: Any, today: Any, message_id: str) -> dict[str, Any]:
    # Ids as PostgreSQL writes them only, as the routes go on to use `message_id` as given: another
    # spelling of a UUID (braces, `urn:uuid:`) answered 500.
    found = None
    if canonical_uuid(message_id) == message_id:
        await finish_interrupted_converts(pool, message_id)
        found = await inbox_message(pool, load_secret_key(state.settings), state.policy.policy,
                                    load_mailbox_policy(), today, message_id)
    if found is None:
        raise Problem(404, "Message not found", f"There is no message {message_id} in the inbox.")
    return found


def _language_words(state: AppState) -> dict[str, str]:
    """Each language by its name in the staff's ("Dutch"), for the suggestion staff read: the
    inbox showed its code ("erasure · nl")."""
    staff = state.policy.policy.languages.staff.value
    return {code: language_name(code, staff) for code in LANGUAGE_NAMES}


@router.get("", response_class=HTMLResponse)
async def inbox_page(staff: Annotated[Staff, require_console_role("agent")], request: Request, state: State,
                     pool: Pool, today: Today) -> Response:
    cursor = request.query_params.get("cursor")
    await finish_interrupted_converts(pool)
    try:
        page = await list_inbox(pool, load_secret_key(state.settings), state.policy.policy, load_mailbox_policy(),
                                today, limit=PAGE_SIZE, cursor=cursor)
    except InvalidCursor:
        raise Problem(422, "Invalid cursor", "cursor: not a cursor from an earlier page of the inbox") from None
    for message in page.messages:  # the badge an open request with this due date would have
        message["badge"] = days_left_badge(message["days_left"], RequestStatus.awaiting_verification)
    return render(request, "console/inbox.html", {
        "messages": page.messages, "waiting": page.waiting, "first_page": cursor is None,
        "next_url": f"/console/inbox?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None,
        "language_words": _language_words(state)})


def _message_page(request: Request, state: AppState, message: dict[str, Any], *, values: dict[str, Any] | None = None,
                  errors: dict[str, str] | None = None, refused: str | None = None, status: int = 200) -> HTMLResponse:
    policy = state.policy.policy
    mail = message["mail"]
    defaults = {"type": message["suggested_type"], "email": mail["sender"] or "", "name": mail["sender_name"] or "",
                "language": message["suggested_language"] or policy.languages.default.value,
                "regime": policy.defaults.regime.value}
    return render(request, "console/inbox_message.html", {
        "m": message, "values": {**defaults, **(values or {})}, "errors": errors or {}, "refused": refused,
        "regimes": list(Regime), **request_form.LABELS, **WORDS, "language_words": _language_words(state),
        "subject_languages": [(lang.value, language_name(lang)) for lang in policy.languages.supported],
        "timezone": policy.defaults.timezone,
    }, status_code=status)


@router.get("/{message_id}", response_class=HTMLResponse)
async def message_page(staff: Annotated[Staff, require_console_role("agent")], request: Request, state: State,
                       pool: Pool, today: Today, message_id: str) -> Response:
    return _message_page(request, state, await _message(state, pool, today, message_id))


async def _already_decided(request: Request, state: AppState, pool: Any, message: dict[str, Any]) -> HTMLResponse:
    # The colleague by name, as the request page names staff: the recorded actor ("agent:1f0c9a2e")
    # told nobody who had decided it.
    by = actor_name(message["decided_by"], await staff_names(pool))
    return _message_page(request, state, message, status=409,
                         refused=f"This message was already {message['status']} by {by}; nothing was changed.")


@router.post("/{message_id}/convert", response_class=HTMLResponse)
async def convert(staff: Annotated[Staff, require_console_role("agent")], request: Request, state: State,
                  pool: Pool, today: Today, limiter: Limiter, message_id: str) -> Response:
    """Open a request from the message: its receipt is the request's `received_at`."""
    message = await _message(state, pool, today, message_id)
    form = await read_form(request)
    values = request_form.form_values(form)
    if message["status"] == "converted":  # pressed twice: the request it became
        return RedirectResponse(f"/console/requests/{message['request_id']}", status_code=303)
    if message["status"] != "new":
        return await _already_decided(request, state, pool, message)
    errors: dict[str, str] = {}
    text = request_form.text
    body = {
        **request_form.staff_details(form, errors, words := request_form.field_words(state.policy, page_language(request))),
        "channel": "email",
        "subject": {"email": text(form, "email") or "", "name": text(form, "name"),
                    "customer_id": text(form, "customer_id")},
        "received_at": message["received_at"],
    }
    new = request_form.validate(NewRequest, body, errors, nested=("subject",))
    request_form.check_policy(state.policy.policy, new, errors, words=words)
    if new is None or errors:
        return _message_page(request, state, message, values=values, errors=errors, status=422)
    # The message's id is the idempotency key: a second press, or a retry after a crash between
    # opening the request and recording the decision, finds the same request.
    # Within the token's bound, as the New request form (api/staff_opens.py): the address is typed,
    # and even the sender's is only what a From header says, which anyone writes. Uncounted, a
    # stolen token mailed any address from ours once per message mailed to the inbox.
    try:
        row, _ = await open_as_staff(state, limiter, staff, new, idempotency_key=f"{CONVERT_KEY}{message_id}")
    except Problem as problem:
        if not request_form.refused_fields(problem, errors, words):
            raise
        return _message_page(request, state, message, values=values, errors=errors, status=422)
    async with pool.acquire() as conn:
        await decide(conn, message_id, "converted", actor=staff.actor, request_id=str(row["id"]))
    return RedirectResponse(f"/console/requests/{row['id']}", status_code=303)


@router.post("/{message_id}/attach", response_class=HTMLResponse)
async def attach(staff: Annotated[Staff, require_console_role("agent")], request: Request, state: State,
                 pool: Pool, today: Today, message_id: str) -> Response:
    message = await _message(state, pool, today, message_id)
    form = await read_form(request)
    typed = (request_form.text(form, "request_id") or "")[:100]
    target = await request_by_reference(pool, typed)  # the short reference people quote, or the id
    if target is None:
        return _message_page(request, state, message, values={"request_id": typed}, status=422, errors={
            "request_id": "Enter the reference (like KD7QX3M9TB) or the id of an existing request."})
    async with pool.acquire() as conn:
        if not await decide(conn, message_id, "attached", actor=staff.actor, request_id=target):
            return await _already_decided(request, state, pool, await _message(state, pool, today, message_id))
    return RedirectResponse(f"/console/requests/{target}", status_code=303)


def _reorders(text: str) -> bool:
    try:
        refuse_reordering(text)
    except ValueError:
        return True
    return False


@router.post("/{message_id}/dismiss", response_class=HTMLResponse)
async def dismiss(staff: Annotated[Staff, require_console_role("agent")], request: Request, state: State,
                  pool: Pool, today: Today, message_id: str) -> Response:
    message = await _message(state, pool, today, message_id)
    form = await read_form(request)
    typed = str(form.get("reason", ""))
    reason = " ".join(one_line(typed).split())  # a line break typed in the box is a space
    # Other staff read it (the message's page says why it is no request): without marks that
    # reorder it, as every text staff write for each other (schemas/plain_text.py StaffLine).
    if refused_control(typed) or _reorders(reason) or not reason or len(reason) > MAX_REASON:
        return _message_page(request, state, message, values={"reason": reason}, status=422, errors={
            "reason": f"Say why this is not a request, in at most {MAX_REASON} characters, without control "
                      "characters or marks that reorder text."})
    async with pool.acquire() as conn:
        if not await decide(conn, message_id, "dismissed", actor=staff.actor, reason=reason):
            return await _already_decided(request, state, pool, await _message(state, pool, today, message_id))
    return RedirectResponse("/console/inbox", status_code=303)
