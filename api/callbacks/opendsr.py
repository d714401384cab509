"""Processor callbacks. The signature over the raw body is checked against the processor's
certificate (from its discovery document, or pinned in its config) before the body is parsed at
all; a bad signature is 403 and changes nothing. A signed callback that is stale or already seen
is refused too (api/callbacks/replay.py). Failures to reach the processor's certificate are
answered with a generic 503: the details (internal URLs, exception text) go to the log only."""

from __future__ import annotations

from typing import NoReturn

import asyncpg
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client

from activities.acted_after_call_off import note_acted_after, note_cancelled_later
from activities.connectors import expand_env
from activities.connectors.bounded_http import NotJson, json_bytes
from activities.connectors.opendsr import trust_anchor_for
from activities.connectors.opendsr_documents import reported_count
from activities.connectors.opendsr_signature import (
    ProcessorCertificateError,
    ProcessorCertificates,
    TrustAnchor,
)
from api.body_limits import DEFAULT_LIMIT
from api.callbacks.replay import (
    DEFAULT_MAX_AGE_SECONDS,
    replay_noted,
    seen,
    signed_time,
    sweep_expired,
)
from api.deps import Limiter, State
from api.erasure_sweeps import sweep_for_processor_answer
from api.problems import Problem
from api.state import AppState
from dsrflow.domain.audit import append_event
from dsrflow.domain.processor_answers import (
    CALLBACK_WENT_BACK,
    OnRecord,
    callback_event_key,
    count_event_key,
    recorded_statuses,
    tell_task,
    went_back,
    went_back_event_key,
)
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.logging import get_logger
from dsrflow.infra.writes import Write
from policy.systems import System
from schemas.workflow import SETTLING_STATUSES, ProcessorUpdate, task_workflow_id

router = APIRouter(prefix="/v1/callbacks", tags=["processor callbacks"])
_certificates = ProcessorCertificates()
log = get_logger("dsrflow.api.callbacks")
_UNAVAILABLE = ("Processor certificate unavailable",
                "the processor's signature cannot be checked right now; retry later")
# OpenDSR's request statuses. A signature proves the processor wrote the body, not that it wrote
# sense: any other word (or a status of 200 KB) went into the append-only audit trail for good,
# and into its event's key, whose index refused a long one with a 500.
STATUSES = frozenset({"pending", "in_progress", "completed", "cancelled"})
# Our job ids are UUIDs (activities/connectors/opendsr.py `subject_request_id`).
_ID_MAX = 200


def _malformed(field: str, message: str) -> Problem:
    return Problem(422, "Malformed callback", f"{field}: {message}", errors=[{"field": field, "message": message}])


def _system(state: AppState, name: str) -> System:
    config = state.policy.policy.systems.get(name)
    if config is None or config.connector != "opendsr":
        raise Problem(404, "Unknown processor", f"no OpenDSR system named {name!r}")
    return config


def _anchor(state: AppState, name: str, system: System) -> TrustAnchor:
    try:
        return trust_anchor_for(system, state.settings.environment)
    except ProcessorCertificateError as exc:
        log.error("opendsr callback refused: insecure trust anchor", system=name, error=str(exc))
        raise Problem(503, *_UNAVAILABLE) from None


@router.post("/opendsr", status_code=202)
async def opendsr_callback(request: Request, state: State, limiter: Limiter,
                           system: str = Query(..., max_length=64)) -> JSONResponse:
    """Status callback from an OpenDSR processor (signed with `X-OpenDSR-Signature`).
    Limited per client (429 with `Retry-After`) before the body is read or a signature checked."""
    await limiter.hit(request, "callback")
    config = _system(state, system)
    anchor = _anchor(state, system, config)
    body = await request.body()
    signature = request.headers.get("x-opendsr-signature", "")
    try:
        verified = await _certificates.verify(anchor, body, signature)
    except ProcessorCertificateError as exc:
        log.warning("opendsr callback: processor certificate unavailable", system=system, error=str(exc))
        raise Problem(503, *_UNAVAILABLE) from None
    if not verified:
        raise Problem(403, "Bad signature",
                      "X-OpenDSR-Signature does not verify against the processor's certificate")
    try:
        # Read as the processor's answers are (bounded_http): nested past JSON_DEPTH, or holding
        # more values than the body cap it arrived under allows (api/body_limits.py), is refused
        # before a parser sees it, rather than past whatever depth this Python's recursion allows.
        payload = json_bytes(body, cap=DEFAULT_LIMIT)
    except NotJson as exc:
        raise Problem(422, "Malformed callback", f"the body {exc}") from None
    try:
        external_id = payload["subject_request_id"]
        status = payload["request_status"]
    except (KeyError, TypeError):
        raise Problem(422, "Malformed callback", "expected JSON with subject_request_id and request_status") from None
    if not isinstance(status, str) or status not in STATUSES:
        raise _malformed("request_status", f"must be one of {', '.join(sorted(STATUSES))}")
    # Anything else (a number, 10 KB of text, a NUL, which PostgreSQL refuses) names no job of ours.
    if not isinstance(external_id, str) or not 0 < len(external_id) <= _ID_MAX or not external_id.isprintable():
        raise _malformed("subject_request_id", f"must be the job's id: text of at most {_ID_MAX} printable characters")
    max_age = float(expand_env(config.config).get("callback_max_age_seconds", DEFAULT_MAX_AGE_SECONDS))
    signed_at = signed_time(payload, max_age)

    pool = await state.db()
    task = await pool.fetchrow(
        "SELECT request_id, system, action, attempt FROM system_tasks WHERE external_id = $1 AND system = $2",
        external_id, system,
    )
    child = None if task is None else task_workflow_id(str(task["request_id"]), system, task["action"], task["attempt"])
    if task is None:
        # A job asked again by compliance, after the processor did not carry out an erasure asked
        # once a hold ended (dsrflow/stores/deferred_store.py): no task of the request's names it,
        # and the sweep that follows it records the answer.
        task = await pool.fetchrow(
            """SELECT request_id, max(attempt) AS attempt FROM deferred_erasures
                WHERE external_id = $1 AND system = $2 GROUP BY request_id""", external_id, system)
    if task is None:
        raise Problem(404, "Unknown request", "no task matches this subject_request_id")
    request_id = str(task["request_id"])
    client = await state.temporal()
    # A completed erasure's count rides along: the task then needs no poll (workflows/system_task.py).
    update = ProcessorUpdate(status=status, results_count=reported_count(payload) if status == "completed" else None)
    # A deferred erasure's job (no child) was asked again under the id its first task used, whose
    # callbacks are on record: its statuses start afresh.
    on_record = OnRecord(set(), counted=False) if child is None else \
        await recorded_statuses(pool, request_id, system, external_id, task["attempt"])
    recorded = on_record.statuses
    # A completion's count after a `completed` without one: the task, which polled the processor
    # on the first and may have read it still at work, settles on it at once, rather than at its
    # next poll (minutes to hours later). On record under a key of its own, once per job.
    counts_late = update.results_count is not None and "completed" in recorded and not on_record.counted
    event_key = count_event_key(request_id, system, external_id) if counts_late else \
        callback_event_key(request_id, system, external_id, status)
    behind = went_back(status, recorded)
    if behind is not None:
        await _refuse_going_back(pool, request_id, system, external_id, status, behind, task["attempt"],
                                 seen(system, body, signed_at, max_age))
    async with pool.acquire() as conn:
        with replay_noted() as replay:  # seen, and audited, in one statement
            await append_event(
                conn, event_key=event_key, request_id=request_id,
                event_type="processor.callback", actor=f"processor:{system}",
                # The count as well: what the start sweep tells a task this API could not
                # (dsrflow/domain/processor_answers.py).
                data={"system": system, "status": status, "attempt": task["attempt"],
                      **({"results_count": update.results_count} if update.results_count is not None else {})},
                along=[seen(system, body, signed_at, max_age)],
            )
        told_attempt = await conn.fetchval(
            "SELECT (data->>'attempt')::int FROM audit_events WHERE event_key = $1", event_key) if replay.seen else None
        if status == "completed" and child is not None:  # (a replay too: an API that died first)
            # Carried out after its call-off cancelled it: not "as far along", a processor acting
            # against our instruction (its staff alert and task record: the worker's start sweep).
            await note_acted_after(conn, request_id=request_id, system=system, action=task["action"],
                                   external_id=external_id, attempt=task["attempt"],
                                   count=update.results_count, recorded=recorded)
        if status == "cancelled" and child is not None:  # after a call-off that could not confirm it
            await note_cancelled_later(conn, request_id=request_id, system=system, action=task["action"],
                                       external_id=external_id, attempt=task["attempt"])
        await sweep_expired(conn)
    if replay.seen:
        # Seen, but maybe never delivered: an API that died (or lost Temporal) between recording
        # the callback and signalling its task answered nothing, so the processor sends the same
        # body again. A status that settles the task is told again, which changes nothing for a
        # task told already; an earlier status, replayed, could only be stale (replay.py). Only
        # the attempt it was recorded for is told: a task staff have since run again is another
        # attempt, which a captured body (a `cancelled`, say) must not settle.
        # Only a word that settles the task at once: a completion without its count has the task
        # poll the processor, and replayed (600 a minute) it had it poll without end.
        settles = status == "cancelled" or update.results_count is not None
        if status in SETTLING_STATUSES and settles and told_attempt == task["attempt"]:
            await _tell(client, child, update)
            await sweep_for_processor_answer(state, pool, system, external_id)
        raise replay.refused()
    failpoint("callback-recorded")  # recorded, and its task not yet told
    # Only the first word of a status that settles the task (and a completion's first count): the
    # task does nothing with `pending` or `in_progress`, and each signal cost its history about six
    # events (Temporal ends a workflow at 51,200) and put its next poll off; a status it was told
    # already tells it nothing new, and one whose telling was lost is told by the start sweep.
    if status in SETTLING_STATUSES and (status not in recorded or counts_late):
        await _tell(client, child, update)
    if status in SETTLING_STATUSES:
        # The job may be an erasure asked after a legal-claims hold ended, whose request's
        # workflow has long finished: the sweep that follows it records the answer.
        await sweep_for_processor_answer(state, pool, system, external_id)
    return JSONResponse({"accepted": True}, status_code=202)


async def _refuse_going_back(pool: asyncpg.Pool, request_id: str, system: str, external_id: str, status: str,
                             behind: str, attempt: int, seen_now: Write) -> NoReturn:
    """Refuse a callback whose status goes back on one on record, said once in the trail for the
    job (the body seen, so that its replay is one)."""
    async with pool.acquire() as conn:
        with replay_noted() as replay:
            await append_event(
                conn, event_key=went_back_event_key(request_id, system, external_id), request_id=request_id,
                event_type=CALLBACK_WENT_BACK, actor=f"processor:{system}",
                data={"system": system, "status": status, "after": behind, "attempt": attempt}, along=[seen_now])
    if replay.seen:
        raise replay.refused()
    raise Problem(409, "Status goes back",
                  f"the job's status on record is {behind}; a later callback saying {status} is not taken")


async def _tell(client: Client, child: str | None, update: ProcessorUpdate) -> None:
    """Tell the task; one settled already (a poll got there first) has nothing to learn. Temporal
    unreachable (or this API dead first): the processor's retry tells it (above), and unrepeated,
    the worker's start sweep does (dsrflow/domain/processor_answers.py)."""
    if child is None:  # a deferred erasure's job: the sweep records its answer
        return
    await tell_task(client, child, update)
