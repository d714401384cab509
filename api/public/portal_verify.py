"""Confirming on the portal that a request is yours: the code form, the e-mail link's button,
"Send me a new code", and what the page says when one of them cannot work now (too many wrong
codes, which lock the code but not the link, an earlier e-mail's link, every code sent, or the
request paused while its workflow is stopped). The workflow decides each attempt (`verify` and `resend_verification`);
these pages say what it answered. The status page and the shared helpers: api/public/portal.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.csrf import cookie_secure
from api.deps import Limiter, State, counted
from api.forms import read_form
from api.page_language import page_language, page_translator
from api.pages import problem_pages, render
from api.problems import Problem
from api.public.intake import CODE, check_identity, count_verification
from api.public.portal import (
    CONFIRMED_COOKIE,
    current_live,
    paused_words,
    request_row,
    status_path,
)
from api.public.status_words import status_words
from api.ratelimit import wait_words
from api.service import paused_on_our_side, run_update
from api.state import AppState
from dsrflow.domain.appeals import complaint_form
from dsrflow.domain.references import short_reference
from dsrflow.domain.request_resume import ended_flag
from dsrflow.i18n import N_, Translator
from schemas.requests import RequestStatus
from schemas.workflow import RequestState, ResendInput
from workflows.dsr import DataSubjectRequestWorkflow

router = APIRouter(prefix="/portal", tags=["subject portal pages"], include_in_schema=False,
                   route_class=problem_pages("portal/problem.html"))

_TOKEN = re.compile(r"^[0-9a-f]{64}$")
# Why a code cannot be taken while the request is paused (portal.py `paused_words`).
_PAUSED_CODE = N_("We cannot take your code just now: your request is paused while we put right a problem "
                  "on our side.")

# Too many wrong codes lock the code, never the e-mail's link (workflows/verification.py
# LINK_OUTLIVES_LOCK): whoever holds a request's reference can type codes, only its subject has the
# link. Said so, or the subject whose code a stranger locked thinks there is no way on.
_LOCKED = N_("For your protection, the code from our e-mail no longer works: too many wrong codes were typed.")
_LINK_WORKS = N_("The link in our latest e-mail still works: open it to confirm that the request is yours.")
_OR_ASK = N_("Or ask for a new code below.")
# The link of an e-mail a newer code replaced: refused, after a lock or before one (where it costs no
# attempt: workflows/verification.py EARLIER_LINK), with the ways on that work.
_EARLIER = N_("This link is from an earlier e-mail: it no longer works.")
# The code of such an e-mail, typed before any lock: no attempt counted (EARLIER_CODE), and said to be
# what it is, not "That code is not right".
_EARLIER_CODE = N_("That code is from an earlier e-mail: it no longer works.")
# A wrong code that was the last this client may try on the code for now (api/public/attempts.py),
# though the code is not locked: a new code may be tried at once, and the link works.
_SPENT_HERE = N_("That code is not right, and you cannot try another code from here for %(wait)s.")
# The e-mail's link cut short: its token is not whole (opened, or its button pressed).
_INCOMPLETE = (N_("This link is not complete."),
               N_("Please copy the whole link from our e-mail, or enter the code instead."))
# A code refused once a newer one replaced the first (a new code asked for, the reminder): an earlier
# e-mail's (told so, `_EARLIER_CODE`) or a mistyped one, which may have been copied from an earlier
# e-mail all the same, so it is said whichever it was.
_LATEST_CODE = N_("We have sent you more than one code: only the one in our latest e-mail works.")
# Closed unconfirmed (its codes expired), cancelled or refused: the verify page (a late e-mail's link)
# says which, in the status page's words, not only that there is nothing to confirm; a request
# confirmed and open, or answered, has just "nothing to confirm".
_CLOSED_UNCONFIRMED = (RequestStatus.closed_unverified, RequestStatus.cancelled, RequestStatus.denied)
_NO_MORE_CODES = (
    N_("We have sent all the codes we can for this request, so we cannot send another."),
    N_("If none of them reached you, please reply to our e-mail or write to us, and we will help you confirm it."),
)


@dataclass(frozen=True)
class _Verification:
    """What the verify page can offer now, as the workflow's live state says (`verification`):
    every page the portal shows for confirming, opened or answering a button, works it out here.
    `locked`: too many wrong codes, so the code no longer works until a new one is sent (the
    workflow refuses it: 423), though the e-mail's link still does. `more_codes`: the subject may
    still ask for a new code (`verification.max_codes`; the workflow refuses one more: 409).
    `replaced`: a newer code replaced the first (a new code asked for, or the reminder's). When
    the workflow does not answer, the page offers what it always has."""

    awaiting: bool
    locked: bool = False
    more_codes: bool = True
    replaced: bool = False

    @classmethod
    def of(cls, status: RequestStatus, live: RequestState | None, *, locked: bool = False) -> _Verification:
        """`locked`: an attempt has just been told so (the query may not answer)."""
        if status != RequestStatus.awaiting_verification:
            return cls(awaiting=False)
        verification = live.verification if live else None
        return cls(awaiting=True, locked=locked or bool(verification and verification.locked),
                   more_codes=verification is None or verification.codes_left > 0,
                   replaced=bool(verification and verification.round > 1))

    def words(self, t: Translator, *, link: bool = False, ways_on: bool = False) -> list[str]:
        """What the page says about it: a lock and the ways on (the link, a new code), and no more
        codes. `link`: the page was opened from the e-mail's link, whose button it offers.
        `ways_on`: a press was just refused, no lock (an earlier e-mail's link, the client's last
        code for now): the same ways on."""
        if not self.awaiting:
            return []
        said = [_LOCKED] if self.locked else []
        if (self.locked or ways_on) and not link:
            said.append(_LINK_WORKS)
        if not self.more_codes:
            said += _NO_MORE_CODES
        elif (self.locked or ways_on) and not link:
            said.append(_OR_ASK)
        return [t.gettext(message) for message in said]


async def _verify_page(request: Request, state: AppState, request_id: str, *, error: list[str] | None = None,
                       status: int = 200, token: str | None = None, notice: str | None = None,
                       locked: bool = False, explain_in_alert: bool = False, paused: bool = False,
                       ways_on: bool = False, wrong_code: bool = False,
                       current: tuple[dict[str, Any], RequestStatus, RequestState | None] | None = None) -> HTMLResponse:
    """The verify page as it stands now (`current`, as `current_live` answers, if already asked):
    the code form, the e-mail link's button, "Send me a new code", each only while it can work
    (`_Verification`). `error`: what the subject's last press got. A lock is told in the alert, as
    it takes the page's form away; so are the codes run out with `explain_in_alert` (the answer
    to "Send me a new code"), otherwise in place of that button, beside the form that still takes
    the last code. `paused`: the workflow has just refused a press because it stopped (before the
    start sweep flags it, which the page then reads itself): the page says so and offers no
    button, as none could work until compliance resumes the request. `ways_on`: the press was
    refused with no lock (an earlier e-mail's link, or the client's last code for now): the alert
    offers the ways on, as a lock's does.
    `wrong_code`: a code was refused as wrong; once a newer code replaced the first, the alert says
    only the latest e-mail's works (the subject may have typed an earlier one's)."""
    row, status_now, live = current or await current_live(state, request_id)
    now = _Verification.of(status_now, live, locked=locked)
    paused = now.awaiting and (paused or await ended_flag(await state.db(), str(row["id"])) is not None)
    t = page_translator(request)
    if wrong_code and now.replaced:
        error = [*(error or []), t.gettext(_LATEST_CODE)]
    words = now.words(t, link=token is not None, ways_on=ways_on)
    in_alert = now.locked or explain_in_alert or ways_on
    sentences = [*(error or []), *words] if in_alert else list(error or [])
    closed = await status_words(state, row, status_now, live, t) if status_now in _CLOSED_UNCONFIRMED else None
    return render(request, "portal/verify.html", {
        "row": row, "token": token, "error": " ".join(sentences) or None, "notice": notice,
        "awaiting": now.awaiting, "locked": now.locked, "more_codes": now.more_codes,
        "paused": " ".join(paused_words(request, _PAUSED_CODE, try_again=True)) if paused else None,
        "no_more_codes": None if in_alert else " ".join(words) or None,
        # A page answering a button's post offers its languages as links to the verify page; the
        # page itself (the e-mail's link) keeps its query: its token, and so its button.
        "here": None if request.method == "GET" else f"/portal/requests/{row['id']}/verify",
        "reference": short_reference(row["id"]),
        "status": status_now,
        "closed_words": str(closed) if closed else None,
        "complaint_form": complaint_form(closed.complain_about, page_language(request))
                          if closed and closed.complain_about else None,
    }, status_code=status)


@router.get("/requests/{request_id}/verify", response_class=HTMLResponse, dependencies=[counted("lookup")])
async def verify_page(request: Request, request_id: str, state: State, token: str = "") -> HTMLResponse:
    """The code form; with the e-mail's link (`?token=`), a single button instead. Opening the
    link changes nothing by itself: mail scanners follow links, so only the button confirms.
    Opened again after a lock or the last code, it shows what the buttons' answers showed. A link
    cut short (a mail program wrapping it) says so, with the code form."""
    if token and not _TOKEN.match(token):
        return await _verify_page(request, state, request_id, status=422,
                                  error=[page_translator(request).gettext(m) for m in _INCOMPLETE])
    return await _verify_page(request, state, request_id, token=token or None)


@router.get("/requests/{request_id}/resend", include_in_schema=False)
async def resend_page(request_id: str) -> RedirectResponse:
    """The address "Send me a new code" answered at, opened again (history, a restored tab): the
    verify page, not "Page not found"."""
    return RedirectResponse(f"/portal/requests/{request_id}/verify", status_code=303)


@router.post("/requests/{request_id}/verify", response_class=HTMLResponse)
async def verify(request: Request, request_id: str, state: State, limiter: Limiter) -> Response:
    # Counted against the client before the request is looked up, as the API's verify is: posts to
    # ids that name no request were answered 404 uncounted, each a lookup; against the request once
    # the form says what it tries (`check_identity`). (The path's id is already the request's one
    # spelling: api/request_ids.py.)
    await count_verification(request, limiter)
    await request_row(state, request_id)
    form = await read_form(request)
    token = str(form.get("token", "")).strip()
    code = re.sub(r"\s", "", str(form.get("code", "")))
    t = page_translator(request)
    if token and not _TOKEN.match(token):
        return await _verify_page(request, state, request_id, status=422, error=[t.gettext(m) for m in _INCOMPLETE])
    if not token and not CODE.fullmatch(code):
        return await _verify_page(request, state, request_id, status=422, error=[
            t.gettext(N_("Enter the code from our e-mail: 6 digits, like %(example)s.")) % {"example": "123456"}])
    try:
        attempted = await check_identity(state, limiter, request, request_id, code=None if token else code,
                                         token=token or None)
    except Problem as refused:
        return await _refused_attempt(request, state, request_id, refused)
    result = attempted.result
    if result.verified:
        confirmed = RedirectResponse(status_path(request_id), status_code=303)
        confirmed.set_cookie(CONFIRMED_COOKIE, request_id, max_age=300, path=status_path(request_id),
                             httponly=True, samesite="lax", secure=cookie_secure(request, state.settings))
        return confirmed
    if result.earlier_link:
        # An e-mail a newer code replaced: no attempt counted (the subject typed nothing).
        return await _verify_page(request, state, request_id, status=410, ways_on=True,
                                  error=[t.gettext(_EARLIER)])
    if result.earlier_code:
        return await _verify_page(request, state, request_id, status=410, ways_on=True, wrong_code=True,
                                  error=[t.gettext(_EARLIER_CODE)])
    if result.locked:
        # The page offers what works now: the e-mail's link, a new code (counted like any resend),
        # not the form that will refuse every code until then. A link refused here is an older
        # e-mail's: the workflow takes the latest one's even after a lock.
        return await _verify_page(request, state, request_id, locked=True, status=423, error=[t.gettext(
            _EARLIER if token
            else N_("That code is not right, and that was the last attempt."))])
    if attempted.spent_here:
        # This client's attempts on the code are spent for now (`count_attempt`), the code's own
        # not: the page says until when, and the ways on that work at once, a new code or the link.
        wait = wait_words(attempted.retry_after, page_language(request))
        return await _verify_page(request, state, request_id, status=400, ways_on=True, wrong_code=True,
                                  error=[t.gettext(_SPENT_HERE) % {"wait": wait}])
    left = attempted.attempts_left
    return await _verify_page(request, state, request_id, status=400, wrong_code=True, error=[
        t.gettext(N_("That code is not right.")),
        t.ngettext("You have %(num)d attempt left.", "You have %(num)d attempts left.", left) % {"num": left}])


async def _refused_attempt(request: Request, state: AppState, request_id: str, refused: Problem) -> Response:
    """The workflow refused to count an attempt (`verify`'s validator). After too many wrong codes
    the page offers the button for a new code instead of a dead end; a request no longer waiting
    says there is nothing to confirm; any other refusal stands. (An expired code closes its
    request: docs/lifecycle.md.)"""
    if paused_on_our_side(refused):
        return await _verify_page(request, state, request_id, status=503, paused=True)
    if refused.status != 409:
        raise refused
    current = await current_live(state, request_id)
    now = _Verification.of(*current[1:])
    if now.awaiting and not now.locked:
        raise refused
    return await _verify_page(request, state, request_id, status=423 if now.awaiting else 409, current=current)


@router.post("/requests/{request_id}/resend", response_class=HTMLResponse)
async def resend(request: Request, request_id: str, state: State, limiter: Limiter) -> Response:
    """A new code and link by e-mail (the workflow's `resend_verification`, as staff's "Resend
    verification"): the old ones stop working and the attempts start again. Counted per client and
    per request and client, like the code itself, and against the address's verification e-mails
    from any client (api/ratelimit.py): each one is an e-mail."""
    await limiter.hit(request, "resend", request_id=request_id)  # before the lookup, as `verify`
    email = (await request_row(state, request_id))["subject_email"]
    await limiter.take("mail", email=email)
    t = page_translator(request)
    try:
        await run_update(state, request_id, DataSubjectRequestWorkflow.resend_verification, ResendInput(actor="subject"))
    except Problem as refused:
        await limiter.give_back("mail", email=email)
        if paused_on_our_side(refused):
            return await _verify_page(request, state, request_id, status=503, paused=True)
        # Confirmed, closed, not yet ready, no more codes (`_Verification`: the page says so), or
        # the new code could not be sent (nothing changed then: the workflow keeps the code sent
        # earlier, and settles the new one: if its e-mail still went, that code works too): the
        # page says what works now.
        current = await current_live(state, request_id)
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
