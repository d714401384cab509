"""`GET /v1/requests`: the staff queue, filtered and paged by due date."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request

from api.auth import Staff, require_role
from api.state import AppState
from dsrflow.request_queries import RequestFilters, RequestPage, list_requests

router = APIRouter(prefix="/v1/requests", tags=["requests"])


def controller_today(state: AppState) -> date:
    """Today in the controller's timezone: the day a request's due date is judged against."""
    return datetime.now(ZoneInfo(state.policy.policy.defaults.timezone)).date()


@router.get("", response_model=RequestPage)
async def index(
    request: Request,
    filters: Annotated[RequestFilters, Query()],
    staff: Staff = require_role("agent"),
    limit: Annotated[int, Query(ge=1, le=200, description="rows per page")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
) -> RequestPage:
    """Requests by current (extended) due date, soonest first, then by id. Filters combine;
    follow `next_cursor` for the next page."""
    state: AppState = request.app.state.dsr
    return await list_requests(await state.db(), filters, limit=limit, cursor=cursor,
                               today=controller_today(state))
