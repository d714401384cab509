"""The console's "Marketing suppressions" page: whether addresses are on the direct-marketing
suppression list (their subject objected, Art. 21(3) GDPR), since when and from which request; and,
for compliance, taking one off once its subject consented to marketing again, with how they did.
The list and its lift: dsrflow/stores/suppressions_store.py, as the REST API asks it
(api/rest/suppressions.py); the roles: api/staff_writes.py `SUPPRESSION_ROLES`.

The addresses are personal data: they travel in posted forms only, and each answer is the page
itself (no redirect to an address that would carry them, nor a signed outcome in it). A lift's
form carries the checked list back, so that the page after it shows the same list, the address
lifted among it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import EmailStr, TypeAdapter, ValidationError

from api.auth import ConsoleForbidden, Staff, require_console_role
from api.console.panels import form_problems
from api.deps import Pool, State
from api.forms import read_form
from api.pages import problem_pages, render
from api.staff_writes import (
    CONSENT_MAX,
    CONSENT_MIN,
    SUPPRESSION_CHECK_MAX,
    SUPPRESSION_ROLES,
    SuppressionLiftBody,
)
from api.state import AppState
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import short_reference
from dsrflow.stores.suppressions_store import NotSuppressed, Suppression, lift_suppression, suppressed
from schemas.plain_text import refused_control

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))

PAGE = "/console/suppressions"
# Addresses as staff paste them: one a line, or separated by commas, semicolons or spaces.
_SEPARATORS = re.compile(r"[\s,;]+")
_EMAIL: TypeAdapter[str] = TypeAdapter(EmailStr)
# The field a lift's consent is read from: one per address, so that the form of the whole table
# carries the one beside the address's Lift button (api/templates/console/suppressions.html).
CONSENT_FIELD = "consent:"
# RFC 5321's limit on a path (254 characters of address): a longer entry is no address to look up.
_ADDRESS_MAX = 254


@dataclass(frozen=True)
class Checked:
    address: str  # as pasted
    valid: bool
    suppression: Suppression | None = None

    @property
    def reference(self) -> str | None:
        request_id = self.suppression.request_id if self.suppression else None
        return short_reference(request_id) if request_id else None


def _pasted(text: str) -> list[str]:
    """Each address once, in the order pasted."""
    return list(dict.fromkeys(part for part in _SEPARATORS.split(text) if part))


def _valid(address: str) -> str | None:
    """The address as the list hashes it, or None if it is no e-mail address."""
    try:
        return str(_EMAIL.validate_python(address))
    except ValidationError:
        return None


async def _checked(pool: asyncpg.Pool, secret: bytes, addresses: list[str]) -> list[Checked]:
    valid = {address: normalised for address in addresses if (normalised := _valid(address))}
    found = await suppressed(pool, secret, valid.values())
    return [Checked(address, address in valid, found.get(valid.get(address, ""))) for address in addresses]


def _page(request: Request, staff: Staff, status_code: int = 200, **context: Any) -> HTMLResponse:
    return render(request, "console/suppressions.html", {
        "addresses": "", "results": None, "check_max": SUPPRESSION_CHECK_MAX,
        "may_lift": staff.has_role(SUPPRESSION_ROLES["lift"]), "consent_field": CONSENT_FIELD,
        "consent_min": CONSENT_MIN, "consent_max": CONSENT_MAX, **context}, status_code=status_code)


async def _checked_page(request: Request, staff: Staff, state: AppState, pool: asyncpg.Pool, text: str, *,
                        status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page with the addresses pasted in `text` checked, or why they cannot be (a lift's
    outcome in `context`: with no list to show again, that alone)."""
    addresses = _pasted(text)
    if not addresses and context:
        return _page(request, staff, status_code, **context)
    if not addresses:
        return _page(request, staff, 422, check_error="Paste at least one e-mail address.")
    if refused := refused_control(text):
        return _page(request, staff, 422, **context, check_error=f"The addresses {refused}: paste them again.")
    if too_long := next((a for a in addresses if len(a) > _ADDRESS_MAX), None):
        return _page(request, staff, 422, **context, check_error=(
            f"“{too_long[:40]}…” is too long to be an e-mail address (at most {_ADDRESS_MAX} characters)."))
    if len(addresses) > SUPPRESSION_CHECK_MAX:
        return _page(request, staff, 422, addresses=text, **context, check_error=(
            f"At most {SUPPRESSION_CHECK_MAX:,} addresses at once: you pasted {len(addresses):,}. Check them in parts."))
    results = await _checked(pool, load_secret_key(state.settings), addresses)
    if error := context.get("lift_error"):
        # Beside the consent's box, where the address is still on the list; else above the table.
        error["in_row"] = any(row.address == error["address"] and row.suppression for row in results)
    return _page(request, staff, status_code, addresses=text, results=results, **context)


@router.get("/suppressions", response_class=HTMLResponse)
async def suppressions_page(staff: Annotated[Staff, require_console_role(SUPPRESSION_ROLES["check"])],
                            request: Request) -> Response:
    return _page(request, staff)


@router.post("/suppressions/check", response_class=HTMLResponse)
async def check(staff: Annotated[Staff, require_console_role(SUPPRESSION_ROLES["check"])], request: Request,
                state: State, pool: Pool) -> Response:
    return await _checked_page(request, staff, state, pool, str((await read_form(request)).get("addresses", "")))


def _consent_problem(exc: ValidationError) -> str:
    """Why a lift's form is refused, as staff read it beside the consent's box."""
    for error in exc.errors():
        if error["loc"] == ("email",):
            return "This is not an e-mail address: check it again, then lift it."
        if error["type"] == "string_too_short" and not error["input"]:
            return ("Write how and when the subject consented to direct marketing again (the evidence of "
                    "their consent): nothing is lifted without it.")
        if error["type"] == "string_too_short":
            return (f"Too short to be evidence: say how and when the subject consented again, in at least "
                    f"{CONSENT_MIN} characters.")
        if error["type"] == "string_too_long":
            return f"Too long: at most {CONSENT_MAX:,} characters."
    return form_problems(exc)


@router.post("/suppressions/lift", response_class=HTMLResponse)
async def lift(staff: Annotated[Staff, require_console_role(SUPPRESSION_ROLES["check"])], request: Request,
               state: State, pool: Pool) -> Response:
    """`email`: the address whose Lift button was pressed; its consent is the field named after it."""
    role = SUPPRESSION_ROLES["lift"]
    if not staff.has_role(role):
        raise ConsoleForbidden("Forbidden", f"taking an address off the suppression list needs the {role} role; "
                                            f"you are {staff.role}")
    form = await read_form(request)
    text, email = str(form.get("addresses", "")), str(form.get("email", "")).strip()
    consent = str(form.get(f"{CONSENT_FIELD}{email}", "")).strip()
    try:
        body = SuppressionLiftBody.model_validate({"email": email, "consent": consent})
        request_id = await lift_suppression(pool, load_secret_key(state.settings), str(body.email),
                                            consent=body.consent, actor=staff.actor)
    except ValidationError as exc:
        return await _checked_page(request, staff, state, pool, text, status_code=422,
                           lift_error={"address": email, "message": _consent_problem(exc), "consent": consent})
    except NotSuppressed:
        return await _checked_page(request, staff, state, pool, text, status_code=404, lift_error={
            "address": email, "message": f"{email} is not on the list (any more): nothing was lifted. "
                                         "A colleague may have taken it off since you checked."})
    return await _checked_page(request, staff, state, pool, text, lift_done={
        "address": email, "request_id": request_id,
        "reference": short_reference(request_id) if request_id else None})
