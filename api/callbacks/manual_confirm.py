"""Confirmation pages for processors asked by e-mail (connector kind `manual_email`).

The e-mail carries `/v1/callbacks/manual/{token}`. GET shows what was asked and a button, and
changes nothing: mail scanners and link previews follow links. POST records the confirmation once
(with an optional note), audits it and signals the task's workflow; a POST to a link answered
already signals it again (`_answered`): an API may die between the record and the signal (and
unrepeated, the worker's start sweep signals it, dsrflow/domain/processor_answers.py). Only
the token's sha256 is stored (the task's external id), so the token is looked up by its hash. The
page shows no personal data: whoever holds the link already has the e-mail that names the data
subject.

For an access or portability request the processor answers with its export instead: the page is an
upload form, and the POST streams the files in (api/callbacks/processor_uploads.py) and confirms the
task with them; the link stops taking files once the task is answered (409, naming the files we
have) or the link expired (403).

Either kind of link records nothing once its request is closed or the link was not used within the
policy's `link_days` of our last e-mail (403, "Link expired"), or once its task has settled by other
means, as when staff resolve it (409, "Already settled"): `refuse_if_closed`, checked before the
body is read and again in the statement that records the answer.
"""

from __future__ import annotations

import hashlib
import re
from html import escape
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.body_limits import read_capped
from api.callbacks.processor_uploads import (
    DEFERRED_WAITING,
    FILE_FIELD,
    NOTE_MAX,
    UploadRefused,
    accepted_types,
    answered_already,
    keep_export,
    limits_of,
    plain_note,
    receive_export,
    record_answer,
    refuse_if_closed,
)
from api.deps import Limiter, State
from api.erasure_sweeps import sweep_for_processor_answer
from api.problems import Problem
from api.ratelimit import wait_words
from api.state import AppState
from dsrflow.domain.audit import append_event
from dsrflow.domain.processor_answers import tell_task
from dsrflow.domain.references import short_reference
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.logging import get_logger
from schemas.workflow import ProcessorUpdate, task_workflow_id

router = APIRouter(prefix="/v1/callbacks/manual", tags=["processor callbacks"])
log = get_logger("dsrflow.api.manual_confirm")

_TOKEN = re.compile(r"^[0-9a-f]{64}$")
_BODY_MAX = 16 * 1024
_ACTIONS = {
    "erase": "erase the data subject's personal data",
    "rectify": "correct the data subject's personal data",
    "restrict": "restrict the processing of the data subject's personal data",
    "lift_restriction": "end the restriction of processing of the data subject's personal data",
    "object": "stop the processing the data subject objected to",
    "access": "send us your export of the data subject's personal data",
}
# The link is a credential: keep it out of caches, referrers, search engines and frames.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
_STYLE = """
body { margin: 0; background: #f3f4f6; color: #1f2937; font: 16px/1.5 Arial, Helvetica, sans-serif; }
main { max-width: 40rem; margin: 2rem auto; padding: 1.5rem 2rem; background: #fff; border: 1px solid #d1d5db; }
h1 { font-size: 1.4rem; line-height: 1.3; color: #111827; margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: 0 0 1rem; }
th, td { text-align: left; vertical-align: top; padding: .4rem .6rem; border: 1px solid #d1d5db; }
th { background: #f3f4f6; width: 40%; }
label { display: block; font-weight: bold; margin: 1rem 0 .3rem; }
.hint { color: #374151; font-size: .9rem; margin: 0 0 .4rem; }
input[type=file] { display: block; font: inherit; }
.problem { border-left: 4px solid #b91c1c; padding: .5rem 1rem; background: #fef2f2; }
textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .5rem; border: 1px solid #4b5563; }
button { margin-top: 1rem; padding: .7rem 1.3rem; font: inherit; font-weight: bold; color: #fff;
         background: #1d4ed8; border: 2px solid #1d4ed8; border-radius: 4px; cursor: pointer; }
:focus-visible { outline: 3px solid #b45309; outline-offset: 2px; }
.ok { border-left: 4px solid #047857; padding: .5rem 1rem; background: #ecfdf5; }
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{escape(title)}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _not_found() -> HTMLResponse:
    return _page(
        "Link not recognised",
        "<p>This confirmation link is not valid. Please check that you copied the whole address "
        "from our e-mail, or reply to that e-mail.</p>",
        status=404,
    )


def _details(task: dict[str, Any]) -> str:
    return (
        "<table>\n"
        f'<tr><th scope="row">Controller</th><td>{escape(task["controller"] or "")}</td></tr>\n'
        f'<tr><th scope="row">Processor</th><td>{escape(task["label"] or task["system"])}</td></tr>\n'
        f'<tr><th scope="row">What we asked</th><td>{escape(_ACTIONS.get(task["action"], task["action"]))}</td></tr>\n'
        f'<tr><th scope="row">Our request reference</th><td>{short_reference(task["request_id"])}</td></tr>\n'
        "</table>"
    )


def _when(task: dict[str, Any]) -> str:
    return str(task["confirmed_at"].strftime("%d %B %Y, %H:%M UTC").lstrip("0"))


async def _received(state: AppState, task: dict[str, Any]) -> str:
    """What we have of a processor's answered export, for a processor who asks again (its first
    page lost to a crash or an outage) and must not be left wondering whether to send it again
    by other means."""
    names = [r["filename"] for r in await (await state.db()).fetch(
        "SELECT filename FROM processor_exports WHERE external_id = $1 ORDER BY filename", task["external_id"])]
    if not names:
        return f"On {_when(task)} you told us that you hold no personal data about this person."
    return (f"We received your export on {_when(task)}: {len(names)} file{'' if len(names) == 1 else 's'} "
            f"({', '.join(names)}).")


def _already(task: dict[str, Any], received: str | None = None) -> HTMLResponse:
    said = received or f"This request was confirmed on {_when(task)}."
    return _page(
        "Already confirmed",
        f'<p class="ok">{escape(said)} Thank you: there is nothing more to do.</p>\n{_details(task)}',
    )


async def _task(state: AppState, token: str) -> dict[str, Any] | None:
    if not _TOKEN.fullmatch(token):
        return None
    pool = await state.db()
    # Labels come from the policy version the request runs under, like everything it does.
    row = await pool.fetchrow(
        f"""SELECT m.request_id, m.system, m.action, m.external_id, m.confirmed_at,
                  coalesce(m.last_reminded_at, m.sent_at) AS last_mailed_at, r.status AS request_status,
                  s.status AS task_status,
                  p.content -> 'controller' ->> 'name' AS controller,
                  p.content -> 'systems' -> m.system ->> 'label' AS label,
                  p.content -> 'processor_exports' AS exports_policy, {DEFERRED_WAITING} AS deferred
             FROM manual_tasks m
             JOIN dsr_requests r ON r.id = m.request_id
             LEFT JOIN system_tasks s ON (s.request_id, s.system, s.action) = (m.request_id, m.system, m.action)
             LEFT JOIN policy_versions p ON p.version = r.policy_version
            WHERE m.external_id = $1""",
        hashlib.sha256(token.encode()).hexdigest(),
    )
    return dict(row) if row else None


async def _over_limit(request: Request, limiter: Limiter) -> HTMLResponse | None:
    """Count this client's use of a link (api/ratelimit.py) before its token is looked up; the
    page saying to wait when it is over its limit, None otherwise."""
    try:
        await limiter.hit(request, "link")
    except Problem as problem:
        if problem.status != 429:
            raise
        retry = int(problem.extra["retry_after"])
        page = _page("Too many requests", f'<p class="problem" role="alert">Too many requests from your network: '
                     f"please try again in {wait_words(retry)}.</p>", status=429)
        page.headers["Retry-After"] = str(retry)
        return page
    return None


@router.get("/{token}", response_class=HTMLResponse, summary="Confirmation page for a processor asked by e-mail")
async def confirmation_page(request: Request, token: str, state: State, limiter: Limiter) -> HTMLResponse:
    if (refused := await _over_limit(request, limiter)) is not None:
        return refused
    task = await _task(state, token)
    if task is None:
        return _not_found()
    if task["confirmed_at"] is not None:
        received = await _received(state, task) if task["action"] == "access" else None
        return _already(task, received)
    if task["action"] == "access":
        return _upload_page(task)
    if (closed := _closed(task)) is not None:
        return closed
    return _page(
        "Confirm a data-subject request",
        "<p>We asked you by e-mail to act on a data-subject request. When you have done so, "
        "please confirm below.</p>\n"
        f"{_details(task)}\n"
        '<form method="post">\n'
        '<label for="note">Note (optional)</label>\n'
        '<p class="hint" id="note-hint">For example, that you held no data about this person, or '
        "what you could not do and why. Please do not include the person's data.</p>\n"
        f'<textarea id="note" name="note" rows="4" maxlength="{NOTE_MAX}" aria-describedby="note-hint"></textarea>\n'
        '<button type="submit">Confirm that the request has been carried out</button>\n'
        "</form>",
    )


def _closed(task: dict[str, Any]) -> HTMLResponse | None:
    """The page refusing a link that may no longer answer its task (its request closed, the task
    settled, the link expired), or None while it may. Checked by GET and POST alike, and again by
    the statement that records an answer (`record_answer`)."""
    try:
        refuse_if_closed(task, limits_of(task))
    except UploadRefused as closed:
        return _refused(task, closed)
    return None


async def _tell_task(state: AppState, task: dict[str, Any]) -> None:
    """Signal the task's workflow that the processor confirmed. Temporal unreachable: the answer
    is 503 (the processor's page tries again, and a repeat signals again), not a silent wait. An
    API that dies first tells nobody: the worker's start sweep tells the task within minutes
    (dsrflow/domain/processor_answers.py)."""
    request_id, system, action = str(task["request_id"]), task["system"], task["action"]
    attempt = await (await state.db()).fetchval(
        "SELECT attempt FROM system_tasks WHERE request_id = $1 AND system = $2 AND action = $3",
        task["request_id"], system, action,
    )
    if attempt is None:
        return
    await tell_task(await state.temporal(), task_workflow_id(request_id, system, action, attempt),
                    ProcessorUpdate(status="completed"))


async def _answered(state: AppState, task: dict[str, Any]) -> None:
    """Tell whoever waits for the processor's answer, once it is on record: the task's workflow,
    and for an erasure asked after a hold ended, whose request's workflow has long finished, the
    sweep that records it. Done again on every repeat of an answered link: an API that died (or
    lost Temporal) once the answer was on record told neither, and the processor's repeat tells
    them at once, before the worker's start sweep tells the task (minutes) or the next daily
    sweep records the erasure. Telling twice changes nothing."""
    await _tell_task(state, task)
    if task["deferred"]:
        await sweep_for_processor_answer(state, await state.db(), task["system"], task["external_id"])


@router.post("/{token}", response_class=HTMLResponse, summary="Record a processor's confirmation")
async def confirm(request: Request, token: str, state: State, limiter: Limiter) -> HTMLResponse:
    if (refused := await _over_limit(request, limiter)) is not None:
        return refused
    task = await _task(state, token)
    if task is None:
        return _not_found()
    if task["confirmed_at"] is not None:
        await _answered(state, task)  # a repeat after the first answer was lost
        if task["action"] == "access":
            return _refused(task, answered_already(await _received(state, task)))
        return _already(task)
    if task["action"] == "access":
        return await _upload(request, state, token, task)
    if (closed := _closed(task)) is not None:
        return closed  # before the body is read: a closed link records nothing
    body = await read_capped(request, _BODY_MAX)  # this route is left uncapped for uploads
    note = plain_note((parse_qs(body.decode("utf-8", "replace")).get("note") or [""])[0])
    request_id, system, action = str(task["request_id"]), task["system"], task["action"]
    pool = await state.db()
    async with pool.acquire() as conn, conn.transaction():
        confirmed = await record_answer(conn, task["external_id"], note)
        if confirmed is None:  # a concurrent POST got there first, or the request closed meanwhile
            now = await _task(state, token)
            if now is not None and now["confirmed_at"] is not None:
                return _already(now)
            return _closed(now or task) or _refused(task, UploadRefused(
                409, "This task can no longer be confirmed. Please reply to our e-mail.", title="Already settled"))
        # The note may hold anything: it stays in manual_tasks, never in the append-only trail.
        await append_event(
            conn, event_key=f"{request_id}:manual-confirm:{system}:{action}", request_id=request_id,
            event_type="processor.confirmed", actor=f"processor:{system}",
            data={"system": system, "action": action, "channel": "manual_email", "note": note is not None},
        )

    failpoint("manual-confirmed", system)  # on record, and nobody told yet (a repeat tells them)
    await _answered(state, task)
    return _page(
        "Thank you: confirmation recorded",
        f'<p class="ok">We have recorded that the request has been carried out.</p>\n{_details(task)}\n'
        "<p>You can close this page.</p>",
    )


def _upload_page(task: dict[str, Any], problem: UploadRefused | None = None) -> HTMLResponse:
    """The form a processor sends its export with (or says it holds nothing)."""
    limits = limits_of(task)
    try:
        refuse_if_closed(task, limits)
    except UploadRefused as closed:
        return _refused(task, closed)
    alert = f'<p class="problem" role="alert">{escape(problem.message)}</p>\n' if problem else ""
    return _page(
        "Send your export for a data-subject request",
        f"{alert}<p>We asked you by e-mail for a copy of the personal data you hold about a data subject "
        "on our behalf. Please send it here: the files go to the data subject with the rest of their "
        "data, so send it in a form they can read.</p>\n"
        f"{_details(task)}\n"
        '<form method="post" enctype="multipart/form-data">\n'
        f'<label for="files">Your export</label>\n'
        f'<p class="hint" id="files-hint">JSON, CSV, PDF or plain-text files, or a ZIP archive of them; at most '
        f"{limits.max_file_mb} MB a file and {limits.max_total_mb} MB in all. Web pages, programs and other "
        "kinds of file are refused.</p>\n"
        f'<input type="file" id="files" name="{FILE_FIELD}" multiple accept="{escape(accepted_types(limits))}" '
        'aria-describedby="files-hint">\n'
        '<label><input type="checkbox" name="no_data" value="1"> We hold no personal data about this person</label>\n'
        '<label for="note">Note (optional)</label>\n'
        '<p class="hint" id="note-hint">For example, what the files contain, or what you could not include '
        "and why.</p>\n"
        f'<textarea id="note" name="note" rows="4" maxlength="{NOTE_MAX}" aria-describedby="note-hint"></textarea>\n'
        '<button type="submit">Send the export</button>\n'
        "</form>",
        status=problem.status if problem else 200,
    )


def _refused(task: dict[str, Any], refused: UploadRefused) -> HTMLResponse:
    title = refused.title or {409: "Already answered", 403: "Link expired"}.get(refused.status, "Upload refused")
    return _page(title, f'<p class="problem" role="alert">{escape(refused.message)}</p>\n{_details(task)}',
                 status=refused.status)


async def _upload(request: Request, state: AppState, token: str, task: dict[str, Any]) -> HTMLResponse:
    """Receive the export; a refusal shows the form again with the reason, and keeps nothing."""
    try:
        received = await receive_export(request, state.settings, state.storage, task)
    except UploadRefused as refused:
        if refused.status in (403, 409):
            return _refused(task, refused)
        return _upload_page(task, refused)
    pool = await state.db()
    if not await keep_export(pool, task, task["external_id"], received):
        now = await _task(state, token)
        if now is not None and now["confirmed_at"] is None and (closed := _closed(now)) is not None:
            return closed  # the request closed, or the task settled, while the files came in
        return _refused(task, UploadRefused(409, "This request was answered meanwhile: your files were not kept."))
    failpoint("export-kept", task["system"])  # files, rows and answer on record; the task not yet told
    await _answered(state, task)
    sent = (f"We have received {len(received.files)} file{'' if len(received.files) == 1 else 's'}: "
            + ", ".join(f.filename for f in received.files) + "."
            if received.files else "We have recorded that you hold no personal data about this person.")
    return _page("Thank you: export received",
                 f'<p class="ok">{escape(sent)}</p>\n{_details(task)}\n<p>You can close this page.</p>')
