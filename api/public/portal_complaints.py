"""The portal's complaint form (UK GDPR: Data Protection Act 2018 s. 164A), which a refusal's letter
links to, open on the refused request: a complaint is opened as a request that refers to it. The
request form and the helpers both forms share: api/public/portal.py."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api import request_form
from api.deps import Limiter, State
from api.forms import read_form
from api.page_language import page_translator
from api.pages import problem_pages, render
from api.public.intake import AppealNotOpened
from api.public.portal import (
    NO_REFERENCE,
    RETYPE,
    counted_unless_retyped,
    form_messages,
    kept_while_down,
    started,
)
from api.state import AppState
from dsrflow.domain.appeals import ASKED, AppealRefused, appealed_request
from dsrflow.i18n import N_, Translator
from schemas.requests import MAX_COMPLAINT_REASONS, PublicNewRequest

router = APIRouter(prefix="/portal", tags=["subject portal pages"], include_in_schema=False,
                   route_class=problem_pages("portal/problem.html"))

# The complaint form (UK GDPR: DPA 2018 s. 164A), which a refusal's letter links to, open on the
# refused request. Its refusal reads the same whatever the reason (no such reference, another
# subject's, a law with no complaint to us, not refused): it tells a stranger nothing.
_NOT_COMPLAINABLE = N_("We have no request %(reference)s of yours that we refused, in whole or in part, under "
                       "UK data protection law. Check the reference in our e-mail, and that the address is the "
                       "one you used for that request.")
# The complaint's reasons (schemas/requests.py `complaint_reasons`): what we look into.
_NO_REASONS = N_("Tell us what your complaint is about.")
_REASONS = N_("Tell us what your complaint is about in at most %(count)s characters, as plain text: line breaks "
              "are fine, other control characters are not.")
COMPLAINTS_PATH = "/portal/complaints"


def _complaint_page(request: Request, values: dict[str, Any], errors: dict[str, str], *,
                    status: int = 200, headers: dict[str, str] | None = None, **extra: Any) -> HTMLResponse:
    # The page answering the form's post offers its languages as buttons that send the form back
    # in that language, as typed (`RETYPE`, as the request form's): links to the complaint form
    # kept only the reference, and the complaint's words typed were gone.
    return render(request, "portal/complaint_form.html", {
        "values": values, "errors": errors, "submission": values.get("submission") or uuid.uuid4().hex,
        "max_reasons": MAX_COMPLAINT_REASONS, "retype_form": "complaint-form",
        "retype": f"{COMPLAINTS_PATH}?{RETYPE}=1" if request.method == "POST" else None, **extra,
    }, status_code=status, headers=headers)


@router.get("/complaints", response_class=HTMLResponse)
async def complaint_page(request: Request, about: str = "") -> HTMLResponse:
    return _complaint_page(request, {"about": about[:100]}, {})


@router.post("/complaints", response_class=HTMLResponse)
async def complain(request: Request, state: State, limiter: Limiter) -> Response:
    """A complaint about a refused request: opened as a request that refers to it (`appeal_of`),
    of its type and with its details (dsrflow/domain/appeals.py), acknowledged at once by e-mail
    and, once the subject confirms it is theirs, decided with its own letters."""
    return await kept_while_down(request, _complaint_page, lambda: _complain(request, state, limiter))


async def _complain(request: Request, state: State, limiter: Limiter) -> Response:
    retype = await counted_unless_retyped(request, limiter)
    form = await read_form(request)
    values = request_form.form_values(form)
    t = page_translator(request)
    messages = form_messages(t)
    errors: dict[str, str] = {}
    about, email = request_form.text(form, "about"), request_form.text(form, "email") or ""
    if about is None:
        errors["about"] = t.gettext(NO_REFERENCE) % {"example": "KD7QX3M9TB"}
    reasons = request_form.text(form, "complaint_reasons")
    if reasons is None:
        errors["complaint_reasons"] = t.gettext(_NO_REASONS)
    messages["complaint_reasons"] = t.gettext(_REASONS) % {"count": MAX_COMPLAINT_REASONS}
    # The form's own fields first, and only then the reference: looked up beside another field's
    # error, it was said of a stranger's address alone ("no request ... of yours"), so a form sent
    # with its reasons left empty told anyone who made a request, storing and mailing nothing.
    body = {"type": "access", "email": email, "appeal_of": about, "language": request_form.text(form, "language"),
            "complaint_reasons": reasons}
    new = request_form.validate(PublicNewRequest, body, errors, messages)
    request_form.check_policy(state.policy.policy, new, errors, t, messages)
    errors.pop("appeal_of", None)  # the form's `about`: said below, in the form's words
    if retype:
        # Shown again in another language: the form's own fields judged, the reference not looked
        # up (it is, counted, when the form is sent).
        return _complaint_page(request, values, errors, status=422 if errors else 200)
    if not errors:
        new = await _complaint(state, body, t, messages)
        if new is None:
            errors["about"] = t.gettext(_NOT_COMPLAINABLE) % {"reference": str(about)[:100]}
    if new is None or errors:
        return _complaint_page(request, values, errors, status=422)
    submission = values.get("submission", "")
    key = f"portal-complaint:{submission}" if request_form.SUBMISSION.match(submission) else None
    try:
        return await started(request, state, limiter, new, key)
    except AppealNotOpened:
        errors["about"] = t.gettext(_NOT_COMPLAINABLE) % {"reference": str(about)[:100]}
        return _complaint_page(request, values, errors, status=422)


async def _complaint(state: AppState, body: dict[str, Any], t: Translator,
                     messages: dict[str, str]) -> PublicNewRequest | None:
    """The complaint a form right in its own fields (`body`) makes about the request its reference
    names: of that request's type and with its details (`ASKED`); None, whatever the reason,
    when the reference names no request of that address, or one the complaint cannot repeat."""
    try:
        refused = await appealed_request(await state.db(), str(body["appeal_of"])[:100], body["email"])
    except AppealRefused:
        return None
    repeated = {k: v for k, v in (refused["details"] or {}).items() if k in ASKED}
    errors: dict[str, str] = {}
    new = request_form.validate(PublicNewRequest, {**body, "type": refused["request_type"], **repeated},
                                errors, messages)
    request_form.check_policy(state.policy.policy, new, errors, t, messages)
    return None if errors else new


