"""What the staff API and the subject portal share: opening a request, asking its workflow to do
something, and reading it back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.outages import RETRY_AFTER, WORKFLOW_ENGINE, unavailable_component
from api.problems import Problem
from api.read_models.event_words import step_words
from api.read_models.evidence_results import task_words
from api.state import AppState
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.appeals import AppealRefused, check_appeal, refuse_decided
from dsrflow.domain.failing_workflows import failing_task, unheld_key
from dsrflow.domain.jurisdiction import not_protected
from dsrflow.domain.references import short_reference
from dsrflow.domain.request_resume import ended_flag
from dsrflow.domain.request_start import start_request_workflow
from dsrflow.infra.failpoints import failpoint
from dsrflow.stores.requests_store import IdempotencyConflict, create_request, get_request, stored_repeat
from dsrflow.stores.restrictions_store import as_view, restriction_for
from policy.intake import intake_problems
from schemas.plain_text import DIRECTION_CONTROLS
from schemas.requests import NewRequest, RequestStatus, without_complaint_reasons
from schemas.staff_answers import STALE_ANSWER
from schemas.sweeps import SWEEP_EVERY
from schemas.workflow import RequestState, workflow_id_for
from workflows.dsr import DataSubjectRequestWorkflow


def _unreordered(new: NewRequest) -> NewRequest:
    """What the subject wrote, or staff copied from them, that staff read (a name, a correction, a
    complaint's reasons), kept without Unicode's bidirectional embeddings, overrides and isolates,
    as the privacy mailbox keeps a subject's mail (dsrflow/domain/inbound_mail.py). One left open
    makes what follows it on the line read in another order, on the console and in the evidence
    pack (there, the address after the name), and a correction compliance approved as they read it
    is not the one written to the systems. Direction marks (LRM, RLM), which a name in Arabic or
    Hebrew may carry, are kept. Every channel: the portal's, staff's forms and the Inbox's."""
    def plain(text: str) -> str:
        return DIRECTION_CONTROLS.sub("", text).strip()

    return new.model_copy(update={
        "subject": new.subject.model_copy(update={"name": new.subject.name and plain(new.subject.name) or None}),
        "corrections": new.corrections and {field: plain(value) for field, value in new.corrections.items()},
        "complaint_reasons": new.complaint_reasons and plain(new.complaint_reasons) or None})


async def is_repeat(state: AppState, new: NewRequest, *, idempotency_key: str | None, origin: str) -> bool:
    """Whether `open_request` would return a stored request for `new` (a repeat of its key)."""
    return await stored_repeat(await state.db(), _unreordered(new), secret=load_secret_key(state.settings),
                               idempotency_key=idempotency_key, origin=origin)


async def checked_appeal(state: AppState, new: NewRequest, *, idempotency_key: str | None,
                         origin: str) -> NewRequest:
    """`new` as `check_appeal` opens it (raising AppealRefused as it does), and refused when the
    request it appeals has an appeal being decided or decided (`refuse_decided`), unless `new`
    repeats a request stored already (its key, the same content): that one is the appeal."""
    pool = await state.db()
    new = await check_appeal(pool, new)
    if new.appeal_of is not None and not await stored_repeat(
            pool, new, secret=load_secret_key(state.settings), idempotency_key=idempotency_key, origin=origin):
        await refuse_decided(pool, new)
    return new


async def open_request(
    state: AppState, new: NewRequest, *, actor: str, idempotency_key: str | None, origin: str
) -> tuple[dict[str, Any], bool]:
    """Store the request, then start its workflow. A repeat (same idempotency key) returns the
    stored request and makes sure its workflow runs, so a start that failed can be retried."""
    new = _unreordered(new)
    problems = intake_problems(state.policy.policy, new)
    # An appeal keeps the law of the request it appeals (dsrflow/domain/appeals.py), wherever the
    # subject lives now.
    if new.appeal_of is None and (outside := not_protected(new.regime, new.country)):
        problems["country"] = outside
    if problems:
        raise _invalid(problems)
    pool = await state.db()
    try:
        new = await checked_appeal(state, new, idempotency_key=idempotency_key, origin=origin)
    except AppealRefused as exc:
        raise _invalid({exc.field: str(exc)}) from None
    # What an appeal took from the request it appeals (its corrections) passed the policy of then:
    # the one in force may no longer take a correction, as it would refuse the appeal typing it.
    if problems := intake_problems(state.policy.policy, new):
        raise _invalid(problems)
    try:
        row, created = await create_request(
            pool, new, loaded_policy=state.policy, secret=load_secret_key(state.settings), actor=actor, idempotency_key=idempotency_key,
            origin=origin,
        )
    except IdempotencyConflict as exc:
        raise Problem(409, "Idempotency key reused", str(exc)) from None
    request_id = str(row["id"])
    if created:
        failpoint("request-stored")  # stored, its workflow not yet started (a sweep starts it)
    try:
        await start_request_workflow(await state.temporal(), row, state.policy.policy.attention_after_minutes,
                                     task_queue=state.settings.task_queue,
                                     task_timeout=state.settings.workflow_task_timeout)
    except (RPCError, OSError, RuntimeError) as exc:
        raise Problem(
            503, "Request stored but not started",
            f"request {request_id} is saved; its workflow could not start: the {WORKFLOW_ENGINE} is "
            f"not answering ({type(exc).__name__}). Repeat the call with the same Idempotency-Key "
            f"in {RETRY_AFTER} seconds to start it (unrepeated, the worker starts it within "
            f"{state.settings.start_sweep_after_minutes + SWEEP_EVERY['request_start_sweep'].seconds // 60} minutes).",
            request_id=request_id, component=WORKFLOW_ENGINE, retry_after=RETRY_AFTER,
        ) from None
    return row, created


def _invalid(problems: dict[str, str]) -> Problem:
    """422 naming each field at fault (`problems`: field -> message)."""
    return Problem(422, "Invalid request", "; ".join(f"{f}: {m}" for f, m in problems.items()),
                   errors=[{"field": f, "message": m} for f, m in problems.items()])


async def _handle(state: AppState, request_id: str) -> WorkflowHandle:
    client = await state.temporal()
    return client.get_workflow_handle(workflow_id_for(request_id))


async def run_update(state: AppState, request_id: str, update: Any, arg: Any) -> Any:
    """Execute a workflow update; a refusal becomes 409 with the workflow's own reason, and an
    open request whose workflow does not answer 503 (`_answering`)."""
    row = await get_request(await state.db(), request_id)
    if row is None:
        raise Problem(404, "Not found", f"no request {request_id}")
    handle = await _handle(state, request_id)
    if row["closed_at"] is None:
        await _answering(state, handle)
    try:
        return await handle.execute_update(update, arg)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        raise Problem(409, "Refused", message) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.FAILED_PRECONDITION:
            # Its task began failing after `_answering`'s query: the engine turns updates away
            # at once from the third failed attempt ("Workflow Task in failed state").
            raise await _not_answering(state, handle) from None
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        row = await get_request(await state.db(), request_id)  # as it is now: it may have closed meanwhile
        if row is not None and row["closed_at"] is None:
            # Stopped, not finished (dsrflow/domain/request_resume.py): say what brings it back.
            raise Problem(409, "Refused", "the request's workflow has stopped while the request is open; "
                          "compliance can resume it from its page (POST /v1/requests/{id}/resume)",
                          stopped=True) from None
        raise Problem(409, "Refused", "the request's workflow has finished") from None


# How long a page waits for a workflow to answer a query. A worker answers in milliseconds; with
# none running the server holds the query for 30 s, and every request page and its 3-second
# live poll would hang that long: the stored row answers instead.
QUERY_PATIENCE = timedelta(seconds=2)
# How long an action waits for the workflow to answer before it is refused (`_answering`): longer
# than a page, as a refused press must be pressed again, and a busy worker can take seconds.
ACTION_PATIENCE = timedelta(seconds=5)


def paused_on_our_side(refused: Problem) -> bool:
    """Whether the workflow could not take a call for a reason of ours, not the caller's: it
    stopped (until compliance resumes it), or no worker answered. A subject is told their request
    is paused and to try again later."""
    return bool(refused.extra.get("stopped") or refused.extra.get("unanswered"))


# The query's patience ran out: no worker took it in time. (A query the engine turns away at once,
# FAILED_PRECONDITION, is left to the update: a workflow whose task has failed three times refuses
# the update the same way, and `run_update` says why; a workflow that was terminated says so too.)
_UNANSWERED = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED)


async def _answering(state: AppState, handle: WorkflowHandle) -> None:
    """Raise 503 unless the workflow answers a query within `ACTION_PATIENCE`. An update waits for
    a worker as long as it takes, and the staff member's page (or the subject's) with it: with no
    worker running, "Extend" spun until one came back, and then took effect with nobody waiting
    for it. Asked first, a workflow that does not answer gets no update: nothing is done, and the
    caller is told to try again. The engine itself away (UNAVAILABLE, after the API client's short
    retries: dsrflow/infra/temporal_client.py ANSWERING) is the outage it is (api/outages.py: 503
    naming the workflow engine), answered at once rather than after the update met it too.
    (Anything else a query meets, a workflow not found, the update meets too, and answers as it
    always has.)"""
    try:
        await handle.query(DataSubjectRequestWorkflow.state, rpc_timeout=ACTION_PATIENCE)
    except RPCError as exc:
        if exc.status in _UNANSWERED:
            raise await _not_answering(state, handle) from None
        if exc.status == RPCStatusCode.UNAVAILABLE:
            raise
    except WorkflowQueryFailedError:
        pass  # the workflow's own answer failed: the update is judged by its validator all the same


async def _not_answering(state: AppState, handle: WorkflowHandle) -> Problem:
    """The 503 for a workflow that does not answer, naming why when the engine can say: sealed
    with a key this deployment no longer holds, or its task failing at every try."""
    if (kid := await unheld_key(handle, state.codec.key_ids(), rpc_timeout=QUERY_PATIENCE)) is not None:
        return Problem(503, "Workflow unreadable",
                       f"the request's workflow was encrypted with key {kid!r}, which this deployment no longer "
                       f"holds (DSRFLOW_ENCRYPTION_KEYS, or $DSRFLOW_HOME/keys), so no worker can carry it on: "
                       f"nothing was done. Put the key back in the list, not first (docs/operations.md, \"Keys "
                       f"and their rotation\")",
                       unanswered=True, unheld_key=kid)
    if attempts := await failing_attempts(handle):
        return Problem(503, "Workflow failing",
                       f"the request's workflow fails each time it tries to carry on (an error in the worker's "
                       f"code, {attempts} attempts so far), so it answers nothing: nothing was done. It carries on "
                       f"once the worker is fixed; the worker's log and the workflow's history name the error",
                       unanswered=True, retry_after=RETRY_AFTER)
    return Problem(503, "Workflow not answering",
                   "the request's workflow did not answer (no worker is running, or every one is busy); "
                   "nothing was done: try again in a moment", unanswered=True, retry_after=RETRY_AFTER)


async def failing_attempts(handle: WorkflowHandle) -> int | None:
    """How many times the workflow's pending task has been tried, when more than once: its code
    fails at every try (workflow code deployed without `workflow.patched`, a bug), and neither a
    query nor an update is answered until a worker that can run it comes. None when it is only
    waiting for a worker, or the engine cannot say."""
    task = await failing_task(handle, rpc_timeout=QUERY_PATIENCE)
    return None if task is None else task[1].attempt


@dataclass(frozen=True)
class NotAnswering:
    """Why a request's workflow does not answer, as far as the engine says: its pending task tried
    `attempts` times (its code fails), or sealed with a key this deployment no longer holds."""

    attempts: int | None = None
    unheld_key: str | None = None
    # The workflow engine itself did not answer (api/outages.py): no workflow can, and there is
    # nobody to ask why (asking would only wait out the client's retries once more).
    engine_away: bool = False


async def workflow_failing(state: AppState, request_id: str) -> NotAnswering:
    """`failing_attempts` and `unheld_key` of the request's workflow, for a page that found it not
    answering."""
    try:
        handle = await _handle(state, request_id)
        return NotAnswering(await failing_attempts(handle),
                       await unheld_key(handle, state.codec.key_ids(), rpc_timeout=QUERY_PATIENCE))
    except Exception:  # noqa: BLE001 - the page says "not answering" when the engine cannot say more
        return NotAnswering()


async def require_step_shown(state: AppState, request_id: str, key: str | None) -> None:
    """Refuse (409) a retry or a skip of a failed step sent for another step than the one failing
    now. The workflow's `retry_step` and `skip_step` answer whichever step fails when they arrive:
    a skip of the acknowledgement's letter, from a page loaded before a colleague skipped it (or
    pressed twice), recorded the response's letter, failed since, as sent by hand, and the subject
    never had their answer. `key`: the `trouble.key` the caller read; None, a form that does not
    say (a page loaded before forms said it), is refused too. Here for what staff read (the step
    failing now, in words, and its key); the update's validator checks the key again, with nothing
    between it and the answer (workflows/step_trouble.py `require`), and judges the rest (already
    answered, not skippable)."""
    if key is None:
        raise Problem(409, "Refused", "this form does not say which failed step it answers: nothing was done; "
                      "reload the page and answer the step it shows")
    if await get_request(await state.db(), request_id) is None:
        raise Problem(404, "Not found", f"no request {request_id}")
    live = await live_state(state, request_id)
    if live is None:
        raise Problem(503, "Workflow not answering", "the request's workflow did not answer, so which step is "
                      "failing now is not known: nothing was done; try again in a moment", unanswered=True,
                      retry_after=RETRY_AFTER)
    failing = live.trouble
    if failing is None or failing.key != key:
        now = (f"the step failing now is another: {step_words(failing.step, failing.about)}" if failing
               else "no step is failing now")
        raise Problem(409, "Refused", f"the failed step this was sent for has been answered or has succeeded "
                      f"since, and {now}: {STALE_ANSWER}",
                      **({"trouble": failing.key} if failing else {}))


async def live_state(state: AppState, request_id: str) -> RequestState | None:
    return (await live_or_engine_away(state, request_id))[0]


async def live_or_engine_away(state: AppState, request_id: str) -> tuple[RequestState | None, bool]:
    """What the request's workflow says now, or None; and whether the workflow engine itself was
    away (not only a worker), for a page that says which."""
    try:
        handle = await _handle(state, request_id)
        return await handle.query(DataSubjectRequestWorkflow.state, rpc_timeout=QUERY_PATIENCE), False
    except Exception as exc:  # noqa: BLE001 - the stored row still answers when the workflow cannot
        return None, unavailable_component(exc) == WORKFLOW_ENGINE


def _stopped(flag: asyncpg.Record | None) -> dict[str, Any] | None:
    return None if flag is None else {"since": flag["since"], "message": flag["message"]}


async def request_view(state: AppState, request_id: str, *, live_too: bool = True,
                       opened: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored request and, with `live_too`, what its workflow says now (a query: the engine
    and a worker answer it). `opened`: the row as this call has just written it, answered as it
    is (a request opened a moment ago has no restriction in force yet)."""
    row = opened or await get_request(await state.db(), request_id)
    if row is None:
        raise Problem(404, "Not found", f"no request {request_id}")
    live = await live_state(state, request_id) if live_too else None
    view = {
        "id": str(row["id"]),
        "reference": short_reference(row["id"]),
        "workflow_id": workflow_id_for(str(row["id"])),
        "type": row["request_type"],
        "regime": row["regime"],
        "country": row["country"],
        "language": row["language"],
        "channel": row["channel"],
        "origin": row["origin"],
        "status": row["status"],
        "subject": {"email": row["subject_email"], "name": row["subject_name"],
                    "customer_id": row["customer_id"]},
        # Without a complaint's reasons (UK GDPR, DPA 2018 s. 164A): the subject's own words about
        # our decision, which api/read_models/staff_reach.py `readable_view` puts back for who
        # decides the complaint (the console's page and the evidence pack show them to them too).
        "details": without_complaint_reasons(row["details"]),
        "received_at": row["received_at"],
        "due_date": row["due_date"],
        "extended_due_date": row["extended_due_date"],
        "current_due_date": row["current_due_date"],
        "acknowledge_by": row["acknowledge_by"],
        "extended": row["extended"],
        "verified_at": row["verified_at"],
        "policy_version": row["policy_version"],
        "created_at": row["created_at"],
        "closed_at": row["closed_at"],
        # A restriction request's restriction once in force: grounds, systems, since, its lift.
        "restriction": None if opened else as_view(await restriction_for(await state.db(), request_id)),
        # Its workflow ended while it is open (the start sweep's flag): every action answers 409
        # until compliance resumes it (POST /v1/requests/{id}/resume).
        "stopped": None if opened else _stopped(await ended_flag(await state.db(), str(row["id"]))),
    }
    if live is not None:
        view.update(
            # A closed row is final: the workflow may not yet have taken in the close it recorded
            # (its state moves on when the transition's activity returns).
            status=row["status"] if RequestStatus(row["status"]).is_closed else live.status.value,
            overdue=live.overdue, warnings_sent=live.warnings_sent,
            verification=live.verification.model_dump(mode="json") if live.verification else None,
            plan=live.plan.model_dump(mode="json") if live.plan else None,
            # With the records a correction left as an earlier erasure kept them, and the status
            # as the console says it ("records kept ..., not corrected", never "not found"), in the
            # words of the request's law ("an earlier deletion" under the CCPA).
            results=[{**(task := r.model_dump(mode="json")), **task_words(task, row["regime"])} for r in live.results],
            # An access or portability package: records read from each system at once (those
            # systems have no task, so no entry in `results`), files each processor sent.
            package=live.package.model_dump(mode="json") if live.package else None,
            closed_reason=live.closed_reason, extension_reason=live.extension_reason,
            withdrawn_by_subject=live.withdrawn_by_subject,
            approval_required=live.approval_required,
            approval=live.approval.model_dump(mode="json") if live.approval else None,
            # A failed step waiting for staff (POST .../retry-step or .../skip-step).
            trouble=live.trouble.model_dump(mode="json") if live.trouble else None,
            # What a decision taken still owes, its record or its letter (docs/lifecycle.md).
            owed=live.owed,
        )
        restriction = view["restriction"]
        if restriction and restriction["status"] == "lifted":
            # The lift the workflow runs again after recording it, where the restriction came after
            # the lift began (workflows/restriction_lifecycle.py `_lift_again`): until its run ends
            # the system may still be restricted, which "lifted" alone denied (the console says it).
            restriction["lift_runs_again"] = sorted(r.system for r in live.results if r.action == "lift_restriction"
                                                    and r.status not in ("done", "not_found"))
    return view
