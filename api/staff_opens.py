"""Staff opening a request (REST `POST /v1/requests`, the console's "New request" form), within
the opening token's allowance.

Each request opened mails an acknowledgement, and a code unless attested, to the address it names,
from the controller's address: without a bound a stolen agent token mailed anyone as fast as
requests opened. One token opens at most DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN (200 an hour, more
than a busy agent opens in a day); past it the open is refused before anything is stored or
mailed, and the first refusal of a window is an audit event (`staff.open_limit_reached`) for the
admin to read as the incident it may be. A repeat of a stored request (same key, same body) opens
nothing and is not counted. An Inbox message converted into a request is counted too: its address
is typed, and the sender's own is only what a From header says, which anyone writes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from api.problems import Problem
from api.ratelimit import RateLimiter, wait_words
from api.service import is_repeat, open_request
from api.state import AppState
from dsrflow.domain.audit import append_event
from dsrflow.stores.staff_tokens import Staff
from schemas.requests import NewRequest
from schemas.staff_tokens import LIMIT_EVENT

ACTION = "staff_opens"
_log = logging.getLogger(__name__)


async def open_as_staff(state: AppState, limiter: RateLimiter, staff: Staff, new: NewRequest, *,
                        idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
    """`open_request` for `staff`, counted against their token's allowance: one taken before the
    request is stored, given back when nothing was opened (a refusal, or a repeat that raced its
    first call). A failure that may have stored it (a 503 whose request is saved, a crash) keeps
    it counted: its mail may go."""
    if await is_repeat(state, new, idempotency_key=idempotency_key, origin="staff"):
        return await open_request(state, new, actor=staff.actor, idempotency_key=idempotency_key, origin="staff")
    over = await limiter.take_for_token(ACTION, staff.token_id)
    if over is not None:
        raise await _refused(state, staff, *over)
    try:
        row, created = await open_request(state, new, actor=staff.actor, idempotency_key=idempotency_key,
                                          origin="staff")
    except Problem as refused:
        if refused.status < 500:
            await limiter.give_back_for_token(ACTION, staff.token_id)
        raise
    if not created:
        await limiter.give_back_for_token(ACTION, staff.token_id)
    return row, created


async def _refused(state: AppState, staff: Staff, retry_after: int, window_end: datetime | None) -> Problem:
    """The 429, once recorded for the window: one event however often a script retries. The
    window's stored end, to the microsecond, is in the event's key; the end worked out from
    `retry_after` (whole seconds, from now) was a second later for some refusals than for others,
    and its minute another when the window ended in a minute's last second: a second event."""
    allowed, window = state.settings.rate(ACTION, "token")
    window_end = (window_end or datetime.now(UTC) + timedelta(seconds=retry_after)).astimezone(UTC)
    resets_at = window_end.replace(microsecond=0)
    setting = state.settings.rate_staff_opens_per_token
    pool = await state.db()
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"token:{staff.token_id}:open-limit:{window_end:%Y%m%dT%H%M%S.%f}",
                           event_type=LIMIT_EVENT, actor=staff.actor,
                           data={"token_id": staff.token_id, "limit": setting, "resets_at": resets_at.isoformat()})
    # The token's id only (no address): an operator finds the token, not the subjects.
    _log.warning("staff token %s reached its limit of requests opened (%s)", staff.token_id, setting)
    return Problem(
        429, "Too many requests opened",
        f"this token has opened {allowed} requests within {wait_words(window)}, the most one token may "
        f"(DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN={setting}); it may open more from {resets_at:%Y-%m-%d %H:%M} UTC "
        f"(in {wait_words(retry_after)}). Nothing was stored or sent. The refusal is recorded for the admins "
        f"({LIMIT_EVENT}): ask one to raise the limit if your work needs more, or to revoke the token if "
        "this was not you.",
        retry_after=retry_after, limit=setting, resets_at=resets_at.isoformat())
