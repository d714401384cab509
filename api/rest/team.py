"""Team work over REST, as on the console (api/console/team.py, which says why these are not
workflow updates): assign a request, read and add internal notes."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Staff, require_role
from api.deps import Pool
from api.problems import Problem
from api.read_models.staff_reach import may_read, readable_notes
from api.staff_writes import TEAM_ROLES
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.team_store import NOTE_MAX, NoteKeyReused, TeamRefused, add_note, assign, assignment
from schemas.plain_text import StaffText

router = APIRouter(prefix="/v1/requests", tags=["team"])


class AssigneeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(description="a staff token id (`GET /v1/tokens` lists them), `me`, or null for nobody",
                                 examples=["me"])


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: StaffText = Field(min_length=1, max_length=NOTE_MAX, description="for staff only; never sent to the subject",
                      examples=["Called the subject: the second address is hers too."])


async def _known(pool: Any, request_id: str) -> None:
    if await get_request(pool, request_id) is None:
        raise Problem(404, "Not found", f"no request {request_id}")


@router.put("/{request_id}/assignee")
async def put_assignee(staff: Annotated[Staff, require_role(TEAM_ROLES["assign"])], request_id: str,
                       body: AssigneeBody, pool: Pool) -> dict[str, Any] | None:
    """Assign the request to a member of staff (`me`: take it), or to nobody; audited."""
    await _known(pool, request_id)
    try:
        await assign(pool, request_id, staff.token_id if body.assignee == "me" else body.assignee, actor=staff.actor)
    except TeamRefused as refused:
        raise Problem(422, "Invalid assignee", str(refused), errors=[{"field": "assignee", "message": str(refused)}]) from None
    return await assignment(pool, request_id)


@router.get("/{request_id}/notes")
async def list_notes(staff: Annotated[Staff, require_role(TEAM_ROLES["note"])], request_id: str,
                     pool: Pool) -> list[dict[str, Any]]:
    """Staff's internal notes on the request, oldest first: those settling a deferred erasure only
    for who read deferred erasures (compliance)."""
    await _known(pool, request_id)
    return await readable_notes(pool, request_id, partial(may_read, staff.has_role))


@router.post("/{request_id}/notes", status_code=201)
async def post_note(staff: Annotated[Staff, require_role(TEAM_ROLES["note"])], request_id: str, body: NoteBody,
                    pool: Pool, idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                    ) -> dict[str, str]:
    """Add an internal note: never sent to the subject, kept in the audit trail (with its sha256)
    and the evidence pack. Repeating the call with the same `Idempotency-Key` header (a retry after
    an answer that never came) keeps the note once and answers the same; the key sent again by the
    same member of staff on the same request with other words is refused (409), nothing kept."""
    await _known(pool, request_id)
    # A prefix the console's one-time keys never hold (api/request_form.py `SUBMISSION`: no colon),
    # so a caller's key, whatever it is, can stand for no note the console sent: none is refused.
    once = f"header:{idempotency_key}" if idempotency_key else None
    try:
        return {"id": await add_note(pool, request_id, body.note, actor=staff.actor, once=once)}
    except NoteKeyReused:
        raise Problem(409, "Idempotency key reused", "this Idempotency-Key was already used for another note on "
                      "this request: that note is kept, this one was not") from None
    except TeamRefused as refused:
        raise Problem(422, "Invalid note", str(refused), errors=[{"field": "note", "message": str(refused)}]) from None
