"""The subject side of the REST API: submit a request, prove it is yours."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import iterate_in_threadpool

from api.deps import Limiter, State, rate_limiter
from api.outages import RETRY_AFTER
from api.pages import render
from api.problems import Problem
from api.public.attempts import Attempted, count_attempt
from api.public.cross_site import refuse_cross_site_posts
from api.ratelimit import RateLimiter
from api.service import checked_appeal, is_repeat, open_request, paused_on_our_side, run_update
from api.state import AppState
from dsrflow.crypto.hashing import code_hash, link_token_hash, token_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.crypto.package_files import read_package
from dsrflow.domain.appeals import AppealRefused, NotAReference
from dsrflow.domain.audit import append_event
from dsrflow.domain.references import short_reference
from dsrflow.i18n import N_, Translator, wording_of
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.writes import Write
from dsrflow.stores.kept_copies import ERASED, EXPIRED, UNSENT, erased_under
from dsrflow.stores.requests_store import get_request
from policy.intake import intake_problems
from schemas.requests import Channel, NewRequest, PublicNewRequest, SubjectIdentity
from schemas.verification import VerifyAttempt
from workflows.dsr import DataSubjectRequestWorkflow

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


class CountedFirst(APIRoute):
    """A route whose call is counted (`counted_first`) before FastAPI reads and parses its body. A
    dependency runs only once the body is parsed: a body that was no JSON at all (or JSON nested
    past the parser's depth) was answered 422 or 400 uncounted, as often as a client sent one.
    A post from another site's page is refused first, as by every public route's dependency
    (api/public/cross_site.py): counted, it spent its visitor's own allowance."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        count = _COUNTED_FIRST.get(self.endpoint)
        if count is None:
            return handler

        async def route(request: Request) -> Response:
            await refuse_cross_site_posts(request)
            await count(request, await rate_limiter(request))
            return await handler(request)

        return route


_COUNTED_FIRST: dict[Callable[..., Any], Callable[[Request, RateLimiter], Awaitable[None]]] = {}


def counted_first(count: Callable[[Request, RateLimiter], Awaitable[None]]) -> Callable[[_Endpoint], _Endpoint]:
    """Marks a route of `router` to be counted by `count` before its body is read (`CountedFirst`)."""

    def mark(endpoint: _Endpoint) -> _Endpoint:
        _COUNTED_FIRST[endpoint] = count
        return endpoint

    return mark


router = APIRouter(prefix="/v1/public", tags=["subject portal"], route_class=CountedFirst)
_TOKEN = re.compile(r"[0-9a-f]{64}")
# Any decimal digits: a keyboard in full-width mode (Japanese, Chinese) or an Arabic one types the
# code's digits as other characters, which `ascii_code` reads as the digits they are.
CODE = re.compile(r"\d{6,10}")
# Why a package's file is gone (dsrflow/stores/kept_copies.py), as the subject reads it.
PURGED = {
    EXPIRED: "this download link has expired and the package has been deleted; ask us for a new one",
    ERASED: "this package has been deleted because we erased your data at your request",
    UNSENT: "this package has been deleted: your request was closed without it being sent",
}


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str | None = Field(None, examples=["123456"], description="the code from the e-mail")
    token: str | None = Field(None, description="the token from the e-mail's link")

    @model_validator(mode="after")
    def _one(self):
        if (self.code is None) == (self.token is None):
            raise ValueError("send exactly one of code or token")
        if self.code is not None and not CODE.fullmatch(self.code):
            raise ValueError("code must be the 6-digit number from the e-mail")
        if self.token is not None and not _TOKEN.fullmatch(self.token):
            raise ValueError("token must be the one from the e-mail's link")
        return self


async def count_submission(request: Request, limiter: RateLimiter) -> None:
    """Count this client's submission before its body is read (`counted_first`; the portal counts
    before reading its form): a flood of malformed requests is limited like any other."""
    await limiter.hit(request, "submit")


async def count_verification(request: Request, limiter: RateLimiter) -> None:
    """Count a verification attempt against this client, before its body is read; against the
    request too once it is read (`check_identity`)."""
    await limiter.hit(request, "verify")


async def admit_submission(limiter: RateLimiter, email: str) -> None:
    """The limits a counted submission passes before anything is stored: the address's allowance
    of verified requests, and the ceiling of unverified requests open."""
    await limiter.check_allowance("submit", email=email)
    await limiter.check_unverified_ceiling()


async def submit_request(state: AppState, limiter: RateLimiter, request: Request, body: PublicNewRequest,
                         idempotency_key: str | None) -> dict[str, Any]:
    """Store a subject's request and start its workflow (the portal's form and the API's JSON).
    It takes one of the client's network's share of unverified requests (`take_share`), then its
    verification e-mail one of the address's allowance of them (`mail`), before it is stored, so
    that submissions fired together cannot all pass: anyone may name any address, and the
    per-client limits do not stop a sender rotating clients from flooding one mailbox, nor one
    network from filling the ceiling. Neither is taken by a request refused (nothing stored); a
    repeat (its Idempotency-Key, the portal form's submission) opens nothing, so it passes no
    limit of opening at all (`admit_submission` either): it returns the request, and starts its
    workflow if the first call could not, as the 503's detail invites."""
    new = NewRequest(  # kept without marks that reorder it (api/service.py `open_request`)
        type=body.type, country=body.country, corrections=body.corrections,
        restriction_grounds=body.restriction_grounds, objection_scope=body.objection_scope,
        appeal_of=body.appeal_of, complaint_reasons=body.complaint_reasons, language=body.language,
        subject=SubjectIdentity(email=body.email, name=body.name), channel=Channel.web,
    )
    if await is_repeat(state, new, idempotency_key=idempotency_key, origin="subject"):
        row, _ = await open_request(state, new, actor="subject", idempotency_key=idempotency_key, origin="subject")
        return row
    await admit_submission(limiter, str(body.email))
    share = await limiter.take_share(request)
    try:
        await limiter.take("mail", email=str(body.email))
    except Problem:
        await limiter.give_back_share(share)
        raise
    try:
        await _check_appeal_as_told_to_anyone(state, new, idempotency_key)
        row, created = await open_request(state, new, actor="subject", idempotency_key=idempotency_key,
                                          origin="subject")
    except Problem as refused:
        if refused.status < 500:  # refused, nothing stored (a 503 may have stored it: its e-mail goes)
            await limiter.give_back("mail", email=str(body.email))
            await limiter.give_back_share(share)
        elif "request_id" in refused.extra:  # stored, not started: it holds its share as any other
            await limiter.keep_receipt(share, str(refused.extra["request_id"]))
        raise
    if created:
        await limiter.keep_receipt(share, str(row["id"]))
    else:
        await limiter.give_back("mail", email=str(body.email))
        await limiter.give_back_share(share)
    return row


# What anyone is told of an appeal that cannot be opened (`_check_appeal_as_told_to_anyone`):
# messages of the catalogs, so that the portal's page says them in the subject's language; the
# API says them in English. Worded here, not taken from the domain's exceptions: the words for
# anyone are the API's to choose (staff forms keep the domain's, reason by reason).
_NOT_A_REFERENCE = N_("must be the id of the request appealed (a UUID) or the short reference its letters give "
                      "(ten letters and digits, such as %(example)s)")
_CANNOT_BE_APPEALED = N_("no request %(reference)s of this data subject that can be appealed: an appeal (or, under "
                         "UK data protection law, a complaint to us) names a request of yours that we refused, in "
                         "whole or in part, under a law that grants one (VCDPA, CTDPA, CPA; UK GDPR, Data "
                         "Protection Act 2018 s. 164A), and asks for the same as that request")
# The same refusal where the request carried a complaint's reasons (the portal's complaint form says
# its own words: api/public/portal.py): named on that field, whatever the reason, so that it tells
# a stranger no more than the refusal above does. English only: no page of the portal shows it.
_REASONS_NOT_TAKEN = ("no request %(reference)s of this data subject that we refused, in whole or in part, under UK "
                      "data protection law, and asking for the same: only a complaint to us about such a request "
                      "takes reasons (Data Protection Act 2018 s. 164A); an appeal under a US state law takes none")


class AppealNotOpened(Problem):
    """422 naming `field` (`appeal_of`, or `complaint_reasons`), in English; `worded(t)` is the
    same message in `t`'s language."""

    def __init__(self, message: str, *, field: str = "appeal_of", **values: str) -> None:
        self.message, self.values = message, values
        english = message % values
        super().__init__(422, "Invalid request", f"{field}: {english}",
                         errors=[{"field": field, "message": english}])

    def worded(self, t: Translator) -> str:
        return t.gettext(self.message) % self.values


async def _check_appeal_as_told_to_anyone(state: AppState, new: NewRequest, idempotency_key: str | None) -> None:
    """An appeal that cannot be opened, refused in the same words whatever the reason. Anyone may
    submit one, naming a reference they saw and an address they guess: before, the owner's
    address was told why that request could not be appealed (its regime, that it was not
    refused, its type), anyone else's "no request", so one call confirmed who made a request.
    Staff's forms keep each reason (api/service.py `open_request`). Not asked at all when the
    policy refuses the request (a language it does not write in, a correction it does not take):
    `open_request` refuses that first, in the same words for every address; asked first, the
    owner's address alone passed on to the policy's refusal, a silent answer to who made it."""
    if new.appeal_of is None or intake_problems(state.policy.policy, new):
        return
    try:
        await checked_appeal(state, new, idempotency_key=idempotency_key, origin="subject")
    except NotAReference:  # the input's own shape: the same for anyone who types it
        raise AppealNotOpened(_NOT_A_REFERENCE, example="9WPSS9NUBP") from None
    except AppealRefused:
        if new.complaint_reasons:
            raise AppealNotOpened(_REASONS_NOT_TAKEN, field="complaint_reasons", reference=str(new.appeal_of)) from None
        raise AppealNotOpened(_CANNOT_BE_APPEALED, reference=str(new.appeal_of)) from None


# Seconds a subject is asked to wait while their request is paused: compliance resumes it by
# hand (dsrflow/domain/request_resume.py), so no answer can say when; a quarter of an hour.
PAUSED_RETRY_AFTER = 900


def ascii_code(code: str) -> str:
    """The code as the e-mail wrote it: each decimal digit (`CODE`) as its ASCII digit. Hashed as
    typed, "１２３４５６" was a wrong code, and spent one of the five attempts on the right one."""
    return "".join(str(unicodedata.decimal(ch, ch)) for ch in code)


async def check_identity(state: AppState, limiter: RateLimiter, request: Request, request_id: str, *,
                         code: str | None = None, token: str | None = None) -> Attempted:
    """Count the attempt against this client on the request (`count_attempt`: the caller has
    counted it against the client), hash what the subject typed (or the link's token) and ask the
    workflow whether it matches. A request verified spends one of its address's allowance of
    submissions, and gives back its network's share if confirmed from it."""
    secret = load_secret_key(state.settings)
    typed = ascii_code(code) if code else None
    attempt = (
        VerifyAttempt(code_hash=code_hash(secret, request_id, typed)) if typed
        else VerifyAttempt(token_hash=link_token_hash(secret, request_id, token or ""))
    )
    row = await get_request(await state.db(), request_id)
    here = await count_attempt(state, limiter, request, str(row["id"]), token=None if typed else token,
                               code=typed) if row else None
    # Wrong codes count against the subject's address over every request in its name: a stranger
    # opening request after request would otherwise have 25 new guesses with each. Taken before the
    # code is compared, so that guesses fired together cannot all pass; given back for a right
    # code, an earlier e-mail's (no guess: we sent it), and an attempt the workflow refused to compare.
    guessed = row["subject_email"] if code and row is not None else None
    if guessed is not None:
        await limiter.take("guess", email=guessed)
    try:
        result = await run_update(state, request_id, DataSubjectRequestWorkflow.verify, attempt)
    except Problem as refused:
        if guessed is not None:
            await limiter.give_back("guess", email=guessed)
        if paused_on_our_side(refused):
            # Staff's words (which endpoint resumes it, that no worker runs) are not the subject's:
            # what they may do is wait. `stopped` for a stopped workflow, `unanswered` for no worker.
            stopped = bool(refused.extra.get("stopped"))
            raise Problem(503, "Paused", "your request is paused while we put right a problem on our side; it is "
                          "kept and its deadline still applies: try again later",
                          **({"stopped": True} if stopped else {"unanswered": True}),
                          retry_after=PAUSED_RETRY_AFTER if stopped else RETRY_AFTER) from None
        raise
    if guessed is not None and result.earlier_code:
        await limiter.give_back("guess", email=guessed)
    if row is not None and result.verified:
        await limiter.spend("submit", email=row["subject_email"])
        # The mailbox's owner asked for it: its e-mail is no flood (`submit_request`).
        await limiter.give_back("mail", email=row["subject_email"])
        await limiter.confirmed(request, request_id)
        if guessed is not None:
            await limiter.give_back("guess", email=guessed)
    return Attempted(result, *here) if here else Attempted(result)


async def find_package(state: AppState, token: str) -> dict[str, Any]:
    """The package a download token opens; 404 for an unknown token, 410 once it has expired or
    been deleted."""
    if not _TOKEN.fullmatch(token):
        raise Problem(404, "Not found", "no package for this link")
    pool = await state.db()
    row = await pool.fetchrow("SELECT * FROM packages WHERE token_hash = $1", token_hash(token))
    if row is None:
        raise Problem(404, "Not found", "no package for this link")
    # `renewable`: writing to us gets a new link (the response letter says so); not for a package
    # deleted with the subject's data or with a request closed unsent.
    if row["purged_at"] is not None:
        reason = row["purge_reason"]
        raise Problem(410, "Package deleted", PURGED[reason], renewable=reason == EXPIRED,
                      wording=wording_of(await erased_under(pool, row)) if reason == ERASED else None)
    if row["expires_at"] is None or row["expires_at"] <= datetime.now(UTC):
        raise Problem(410, "Link expired", "this download link has expired; ask us for a new one", renewable=True)
    return dict(row)


@router.post("/requests", status_code=202)
@counted_first(count_submission)
async def submit(body: PublicNewRequest, request: Request, state: State, limiter: Limiter,
                 idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> dict[str, Any]:
    """Submit a request. A code to confirm it is yours is e-mailed to the address given.
    Limited per client (429 with `Retry-After`), per address's verified requests and per address's
    verification e-mails (429, the same words for every limit); while
    too many unverified requests are open, 503 with `Retry-After`. An `Idempotency-Key` (at most
    200 characters, as on the staff API) makes a repeat return the request it opened."""
    row = await submit_request(state, limiter, request, body, idempotency_key)
    return {"id": str(row["id"]), "status": row["status"],
            "next": "check your e-mail for a code and send it to /v1/public/requests/{id}/verify"}


@router.post("/requests/{request_id}/verify")
@counted_first(count_verification)
async def verify(request_id: str, body: VerifyBody, request: Request, state: State, limiter: Limiter) -> dict[str, Any]:
    """Confirm your identity with the code or the link token from the e-mail.
    After too many wrong codes the code is refused (423, then 409) until a new one is sent; the
    latest e-mail's link token still confirms (an earlier e-mail's is answered 423). Before any lock,
    an earlier e-mail's link token or code (one a newer code replaced) is answered 410, no attempt
    counted.
    Limited per client and per request and client (429 with `Retry-After`). While the request is
    paused on our side (its workflow stopped, until we resume it), 503 with `Retry-After`."""
    attempted = await check_identity(state, limiter, request, request_id, code=body.code, token=body.token)
    result = attempted.result
    if result.earlier_link:
        raise Problem(410, "Link from an earlier e-mail", "this link is from an earlier e-mail: it no longer works; "
                      "the link in our latest e-mail does, or ask us for a new code",
                      attempts_left=result.attempts_left, locked=False, earlier_link=True)
    if result.earlier_code:
        raise Problem(410, "Code from an earlier e-mail", "this code is from an earlier e-mail: it no longer works; "
                      "the code and the link in our latest e-mail do, or ask us for a new code",
                      attempts_left=attempted.attempts_left, locked=False, earlier_code=True)
    if not result.verified:
        raise Problem(
            400 if not result.locked else 423,
            "Wrong code" if not result.locked else "Verification locked",
            f"{attempted.attempts_left} attempt(s) left" if not result.locked
            else "too many wrong codes: this code no longer works; the link in our e-mail still does, or ask us "
                 "for a new code",
            attempts_left=attempted.attempts_left, locked=result.locked,
        )
    return {"id": request_id, "verified": True}


@router.get("/packages/{token}")
async def download_package(token: str, request: Request, state: State, limiter: Limiter) -> Response:
    """Download an access or portability package with the token from the response letter.
    A browser (or a mail scanner opening an older letter's link) is sent to the portal's page of
    the package, whose button downloads it: a GET records no download in the subject's name. A
    browser following an expired or unknown link, or over the rate limit, gets the portal's page
    saying so."""
    browser = "text/html" in request.headers.get("accept", "")
    try:
        await limiter.hit(request, "link")  # before the lookup, and the package's read
        row = await find_package(state, token)
    except Problem as problem:
        if not browser:
            raise
        retry = problem.extra.get("retry_after")
        return render(request, "portal/problem.html", {"problem": problem}, status_code=problem.status,
                      headers={"Retry-After": str(retry)} if retry else None)
    if browser:
        return RedirectResponse(f"/portal/packages/{token}", status_code=303)
    return await downloaded(state, row)


async def downloaded(state: AppState, row: dict[str, Any]) -> StreamingResponse:
    """The package `row` as a download, recorded as downloaded by the subject once its last byte
    has gone: the public API's GET, and the button on the portal's page of a letter's link (a
    POST, so that a mail scanner opening the link records nothing). Before, it was recorded before
    a byte was read, so a download cut off (the API dying, the storage failing, the file purged
    meanwhile) stood in the evidence as the subject having their data."""
    chunks = read_package(state.storage.blocks(row["path"]), load_secret_key(state.settings), str(row["id"]))
    # Named by the reference the subject's letters quote, not by our internal id's first characters.
    filename = f"{row['kind']}-{short_reference(row['request_id'])}.zip"
    return StreamingResponse(_recorded_once_sent(state, row, chunks), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      "Cache-Control": "no-store"})


async def _recorded_once_sent(state: AppState, row: dict[str, Any], chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in iterate_in_threadpool(chunks):  # the storage's reads block: off the event loop
        yield chunk
        failpoint("package-chunk-sent", str(row["id"]))  # a chunk has gone, the download not yet recorded
    # The package's row and its audit event in one statement: whatever dies, both or neither. A
    # client gone before the end cancels this generator: nothing is recorded.
    async with (await state.db()).acquire() as conn:
        await append_event(
            conn, event_key=f"{row['request_id']}:downloaded:{row['id']}", request_id=str(row["request_id"]),
            event_type="package.downloaded", actor="subject", data={"package_id": str(row["id"])},
            along=[Write("UPDATE packages SET downloaded_at = coalesce(downloaded_at, now()) WHERE id = $1",
                         (row["id"],))],
        )
