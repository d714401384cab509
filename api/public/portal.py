"""The subject portal: plain HTML forms (no JavaScript needed) over the same functions as the
public API — submit a request, confirm it is yours (code or e-mail link), follow its status,
download a package.

Nothing here tells a visitor whether an e-mail address has requests: submitting always answers
the same way, and pages are reached by the request's reference (a random UUID from our letters),
never by address. Pages show no personal data.

Pages speak the subject's language (api/pages.py: `?lang=`, the cookie, `Accept-Language`), and
the form sends it as the request's `language`, the one our letters are written in. Every word
on a page is a message of the catalogs: templates translate their own, and what is worded here
is marked `N_` and translated for the page (`page_translator`, or the template's `translate`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import request_form
from api.deps import Limiter, State, counted
from api.forms import read_form
from api.pages import page_translator, problem_pages, render
from api.problems import Problem
from api.public.intake import (
    CODE,
    admit_submission,
    check_identity,
    count_submission,
    count_verification,
    downloaded,
    find_package,
    submit_request,
)
from api.service import live_state, run_update
from api.state import AppState
from dsrflow.domain.references import short_reference
from dsrflow.domain.request_resume import ended_flag
from dsrflow.i18n import N_, Translator
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.team_store import request_by_reference
from schemas.requests import PublicNewRequest, RequestStatus
from schemas.workflow import RequestState, ResendInput
from workflows.dsr import DataSubjectRequestWorkflow

router = APIRouter(prefix="/portal", tags=["subject portal pages"], include_in_schema=False,
                   route_class=problem_pages("portal/problem.html"))

_TOKEN = re.compile(r"^[0-9a-f]{64}$")
# Set by a confirmation, spent by the status page it leads to: "you have confirmed" shows once.
_CONFIRMED_COOKIE = "dsrflow_confirmed"
# Friendlier words than the validator's for each field of the form (the validator's are for the
# API, in English): a subject never reads a validator's message.
_MESSAGES = {
    "type": N_("Choose what you are asking us to do."),
    "email": N_("Enter your e-mail address, like name@example.com."),
    "name": N_("Enter your name on one line, in at most 200 characters."),
    "country": N_("Enter the two-letter code of your country, like BE or FR."),
    "corrections": N_("Tell us what to correct: the correct name, or other corrections (at most 20), "
                      "each on its own line."),
    "restriction_grounds": N_("A restriction needs at least one Art. 18(1) ground: tick each one that applies."),
    "objection_scope": N_("An objection needs a scope: choose what you object to."),
    "language": N_("We cannot write to you in that language. Please choose one of the languages at the top "
                   "of this page."),
}
# Each status as the subject reads it: a list of sentences, one message each.
STATUS_WORDS: dict[RequestStatus, tuple[str, ...]] = {
    RequestStatus.awaiting_verification: (N_("Waiting for you to confirm that the request is yours."),),
    RequestStatus.in_progress: (N_("We are working on your request."),),
    RequestStatus.awaiting_approval: (
        N_("Our privacy team is checking your request before we act on it or send our answer."),),
    RequestStatus.completed: (N_("We have answered your request by e-mail."),),
    RequestStatus.denied: (N_("We have refused your request."),
                           N_("Our e-mail explains why and how you can challenge it.")),
    RequestStatus.cancelled: (N_("This request was cancelled."),),
    RequestStatus.closed_unverified: (N_("This request was closed because it was not confirmed in time."),
                                      N_("You are welcome to send a new one.")),
}
# The problems the portal's pages show besides its own (api/public/intake.py, api/ratelimit.py:
# a package link that is unknown, expired or deleted; too many requests waiting), marked here
# for the catalogs; portal/problem.html translates a problem's title and detail as it renders.
# tests/test_portal_languages.py checks that these are the words those modules use.
PROBLEM_WORDS = (
    N_("Not found"), N_("no package for this link"),
    N_("Link expired"), N_("this download link has expired; ask us for a new one"),
    N_("Package deleted"),
    N_("this download link has expired and the package has been deleted; ask us for a new one"),
    N_("this package has been deleted because we erased your data at your request"),
    N_("this package has been deleted: your request was closed without it being sent"),
    N_("Too many requests"),
    N_("Too many requests waiting"),
    N_("we are receiving more requests than usual; please try again in a few minutes"),
)


def _messages(t: Translator) -> dict[str, str]:
    return {field: t.gettext(message) for field, message in _MESSAGES.items()}


def _form_page(request: Request, values: dict[str, Any], errors: dict[str, str], *,
               status: int = 200, **extra: Any) -> HTMLResponse:
    # A fresh submission id per form: sending the same form twice opens one request. (The page
    # answering the form's post offers its languages as links to /portal: api/pages.py.)
    return render(request, "portal/request_form.html", {
        "values": values, "errors": errors, **request_form.LABELS,
        "submission": values.get("submission") or uuid.uuid4().hex, **extra,
    }, status_code=status)


@router.get("", response_class=HTMLResponse)
async def form_page(request: Request) -> HTMLResponse:
    return _form_page(request, {}, {})


@router.post("/requests", response_class=HTMLResponse)
async def submit(request: Request, state: State, limiter: Limiter) -> Response:
    await count_submission(request, limiter)  # before the form is read
    form = await read_form(request)
    values = request_form.form_values(form)
    errors: dict[str, str] = {}
    t = page_translator(request)
    messages = _messages(t)
    body = {**request_form.details(form, errors, t), "email": request_form.text(form, "email") or "",
            "name": request_form.text(form, "name")}
    new = request_form.validate(PublicNewRequest, body, errors, messages)
    request_form.check_policy(state.policy.policy, new, errors, t, messages)
    if new is None or errors:
        return _form_page(request, values, errors, status=422)
    await admit_submission(limiter, str(new.email))
    submission = values.get("submission", "")
    key = f"portal:{submission}" if request_form.SUBMISSION.match(submission) else None
    row = await submit_request(state, new, key)
    return RedirectResponse(f"/portal/requests/{row['id']}/verify", status_code=303)


@router.get("/status", dependencies=[counted("lookup")])
async def find_status(request: Request, state: State, reference: str = "") -> Response:
    """The status lookup on the portal's front page: by the reference in our letters only (the
    short one, typed in any case, or the full id). An unknown reference gets the same page as a
    mistyped one: the lookup tells nobody which references exist."""
    request_id = await request_by_reference(await state.db(), reference[:100])
    if request_id is None:
        reference_error = page_translator(request).gettext(
            N_("Enter the request reference from our e-mail, like %(example)s.")) % {"example": "KD7QX3M9TB"}
        return _form_page(request, {}, {}, status=422, reference=reference, reference_error=reference_error)
    return RedirectResponse(f"/portal/requests/{request_id}", status_code=303)


async def _request_row(state: AppState, request_id: str) -> dict[str, Any]:
    row = await get_request(await state.db(), request_id)
    if row is None:
        raise Problem(404, N_("Request not found"),
                      N_("We have no request with this reference. Please check the link or reference "
                         "in our e-mail."))
    return row


async def _current(state: AppState, request_id: str) -> tuple[dict[str, Any], RequestStatus]:
    """The request row and its status as the subject should see it now (`_current_live`)."""
    row, status, _ = await _current_live(state, request_id)
    return row, status


async def _current_live(state: AppState, request_id: str) -> tuple[dict[str, Any], RequestStatus, RequestState | None]:
    """The request row, its status as the subject should see it now, and the workflow's live state
    (None when the workflow does not answer). The workflow knows first (the row follows a moment
    later): a subject who has just confirmed must not be told we are still waiting for them, nor
    see the due date from before an extension."""
    row = await _request_row(state, request_id)
    live = await live_state(state, request_id)
    status = live.status if live else RequestStatus(row["status"])
    confirmed = row["verified_at"] or (live and live.verification and live.verification.verified_at)
    if status == RequestStatus.awaiting_verification and confirmed:
        status = RequestStatus.in_progress
    if live and live.current_due_date:
        row = {**row, "current_due_date": live.current_due_date, "extended": live.extended}
    return row, status, live


def _status_path(request_id: str) -> str:
    return f"/portal/requests/{request_id}"


@router.get("/requests/{request_id}", response_class=HTMLResponse, dependencies=[counted("lookup")])
async def status_page(request: Request, request_id: str, state: State) -> HTMLResponse:
    """The request's status. "You have confirmed" shows once, on the page the confirmation leads
    to: its cookie is spent here, so a reload or a bookmark shows the status alone."""
    row, status = await _current(state, request_id)
    t = page_translator(request)
    verified = request.cookies.get(_CONFIRMED_COOKIE) == str(row["id"])
    # Stopped, its status stands still: the page says why instead, and offers no code to enter,
    # which the stopped workflow could not take.
    paused = await ended_flag(await state.db(), str(row["id"])) is not None
    words = _paused(request, _PAUSED) if paused else [t.gettext(sentence) for sentence in STATUS_WORDS[status]]
    response = render(request, "portal/status.html", {
        "row": row, "status_words": " ".join(words), "verified": verified,
        "awaiting_verification": status == RequestStatus.awaiting_verification and not paused, "status": status,
        "reference": short_reference(row["id"]),
    })
    if verified:
        response.delete_cookie(_CONFIRMED_COOKIE, path=_status_path(str(row["id"])))
    return response


_LOCKED = N_("For your protection, this code and its link no longer work. Ask for a new code below.")
_NO_MORE_CODES = (
    N_("We have sent all the codes we can for this request, so we cannot send another."),
    N_("If none of them reached you, please reply to our e-mail or write to us, and we will help you confirm it."),
)


@dataclass(frozen=True)
class _Verification:
    """What the verify page can offer now, as the workflow's live state says (`verification`):
    every page the portal shows for confirming, opened or answering a button, works it out here.
    `locked`: too many wrong codes, so no code nor link works until a new one is sent (the
    workflow refuses every attempt: 423). `more_codes`: the subject may still ask for a new code
    (`verification.max_codes`; the workflow refuses one more: 409). When the workflow does not
    answer, the page offers what it always has."""

    awaiting: bool
    locked: bool = False
    more_codes: bool = True

    @classmethod
    def of(cls, status: RequestStatus, live: RequestState | None, *, locked: bool = False) -> _Verification:
        """`locked`: an attempt has just been told so (the query may not answer)."""
        if status != RequestStatus.awaiting_verification:
            return cls(awaiting=False)
        verification = live.verification if live else None
        return cls(awaiting=True, locked=locked or bool(verification and verification.locked),
                   more_codes=verification is None or verification.codes_left > 0)

    def words(self, t: Translator) -> list[str]:
        """What the page says about it: no more codes, else a lock and the way out of it."""
        if not self.awaiting:
            return []
        if not self.more_codes:
            return [t.gettext(message) for message in _NO_MORE_CODES]
        return [t.gettext(_LOCKED)] if self.locked else []


async def _verify_page(request: Request, state: AppState, request_id: str, *, error: list[str] | None = None,
                       status: int = 200, token: str | None = None, notice: str | None = None,
                       locked: bool = False, explain_in_alert: bool = False, paused: bool = False,
                       current: tuple[dict[str, Any], RequestStatus, RequestState | None] | None = None) -> HTMLResponse:
    """The verify page as it stands now (`current`, as `_current_live` answers, if already asked):
    the code form, the e-mail link's button, "Send me a new code", each only while it can work
    (`_Verification`). `error`: what the subject's last press got. A lock is told in the alert, as
    it takes the page's form away; so are the codes run out with `explain_in_alert` (the answer
    to "Send me a new code"), otherwise in place of that button, beside the form that still takes
    the last code. `paused`: the workflow has just refused a press because it stopped (before the
    start sweep flags it, which the page then reads itself): the page says so and offers no
    button, as none could work until compliance resumes the request."""
    row, status_now, live = current or await _current_live(state, request_id)
    now = _Verification.of(status_now, live, locked=locked)
    paused = now.awaiting and (paused or await ended_flag(await state.db(), str(row["id"])) is not None)
    words = now.words(page_translator(request))
    in_alert = now.locked or explain_in_alert
    sentences = [*(error or []), *words] if in_alert else list(error or [])
    return render(request, "portal/verify.html", {
        "row": row, "token": token, "error": " ".join(sentences) or None, "notice": notice,
        "awaiting": now.awaiting, "locked": now.locked, "more_codes": now.more_codes,
        "paused": " ".join(_paused(request)) if paused else None,
        "no_more_codes": None if in_alert else " ".join(words) or None,
        # A page answering a button's post offers its languages as links to the verify page; the
        # page itself (the e-mail's link) keeps its query: its token, and so its button.
        "here": None if request.method == "GET" else f"/portal/requests/{row['id']}/verify",
        "reference": short_reference(row["id"]),
    }, status_code=status)


@router.get("/requests/{request_id}/verify", response_class=HTMLResponse, dependencies=[counted("lookup")])
async def verify_page(request: Request, request_id: str, state: State, token: str = "") -> HTMLResponse:
    """The code form; with the e-mail's link (`?token=`), a single button instead. Opening the
    link changes nothing by itself: mail scanners follow links, so only the button confirms.
    Opened again after a lock or the last code, it shows what the buttons' answers showed."""
    return await _verify_page(request, state, request_id, token=token if _TOKEN.match(token) else None)


@router.post("/requests/{request_id}/verify", response_class=HTMLResponse)
async def verify(request: Request, request_id: str, state: State, limiter: Limiter) -> Response:
    await _request_row(state, request_id)
    await count_verification(request, limiter, request_id)
    form = await read_form(request)
    token = str(form.get("token", "")).strip()
    code = re.sub(r"\s", "", str(form.get("code", "")))
    t = page_translator(request)
    if token and not _TOKEN.match(token):
        return await _verify_page(request, state, request_id, status=422, error=[
            t.gettext(N_("This link is not complete.")),
            t.gettext(N_("Please copy the whole link from our e-mail, or enter the code instead."))])
    if not token and not CODE.fullmatch(code):
        return await _verify_page(request, state, request_id, status=422, error=[
            t.gettext(N_("Enter the code from our e-mail: 6 digits, like %(example)s.")) % {"example": "123456"}])
    try:
        result = await check_identity(state, limiter, request_id, code=None if token else code, token=token or None)
    except Problem as refused:
        return await _refused_attempt(request, state, request_id, refused)
    if result.verified:
        confirmed = RedirectResponse(_status_path(request_id), status_code=303)
        confirmed.set_cookie(_CONFIRMED_COOKIE, request_id, max_age=300, path=_status_path(request_id),
                             httponly=True, samesite="lax", secure=request.url.scheme == "https")
        return confirmed
    if result.locked:
        # The page offers what works now: a new code (counted like any resend), not the form
        # that will refuse every code until then.
        return await _verify_page(request, state, request_id, locked=True, status=423, error=[
            t.gettext(N_("That code is not right, and that was the last attempt."))])
    left = result.attempts_left
    return await _verify_page(request, state, request_id, status=400, error=[
        t.gettext(N_("That code is not right.")),
        t.ngettext("You have %(num)d attempt left.", "You have %(num)d attempts left.", left) % {"num": left}])


# What a subject is told while their request's workflow is stopped (staff were told, and
# compliance resumes it: dsrflow/domain/request_resume.py): on the status page, and on the verify
# page when a code or a new one was refused meanwhile.
_PAUSED = N_("Your request is paused while we put right a problem on our side.")
_PAUSED_CODE = N_("We cannot take your code just now: your request is paused while we put right a problem "
                  "on our side.")


def _paused(request: Request, why: str = _PAUSED_CODE) -> list[str]:
    """`why` it is paused, then that nothing they did is lost; a refused code, to try again later
    (the status page has nothing to try again)."""
    t = page_translator(request)
    kept = [t.gettext(why), t.gettext(N_("Your request is kept, and its deadline still applies."))]
    return kept + [t.gettext(N_("Please try again later."))] if why == _PAUSED_CODE else kept


async def _refused_attempt(request: Request, state: AppState, request_id: str, refused: Problem) -> Response:
    """The workflow refused to count an attempt (`verify`'s validator). After too many wrong codes
    the page offers the button for a new code instead of a dead end; a request no longer waiting
    says there is nothing to confirm; any other refusal stands. (An expired code closes its
    request: docs/lifecycle.md.)"""
    if refused.status != 409:
        raise refused
    if refused.extra.get("stopped"):
        return await _verify_page(request, state, request_id, status=503, paused=True)
    current = await _current_live(state, request_id)
    now = _Verification.of(*current[1:])
    if now.awaiting and not now.locked:
        raise refused
    return await _verify_page(request, state, request_id, status=423 if now.awaiting else 409, current=current)


@router.post("/requests/{request_id}/resend", response_class=HTMLResponse)
async def resend(request: Request, request_id: str, state: State, limiter: Limiter) -> Response:
    """A new code and link by e-mail (the workflow's `resend_verification`, as staff's "Resend
    verification"): the old ones stop working and the attempts start again. Counted per client and
    per request and client, like the code itself (api/ratelimit.py): each one is an e-mail."""
    await _request_row(state, request_id)
    await limiter.hit(request, "resend", request_id=request_id)
    t = page_translator(request)
    try:
        await run_update(state, request_id, DataSubjectRequestWorkflow.resend_verification, ResendInput(actor="subject"))
    except Problem as refused:
        if refused.extra.get("stopped"):
            return await _verify_page(request, state, request_id, status=503, paused=True)
        # Confirmed, closed, not yet ready, no more codes (`_Verification`: the page says so), or
        # the new code could not be sent (nothing changed then: the workflow keeps the code sent
        # earlier, and settles the new one: if its e-mail still went, that code works too): the
        # page says what works now.
        current = await _current_live(state, request_id)
        now = _Verification.of(*current[1:])
        error = []
        if now.more_codes:
            error.append(t.gettext(N_("We could not send a new code for this request just now. Please try again in a minute.")))
            if now.awaiting and not now.locked:
                error.append(t.gettext(N_("The code and link we sent you earlier still work.")))
                error.append(t.gettext(N_("If an e-mail with a new code reaches you after all, that code works too.")))
        return await _verify_page(request, state, request_id, status=409, error=error, explain_in_alert=True,
                                  current=current)
    return await _verify_page(request, state, request_id, notice=" ".join((
        t.gettext(N_("We have sent you a new code and link.")),
        t.gettext(N_("The code and link we sent you earlier no longer work.")))))


@router.get("/packages/{token}", response_class=HTMLResponse, dependencies=[counted("link")])
async def package_page(request: Request, token: str, state: State) -> HTMLResponse:
    """The page the response letter links to: what the package holds, until when, and the button
    that downloads it. Opening the page records nothing: mail scanners open the links in a
    message, and a download they made would stand in the evidence as the subject's."""
    package = await find_package(state, token)
    return render(request, "portal/package.html", {"package": package, "download_url": f"/portal/packages/{token}"})


@router.post("/packages/{token}", dependencies=[counted("link")])
async def package_download(token: str, state: State) -> Response:
    """The page's button: the download, recorded as the subject's (`package.downloaded`)."""
    return await downloaded(state, await find_package(state, token))
