"""Confirmation pages for processors asked by e-mail (connector kind `manual_email`).

The e-mail carries `/v1/callbacks/manual/{token}`. GET shows what was asked and a button, and
changes nothing: mail scanners and link previews follow links. POST records the confirmation once
(with an optional note), audits it and signals the task's workflow; a POST to a link answered
already signals it again (`_answered`): an API may die between the record and the signal (and
unrepeated, the worker's start sweep signals it, dsrflow/domain/processor_answers.py). Only
the token's sha256 is stored (the task's external id), so the token is looked up by its hash. The
page shows no personal data: whoever holds the link already has the e-mail that names the data
subject. The pages (api/callbacks/processor_pages.py) speak the staff language, in the words of
the request's law, as the e-mail did.

For an access or portability request the processor answers with its export instead: the page is an
upload form, and the POST streams the files in (api/callbacks/processor_uploads.py) and confirms the
task with them; the link stops taking files once the task is answered (409, naming the files we
have) or the link expired (403).

Either kind of link records nothing once its request is closed or the link was not used within the
policy's `link_days` of our last e-mail (403, "Link expired"), or once its task has settled by other
means, as when staff resolve it (409, "Already settled"): `refuse_if_closed`, checked before the
body is read and again in the statement that records the answer. A restriction's lift, which runs
on its closed request, is answered as an open request's task is.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.body_limits import read_capped
from api.callbacks import processor_pages as pages
from api.callbacks.link_answers import DEFERRED_WAITING, limits_of, plain_note, record_answer, refuse_if_closed
from api.callbacks.link_refusals import UploadRefused, answered_already, settled_otherwise
from api.callbacks.processor_pages import Reader, reader, reader_of
from api.callbacks.processor_uploads import keep_export, receive_export
from api.deps import Limiter, State
from api.erasure_sweeps import sweep_for_processor_answer
from api.problems import Problem
from api.state import AppState
from dsrflow.domain.audit import append_event
from dsrflow.domain.processor_answers import tell_task
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.logging import get_logger
from schemas.workflow import ProcessorUpdate, task_workflow_id

router = APIRouter(prefix="/v1/callbacks/manual", tags=["processor callbacks"])
log = get_logger("dsrflow.api.manual_confirm")

_TOKEN = re.compile(r"^[0-9a-f]{64}$")
_BODY_MAX = 16 * 1024
async def _received(state: AppState, task: dict[str, Any], r: Reader) -> str:
    """What we have of a processor's answered export, in its page's words (`pages.received`)."""
    names = [row["filename"] for row in await (await state.db()).fetch(
        "SELECT filename FROM processor_exports WHERE external_id = $1 ORDER BY filename", task["external_id"])]
    return pages.received(task, r, names)


def _staff(state: AppState) -> Reader:
    """The reader of a page that knows no request yet: the policy in force's staff language, in
    the GDPR's words."""
    return reader(state.policy.policy.languages.staff.value)


async def _task(state: AppState, token: str) -> dict[str, Any] | None:
    if not _TOKEN.fullmatch(token):
        return None
    pool = await state.db()
    # Labels come from the policy version the request runs under, like everything it does.
    row = await pool.fetchrow(
        f"""SELECT m.request_id, m.system, m.action, m.external_id, m.confirmed_at,
                  coalesce(m.last_reminded_at, m.sent_at) AS last_mailed_at, r.status AS request_status,
                  s.status AS task_status, r.regime, p.content -> 'languages' ->> 'staff' AS staff_language,
                  p.content -> 'controller' ->> 'name' AS controller, p.content -> 'defaults' ->> 'timezone' AS timezone,
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


async def _over_limit(request: Request, state: AppState, limiter: Limiter) -> HTMLResponse | None:
    """Count this client's use of a link (api/ratelimit.py) before its token is looked up; the
    page saying to wait when it is over its limit, None otherwise."""
    try:
        await limiter.hit(request, "link")
    except Problem as problem:
        if problem.status != 429:
            raise
        return pages.over_limit(_staff(state), int(problem.extra["retry_after"]))
    return None


@router.get("/{token}", response_class=HTMLResponse, summary="Confirmation page for a processor asked by e-mail")
async def confirmation_page(request: Request, token: str, state: State, limiter: Limiter) -> HTMLResponse:
    if (refused := await _over_limit(request, state, limiter)) is not None:
        return refused
    task = await _task(state, token)
    if task is None:
        return pages.not_found(_staff(state))
    r = reader_of(task)
    if task["confirmed_at"] is not None:
        received = await _received(state, task, r) if task["action"] == "access" else None
        return pages.already(task, r, received)
    if task["action"] == "access":
        return pages.upload_form(task, r)
    if (closed := _closed(task, r)) is not None:
        return closed
    return pages.confirm_form(task, r)


def _closed(task: dict[str, Any], r: Reader) -> HTMLResponse | None:
    """The page refusing a link that may no longer answer its task (its request closed, the task
    settled, the link expired), or None while it may. Checked by GET and POST alike, and again by
    the statement that records an answer (`record_answer`)."""
    try:
        refuse_if_closed(task, limits_of(task))
    except UploadRefused as closed:
        return pages.refused(task, r, closed)
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
    if (refused := await _over_limit(request, state, limiter)) is not None:
        return refused
    task = await _task(state, token)
    if task is None:
        return pages.not_found(_staff(state))
    r = reader_of(task)
    if task["confirmed_at"] is not None:
        await _answered(state, task)  # a repeat after the first answer was lost
        if task["action"] == "access":
            return pages.refused(task, r, answered_already(await _received(state, task, r)))
        return pages.already(task, r)
    if task["action"] == "access":
        return await _upload(request, state, token, task, r)
    if (closed := _closed(task, r)) is not None:
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
                return pages.already(now, r)
            return _closed(now or task, r) or pages.refused(task, r, settled_otherwise(
                lambda t: t.gettext("This task can no longer be confirmed. Please reply to our e-mail.")))
        # The note may hold anything: it stays in manual_tasks, never in the append-only trail.
        await append_event(
            conn, event_key=f"{request_id}:manual-confirm:{system}:{action}", request_id=request_id,
            event_type="processor.confirmed", actor=f"processor:{system}",
            data={"system": system, "action": action, "channel": "manual_email", "note": note is not None},
        )

    failpoint("manual-confirmed", system)  # on record, and nobody told yet (a repeat tells them)
    await _answered(state, task)
    return pages.confirmed(task, r)


async def _upload(request: Request, state: AppState, token: str, task: dict[str, Any], r: Reader) -> HTMLResponse:
    """Receive the export; a refusal shows the form again with the reason, and keeps nothing."""
    try:
        received = await receive_export(request, state.settings, state.storage, task)
    except UploadRefused as refused:
        if refused.status in (403, 409):
            return pages.refused(task, r, refused)
        return pages.upload_form(task, r, refused)
    pool = await state.db()
    if not await keep_export(pool, task, task["external_id"], received):
        now = await _task(state, token)
        if now is not None and now["confirmed_at"] is None and (closed := _closed(now, r)) is not None:
            return closed  # the request closed, or the task settled, while the files came in
        return pages.refused(task, r, UploadRefused(409, lambda t: t.gettext(
            "This request was answered meanwhile: your files were not kept.")))
    failpoint("export-kept", task["system"])  # files, rows and answer on record; the task not yet told
    await _answered(state, task)
    return pages.export_received(task, r, [f.filename for f in received.files])
