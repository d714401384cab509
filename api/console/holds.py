"""The console's "Legal holds" page: compliance (and admins) place an Art. 17(3)(e) legal-claims
hold on a subject, on some systems or data categories or all, see the holds in force and release
one, saying why it ends, and read those released (api/console/released_holds.py), as `POST`/`GET
/v1/legal-holds` and `DELETE /v1/legal-holds/{id}` do (api/rest/legal_holds.py, whose body
models check the forms). Without it, a compliance officer working in the browser had to leave it
for curl to hold or release records.
Systems and categories are named by the policy's labels in the console's language.

Each answer is the page itself. A placing form carries a one-time `submission` id, sent as the
hold's idempotency key: pressing again, or reloading the answer, returns the hold it placed
rather than placing a second one that nobody would know to release."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api.auth import Staff, require_console_role
from api.console.released_holds import released_holds
from api.deps import Pool, State
from api.erasure_sweeps import release_and_sweep
from api.forms import read_form
from api.legal_hold_body import HoldRelease, NewLegalHold, hold_context
from api.page_language import page_language
from api.pages import problem_pages, render
from api.problems import field_errors
from api.read_models.actors import actor_name
from api.read_models.staff_reach import LEGAL_CLAIMS_HOLDS, READABLE_BY
from api.state import AppState
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import short_reference
from dsrflow.infra.logging import get_logger
from dsrflow.stores.holds_store import (
    HoldIdempotencyConflict,
    get_hold,
    list_holds,
    place_hold,
    resolve_customer_email,
)
from dsrflow.stores.team_store import staff_names

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))
log = get_logger("dsrflow.console.holds")

ROLE = READABLE_BY[LEGAL_CLAIMS_HOLDS]
# The form's fields, as staff fill them in; `systems` and `categories` are one checkbox per system
# and data category of the policy.
_TEXT_FIELDS = ("email", "customer_id", "reason", "review_date")
_TICKED = ("systems", "categories")


async def _page(request: Request, state: AppState, pool: Pool, status_code: int = 200, *,
                form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                released_after: str | None = None, **context: Any) -> HTMLResponse:
    policy = state.policy.in_language(page_language(request))
    holds = await list_holds(pool, active_only=True)
    names = await staff_names(pool)
    return render(request, "console/holds.html", {
        "holds": holds, "released": await released_holds(pool, released_after),
        "systems": {system_id: system.label for system_id, system in policy.systems.items()},
        "categories": {category_id: category.label for category_id, category in policy.categories.items()},
        "form": form or {"submission": uuid.uuid4().hex, "systems": [], "categories": []},
        "errors": errors or {}, "today": hold_context(policy)["today"],
        "who": lambda actor: actor_name(actor, names), "short_reference": short_reference,
        **context}, status_code=status_code)


@router.get("/holds", response_class=HTMLResponse)
async def holds_page(staff: Annotated[Staff, require_console_role(ROLE)], request: Request, state: State,
                     pool: Pool) -> Response:
    """The page; `?released=` (the "Older released holds" link) pages through the released holds."""
    return await _page(request, state, pool, released_after=request.query_params.get("released"))


# What staff read for the refusals a form left half-filled meets most, in place of pydantic's words.
_PLAIN = {
    ("reason", "missing"): "Say which claim the records are kept for.",
    ("reason", "string_too_short"): "Too short: say which claim the records are kept for, in at least 10 characters.",
    ("review_date", "missing"): "Give the date to review the hold by.",
    ("email", "value_error"): "This is not an e-mail address: check it.",
}
# And for a release's reason, the field beside each Release button.
_WHY_IT_ENDS = {
    "missing": "Say why the hold ends: the claim was settled, withdrawn or time-barred, or the hold placed by mistake.",
    "string_too_short": "Too short: say why the hold ends, in at least 10 characters.",
}


def _said(errors: list[dict[str, Any]]) -> dict[str, str]:
    """Each refused field's reason, by the form's field name (the first reason of each)."""
    said: dict[str, str] = {}
    for error, shown in zip(errors, field_errors(errors), strict=True):
        loc = [part for part in error.get("loc", ()) if isinstance(part, str) and part != "body"]
        name = loc[0] if loc else "email"
        said.setdefault(name, _PLAIN.get((name, error.get("type", "")), shown["message"]))
    return said


@router.post("/holds", response_class=HTMLResponse)
async def place(staff: Annotated[Staff, require_console_role(ROLE)], request: Request, state: State,
                pool: Pool) -> Response:
    raw = await read_form(request)
    form: dict[str, Any] = {name: str(raw.get(name, "")).strip() for name in (*_TEXT_FIELDS, "submission")}
    for name in _TICKED:
        form[name] = [str(value) for value in raw.getlist(name)]
    policy = state.policy.policy
    body: dict[str, Any] = {name: form[name] for name in (*_TEXT_FIELDS, *_TICKED) if form[name]}
    context = hold_context(policy)
    errors: dict[str, str] = {}
    hold: NewLegalHold | None = None
    try:
        hold = NewLegalHold.model_validate(body, context=context)
    except ValidationError as exc:
        errors = _said([dict(e) for e in exc.errors()])
    email = str(hold.email) if hold and hold.email else None
    if not form["email"] and not form["customer_id"]:
        errors.setdefault("email", "Give the subject's e-mail address, or a customer number an earlier request names.")
    elif not email and form["customer_id"] and "customer_id" not in errors:
        email = await resolve_customer_email(pool, form["customer_id"])
        if email is None:
            errors["customer_id"] = "No request names this customer number: give the subject's e-mail address."
    if errors or hold is None or email is None:
        return await _page(request, state, pool, 422, form=form, errors=errors)
    try:
        async with pool.acquire() as conn:
            placed, _ = await place_hold(
                conn, secret=load_secret_key(state.settings), email=email, customer_id=hold.customer_id,
                systems=hold.systems, categories=hold.categories, basis=hold.basis, reason=hold.reason,
                review_date=hold.review_date, actor=staff.actor,
                idempotency_key=f"console:{form['submission']}" if form["submission"] else None)
    except HoldIdempotencyConflict:
        # The page's form was sent once already with other words: a fresh form places this one.
        form["submission"] = uuid.uuid4().hex
        return await _page(request, state, pool, 409, form=form, errors={
            "submission": "This form already placed another hold: check the list below, then press again to place this one."})
    return await _page(request, state, pool, placed_hold=placed)


@router.post("/holds/{hold_id}/release", response_class=HTMLResponse)
async def release(staff: Annotated[Staff, require_console_role(ROLE)], hold_id: str, request: Request,
                  state: State, pool: Pool) -> Response:
    """Release the hold, saying why it ends (the field beside its button, checked as the REST
    API's body: `HoldRelease`), then start erasing what it kept (as DELETE
    /v1/legal-holds/{id}); a press again after the sweep could not start starts it. A
    reason refused is said beside the field, what was typed kept."""
    reason = str((await read_form(request)).get("reason", "")).strip()
    try:
        body = HoldRelease.model_validate({"reason": reason} if reason else {})
    except ValidationError as exc:
        error: dict[str, Any] = dict(exc.errors()[0])
        held = await get_hold(pool, hold_id)
        if held is None:
            return await _page(request, state, pool, 404, release_error="No such hold: nothing was released.")
        if not held["active"]:
            return await _page(request, state, pool, 409,
                               release_error="This hold was released already: nothing was done.")
        said = _WHY_IT_ENDS.get(str(error["type"]), field_errors([error])[0]["message"])
        return await _page(request, state, pool, 422, release_error="Nothing was released: say why the hold ends.",
                           release_form={"hold_id": held["id"], "reason": reason, "error": said})
    hold, sweep_failed = await release_and_sweep(state, pool, hold_id, staff.actor, reason=body.reason)
    if hold is None:
        return await _page(request, state, pool, 404, release_error="No such hold: nothing was released.")
    if sweep_failed is not None:
        return await _page(request, state, pool, 202, released_hold=hold, sweep_failed=sweep_failed)
    return await _page(request, state, pool, released_hold=hold)
