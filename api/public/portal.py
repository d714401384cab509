"""The subject portal: plain HTML forms (no JavaScript needed) over the same functions as the
public API — submit a request, complain about a refused one (UK GDPR), confirm it is yours (code
or e-mail link), follow its status, download a package.

Nothing here tells a visitor whether an e-mail address has requests: submitting always answers
the same way, and pages are reached by the request's reference (a random UUID from our letters),
never by address. Pages show no personal data.

Pages speak the subject's language (api/pages.py: `?lang=`, the cookie, `Accept-Language`), and
the form sends it as the request's `language`, the one our letters are written in. Every word
on a page is a message of the catalogs: templates translate their own, and what is worded here
is marked `N_` and translated for the page (`page_translator`, or the template's `translate`).
Confirming a request (the code, the link, a new code) has a module of its own,
api/public/portal_verify.py, which reads a request as the status page does (`current_live`); so
has the complaint form, api/public/portal_complaints.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import request_form
from api.deps import Limiter, State, counted
from api.forms import read_form
from api.outages import CONNECTION_ERRORS, RETRY_AFTER, unavailable_component
from api.page_language import page_language, page_translator
from api.pages import problem_pages, render
from api.problems import Problem
from api.public.intake import (
    AppealNotOpened,
    count_submission,
    downloaded,
    find_package,
    submit_request,
)
from api.public.status_words import Said, is_late, late_remedies, status_words
from api.ratelimit import RateLimiter
from api.read_models.evidence_deadlines import policy_defaults
from api.service import live_state
from api.state import AppState
from dsrflow.domain.appeals import complaint_form
from dsrflow.domain.deadlines import receipt_date_for, takes_complaints
from dsrflow.domain.references import short_reference
from dsrflow.domain.request_resume import ended_flag
from dsrflow.i18n import N_, Translator
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.team_store import request_by_reference
from schemas.clock_start import clock_waits_for_verification
from schemas.requests import PublicNewRequest, RequestStatus
from schemas.workflow import RequestState

router = APIRouter(prefix="/portal", tags=["subject portal pages"], include_in_schema=False,
                   route_class=problem_pages("portal/problem.html"))

# The query of a form sent back only to be shown again in another language (`_form_page`).
RETYPE = "retype"
# Set by a confirmation, spent by the status page it leads to: "you have confirmed" shows once.
CONFIRMED_COOKIE = "dsrflow_confirmed"
# Friendlier words than the validator's for each field of the form (the validator's are for the
# API, in English): a subject never reads a validator's message.
_MESSAGES = {
    "type": N_("Choose what you are asking us to do."),
    "email": N_("Enter your e-mail address, like name@example.com."),
    "name": N_("Enter your name on one line, in at most 200 characters."),
    "country": N_("Choose your country from the list, or leave it empty."),
    "corrections": N_("Tell us what to correct: the correct name, or other corrections (at most 20), "
                      "each on its own line."),
    "restriction_grounds": N_("A restriction needs at least one Art. 18(1) ground: tick each one that applies."),
    "objection_scope": N_("An objection needs a scope: choose what you object to."),
    "language": N_("We cannot write to you in that language. Please choose one of the languages at the top "
                   "of this page."),
}
_APPEAL_NOT_OPENED = N_("We cannot open this appeal")
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


def form_messages(t: Translator) -> dict[str, str]:
    return {field: t.gettext(message) for field, message in _MESSAGES.items()}


def _form_page(request: Request, values: dict[str, Any], errors: dict[str, str], *,
               status: int = 200, headers: dict[str, str] | None = None, **extra: Any) -> HTMLResponse:
    # A fresh submission id per form: sending the same form twice opens one request. The page
    # answering the form's post offers its languages as buttons that send the form back in that
    # language (`RETYPE`): a link to /portal lost what was typed, and a link cannot carry it
    # without putting the address in a URL.
    return render(request, "portal/request_form.html", {
        "values": values, "errors": errors, **request_form.LABELS,
        "submission": values.get("submission") or uuid.uuid4().hex,
        "retype_form": "request-form",
        "retype": f"/portal/requests?{RETYPE}=1" if request.method == "POST" else None, **extra,
    }, status_code=status, headers=headers)


@router.get("", response_class=HTMLResponse)
async def form_page(request: Request) -> HTMLResponse:
    return _form_page(request, {}, {})


@router.get("/requests")
async def form_again() -> RedirectResponse:
    """The address a sent form answered at, opened again (history, a restored tab): the form."""
    return RedirectResponse("/portal", status_code=303)


@router.post("/requests", response_class=HTMLResponse)
async def submit(request: Request, state: State, limiter: Limiter) -> Response:
    return await kept_while_down(request, _form_page, lambda: _submit(request, state, limiter))


async def _submit(request: Request, state: State, limiter: Limiter) -> Response:
    retype = await counted_unless_retyped(request, limiter)
    form = await read_form(request)
    values = request_form.form_values(form)
    errors: dict[str, str] = {}
    t = page_translator(request)
    messages = form_messages(t)
    words = request_form.field_words(state.policy, page_language(request))
    body = {**request_form.details(form, errors, t, words), "email": request_form.text(form, "email") or "",
            "name": request_form.text(form, "name")}
    new = request_form.validate(PublicNewRequest, body, errors, messages)
    request_form.check_policy(state.policy.policy, new, errors, t, messages, words)
    if new is None or errors or retype:
        # A language chosen on the form sent back (portal/base.html): the form as typed, its errors
        # in that language; sent only by its own button.
        return _form_page(request, values, errors, status=422 if errors else 200)
    submission = values.get("submission", "")
    key = f"portal:{submission}" if request_form.SUBMISSION.match(submission) else None
    try:
        return await started(request, state, limiter, new, key)
    except AppealNotOpened as refused:
        # The form has no field for it (an appeal's reference comes in a link or a crafted
        # post), so the problem page says it, in the page's language: already worded for it.
        raise Problem(422, _APPEAL_NOT_OPENED, refused.worded(t)) from None


async def counted_unless_retyped(request: Request, limiter: RateLimiter) -> bool:
    """Either form's post counted as a submission before its form is read, unless it is a language
    chosen on the form sent back (`RETYPE`: True), which the caller answers with the form again and
    never stores, whatever the form holds: it submits nothing, and costs what opening the form
    does, which is not counted either. Counted, each press spent one of the client's submissions
    (`DSRFLOW_RATE_SUBMIT_PER_IP`, 20 an hour), and a subject who read a refused form in a few
    languages was refused the request they then sent."""
    if RETYPE in request.query_params:
        return True
    await count_submission(request, limiter)
    return False


async def started(request: Request, state: AppState, limiter: RateLimiter, new: PublicNewRequest,
                   key: str | None) -> Response:
    """Either form's request stored and started: the way on to its verify page."""
    row = await submit_request(state, limiter, request, new, key)
    return RedirectResponse(f"/portal/requests/{row['id']}/verify", status_code=303)


# What a form's post may raise while a component is down: a connection error, or the 503 Problem of
# a request stored while the workflow engine did not answer (api/service.py).
_OUTAGES: tuple[type[Exception], ...] = (Problem, *CONNECTION_ERRORS)


async def kept_while_down(request: Request, page: Callable[..., HTMLResponse],
                           handle: Callable[[], Awaitable[Response]]) -> Response:
    """Either form's post, answered while the database or the workflow engine does not answer:
    the form again as sent, saying to send it again in a few seconds (portal/_not_started.html),
    its submission id kept, so that the same form sent again is the same request (stored but not
    started when the engine alone was down: api/service.py). Before, the subject read staff's
    words in English (an Idempotency-Key, the request's id), or the outage page, which dropped
    what they had typed and whose "go back" could reload the form: a new submission, a second
    request when the first had been stored."""
    try:
        return await handle()
    except _OUTAGES as exc:
        outage = exc.status == 503 and exc.extra.get("component") if isinstance(exc, Problem) \
            else unavailable_component(exc)
        if not outage:
            raise
    values = request_form.form_values(await read_form(request))
    return page(request, values, {}, status=503, not_started=True, headers={"Retry-After": str(RETRY_AFTER)})


# The status lookup's refusal, and the complaint form's (api/public/portal_complaints.py).
NO_REFERENCE = N_("Enter the request reference from our e-mail, like %(example)s.")


@router.get("/status", dependencies=[counted("lookup")])
async def find_status(request: Request, state: State, reference: str = "") -> Response:
    """The status lookup on the portal's front page: by the reference in our letters only (the
    short one, typed in any case, or the full id). An unknown reference gets the same page as a
    mistyped one: the lookup tells nobody which references exist."""
    request_id = await request_by_reference(await state.db(), reference[:100])
    if request_id is None:
        reference_error = page_translator(request).gettext(NO_REFERENCE) % {"example": "KD7QX3M9TB"}
        return _form_page(request, {}, {}, status=422, reference=reference, reference_error=reference_error)
    return RedirectResponse(f"/portal/requests/{request_id}", status_code=303)


async def request_row(state: AppState, request_id: str) -> dict[str, Any]:
    """The request (its id however spelt is the canonical one by now: api/request_ids.py); 404
    when there is none."""
    row = await get_request(await state.db(), request_id)
    if row is None:
        raise Problem(404, N_("Request not found"),
                      N_("We have no request with this reference. Please check the link or reference "
                         "in our e-mail."))
    return row


async def request_timezone(state: AppState, request_id: str) -> str:
    """The controller's timezone under the policy version the request runs under: its pages write
    a moment in it, as its letters do (a later policy in another zone changes neither). A version
    not on record (intake records it first; a partial restore may lose it) is read as the policy
    in force, not as the policy model's default zone, which is Brussels whoever the controller is."""
    pool = await state.db()
    async with pool.acquire() as conn:
        version = await conn.fetchval(
            """SELECT r.policy_version FROM dsr_requests r
                 JOIN policy_versions v ON v.version = r.policy_version WHERE r.id = $1""", request_id)
        if version is None:
            return state.policy.policy.defaults.timezone
        return (await policy_defaults(conn, version)).timezone


async def current_live(state: AppState, request_id: str) -> tuple[dict[str, Any], RequestStatus, RequestState | None]:
    """The request row, its status as the subject should see it now, and the workflow's live state
    (None when the workflow does not answer). The workflow knows first (the row follows a moment
    later): a subject who has just confirmed must not be told we are still waiting for them, nor
    see the due date from before an extension. The row's `clock_waits`: a UK GDPR request whose
    month has not started, its date counted from receipt (schemas/clock_start.py); the
    workflow's status says so until it has counted the dates again from the day the subject
    confirmed, a moment after they did (the page their confirmation leads to gave the receipt's)."""
    row = await request_row(state, request_id)
    live = await live_state(state, str(row["id"]))
    status = live.status if live else RequestStatus(row["status"])
    waits = clock_waits_for_verification(row["regime"], status, appeal="appeal_of" in row["details"])
    row = {**row, "clock_waits": waits}
    confirmed = row["verified_at"] or (live and live.verification and live.verification.verified_at)
    if status == RequestStatus.awaiting_verification and confirmed:
        status = RequestStatus.in_progress
    if live and live.current_due_date:
        row = {**row, "current_due_date": live.current_due_date, "extended": live.extended}
    return row, status, live


def status_path(request_id: str) -> str:
    return f"/portal/requests/{request_id}"


# What a subject is told while their request's workflow is stopped (staff were told, and
# compliance resumes it: dsrflow/domain/request_resume.py): on the status page, and on the verify
# page (api/public/portal_verify.py), which adds why a code cannot be taken and to try again later.
PAUSED = N_("Your request is paused while we put right a problem on our side.")


def paused_words(request: Request, why: str = PAUSED, *, try_again: bool = False) -> list[str]:
    """`why` it is paused, then that nothing they did is lost (and, `try_again`, to try later)."""
    t = page_translator(request)
    kept = [t.gettext(why), t.gettext(N_("Your request is kept, and its deadline still applies."))]
    return kept + [t.gettext(N_("Please try again later."))] if try_again else kept


@router.get("/requests/{request_id}", response_class=HTMLResponse, dependencies=[counted("lookup")])
async def status_page(request: Request, request_id: str, state: State) -> HTMLResponse:
    """The request's status. "You have confirmed" shows once, on the page the confirmation leads
    to: its cookie is spent here, so a reload or a bookmark shows the status alone."""
    row, status, live = await current_live(state, request_id)
    t = page_translator(request)
    verified = request.cookies.get(CONFIRMED_COOKIE) == str(row["id"])
    # Stopped, its status stands still: the page says why instead, and offers no code to enter,
    # which the stopped workflow could not take. Not a closed request's (a restriction in force
    # whose workflow stopped: staff resume it to lift it), which the subject has had its answer to.
    paused = not status.is_closed and await ended_flag(await state.db(), str(row["id"])) is not None
    said = Said(paused_words(request)) if paused else await status_words(state, row, status, live, t)
    timezone = await request_timezone(state, str(row["id"]))
    response = render(request, "portal/status.html", {
        "row": row, "status_words": str(said), "verified": verified,
        "complaint_form": said.complain_about and complaint_form(said.complain_about, page_language(request)),
        "awaiting_verification": status == RequestStatus.awaiting_verification and not paused, "status": status,
        "reference": short_reference(row["id"]),
        "controller_timezone": timezone,
        # The day its deadline counts from, as its acknowledgement says (the law's place's if earlier).
        "received_on": receipt_date_for(row["received_at"], timezone, row["regime"]),
        # Past its due date, the page says so, and where the subject may complain of it (it said
        # "We answer by" a day gone).
        "late": await late_remedies(state, row, page_language(request)) if is_late(row, status, timezone) else None,
        # An appeal or a complaint to us (UK GDPR, DPA 2018 s. 164A) names the refused request it is
        # about, as its letters do: an appeal's page read as a new request of that type.
        "appeal_of": short_reference(about) if (about := (row["details"] or {}).get("appeal_of")) else None,
        "complaint": takes_complaints(row["regime"]),
    })
    if verified:
        response.delete_cookie(CONFIRMED_COOKIE, path=status_path(str(row["id"])))
    return response


@router.get("/packages/{token}", response_class=HTMLResponse, dependencies=[counted("link")])
async def package_page(request: Request, token: str, state: State) -> HTMLResponse:
    """The page the response letter links to: what the package holds, until when, and the button
    that downloads it. Opening the page records nothing: mail scanners open the links in a
    message, and a download they made would stand in the evidence as the subject's."""
    package = await find_package(state, token)
    return render(request, "portal/package.html", {
        "package": package, "download_url": f"/portal/packages/{token}",
        "controller_timezone": await request_timezone(state, str(package["request_id"]))})


@router.post("/packages/{token}", dependencies=[counted("link")])
async def package_download(token: str, state: State) -> Response:
    """The page's button: the download, recorded as the subject's (`package.downloaded`)."""
    return await downloaded(state, await find_package(state, token))
