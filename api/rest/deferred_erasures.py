"""Erasures a hold deferred, over REST as on the console's request page (api/console/deferred.py):
where each system's stands, and, for a processor that did not carry one out once the hold ended,
asking it again or recording it as done by other means (dsrflow/stores/deferred_store.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import Field

from api.auth import Staff, require_role
from api.deps import Pool, State
from api.erasure_sweeps import ask_processor_again, with_retries_under_way
from api.problems import Problem
from api.read_models.evidence import request_cut_short
from api.staff_writes import DEFERRED_ROLES
from dsrflow.stores.deferred_store import DeferredRefused, Shown, deferred_erasures, settle_deferred
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.team_store import NOTE_MAX
from schemas.plain_text import StaffText

router = APIRouter(prefix="/v1/requests", tags=["deferred erasures"])


class RetryBody(Shown):
    """What the caller read of the erasure it asks again (optional: no body asks whatever failed)."""


class SettleBody(Shown):
    note: StaffText = Field(min_length=1, max_length=NOTE_MAX,
                           description="how the erasure was carried out, kept as an internal note in the evidence",
                           examples=["The processor's DPO confirmed by phone on 3 December that the contact is deleted."])


async def _known(pool: Any, request_id: str) -> None:
    if await get_request(pool, request_id) is None:
        raise Problem(404, "Not found", f"no request {request_id}")


def _refused(refused: DeferredRefused, field: str | None = None) -> Problem:
    titles = {404: "Not found", 409: "Conflict", 422: "Invalid note"}
    extra = {"errors": [{"field": field, "message": str(refused)}]} if field and refused.status == 422 else {}
    return Problem(refused.status, titles.get(refused.status, "Refused"), str(refused), **extra)


@router.get("/{request_id}/deferred-erasures")
async def list_deferred(staff: Annotated[Staff, require_role(DEFERRED_ROLES["read"])], request_id: str,
                        pool: Pool, state: State) -> list[dict[str, Any]]:
    """Per system, the records a hold deferred and where they stand (`states`: held, asked,
    failed, erased, settled; `state`: where it stands as a whole, failed while any record is), the
    holds behind them, why a processor did not erase (`failure`), how many times it was asked
    (`attempt`), and the `actions` compliance may take now (send `attempt` and `state` with them).
    `resent`, for one asked again whose processor has not yet been sent the question: "running"
    while the sweep that sends it runs (no `retry` then: it would only find that sweep), "not
    started" when nothing is sending it (`retry` starts it); else null. `cut_short`, for an erasure a
    legal-claims hold cut short (the letter's and evidence pack's reading): of the `identifiers` by
    which the processor knows the subject, it had `accepted` the deletion of the data under some
    before the hold; the deferred erasure is that of the data under the `kept` others; else null.
    `unrestricted`: how many of the records called off are no longer restricted (their hold
    released); `kept_whole`: a processor kept whole, which holds no restriction mark of ours."""
    await _known(pool, request_id)
    short = await request_cut_short(pool, request_id)
    listed = await with_retries_under_way(state, request_id, await deferred_erasures(pool, request_id))
    return [{**entry, "cut_short": short.get(entry["system"])} for entry in listed]


@router.post("/{request_id}/deferred-erasures/{system}/retry", status_code=202)
async def retry(staff: Annotated[Staff, require_role(DEFERRED_ROLES["retry"])], request_id: str, system: str,
                state: State, pool: Pool, body: Annotated[RetryBody | None, Body()] = None) -> dict[str, Any]:
    """Ask a processor that did not carry out an erasure (its deferred erasure `failed`) again:
    a new job, whose answer is awaited for the system's `completion_timeout_days`. 409 when the
    system's deferred erasure has not failed, or no longer stands at the `attempt` and `state`
    sent (send them: asked again and failed again since, a retry would ask a third time). Asking
    again after an answer that never came, or one with `asked_now` false, starts the asking of
    that retry (no second retry is recorded)."""
    await _known(pool, request_id)
    try:
        asked_now = await ask_processor_again(state, request_id, system, actor=staff.actor, shown=body)
    except DeferredRefused as refused:
        raise _refused(refused) from None
    return {"system": system, "asked_now": asked_now}


@router.post("/{request_id}/deferred-erasures/{system}/settle")
async def settle(staff: Annotated[Staff, require_role(DEFERRED_ROLES["settle"])], request_id: str, system: str,
                 body: SettleBody, pool: Pool) -> dict[str, Any]:
    """Record a processor's erasure (failed, or asked and not yet confirmed) as carried out by
    other means, with a note saying how: the note is an internal note and part of the evidence.
    409, nothing recorded, once it no longer stands at the `attempt` and `state` sent (send them:
    asked again since, the note would settle a job it was not written for)."""
    await _known(pool, request_id)
    try:
        note_id = await settle_deferred(pool, request_id, system, body.note, actor=staff.actor, shown=body)
    except DeferredRefused as refused:
        raise _refused(refused, "note") from None
    return {"system": system, "note_id": note_id}
