"""`GET /v1/requests`: the staff queue, filtered and paged by due date."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import Staff, require_role
from api.deps import Pool, State, Today
from api.read_models.request_queries import RequestFilters, RequestPage, list_requests
from dsrflow.crypto.keys import load_secret_key

router = APIRouter(prefix="/v1/requests", tags=["requests"])


@router.get("", response_model=RequestPage)
async def index(
    staff: Annotated[Staff, require_role("agent")],
    pool: Pool,
    state: State,
    today: Today,
    filters: Annotated[RequestFilters, Query()],
    limit: Annotated[int, Query(ge=1, le=200, description="rows per page")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
) -> RequestPage:
    """Requests by current (extended) due date, soonest first, then by id. Filters combine;
    follow `next_cursor` for the next page. `subject_email` and `customer_id` find a subject's
    requests (exact, case-insensitive, matched through keyed hashes); `assignee` whom they are
    assigned to."""
    return await list_requests(pool, filters.for_caller(staff.token_id), limit=limit, cursor=cursor, today=today,
                               secret=load_secret_key(state.settings))
