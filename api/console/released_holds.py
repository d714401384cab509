"""The Legal holds page's "Released holds" (api/console/holds.py): the holds no longer in force,
the last released first, a page at a time, each with who placed and released it and when, why it
was released (migration 0053: "not recorded" before), and the requests whose erasures it had
deferred, which its release's sweep took up again (their pages say where each erasure stands).
An auditor's first question is which holds existed in a past quarter: `GET
/v1/legal-holds?active=false` answered it, the console did not.

The subject is named as in the list of holds in force, by the address and customer number the
hold was placed on; nothing else of them is read."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from api.read_models.cursors import InvalidCursor, decode_cursor, encode_cursor

PAGE_SIZE = 20


def _moment(text: str) -> datetime:
    """A cursor's time, as the page wrote it: with its offset (a forged one without is none)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return moment

# The requests are those of the hold's deferred erasures (migrations/0005_holds.sql: `hold_ref` is a
# legal-claims hold's id), the oldest first.
_RELEASED = """
    SELECT h.id, h.subject_email, h.customer_id, h.systems, h.categories, h.reason, h.review_date,
           h.placed_by, h.placed_at, h.released_by, h.released_at, h.release_reason,
           ARRAY(SELECT r.id::text FROM dsr_requests r
                  WHERE r.id IN (SELECT d.request_id FROM deferred_erasures d
                                  WHERE d.hold_kind = 'legal_claims' AND d.hold_ref = h.id::text)
                  ORDER BY r.received_at, r.id) AS requests
      FROM legal_holds h
     WHERE h.released_at IS NOT NULL
       AND ($1::timestamptz IS NULL OR (h.released_at, h.id) < ($1, $2::uuid))
     ORDER BY h.released_at DESC, h.id DESC
     LIMIT $3"""


@dataclass(frozen=True)
class ReleasedPage:
    holds: list[dict[str, Any]]
    older: str | None  # the cursor of the next page, None on the last
    newest: bool  # the first page (no cursor, or one this page did not write)


async def released_holds(pool: asyncpg.Pool, cursor: str | None) -> ReleasedPage:
    """A page of released holds, after `cursor` (the `older` of the page before): a cursor this
    page did not write shows the first page, as the queue does with its own."""
    after: tuple[datetime, uuid.UUID] | None = None
    if cursor:
        try:
            after = decode_cursor(cursor, _moment, uuid.UUID)
        except InvalidCursor:
            after = None
    released_at, hold_id = after or (None, None)
    rows = await pool.fetch(_RELEASED, released_at, hold_id, PAGE_SIZE + 1)
    holds = [{**dict(row), "id": str(row["id"])} for row in rows[:PAGE_SIZE]]
    last = holds[-1] if len(rows) > PAGE_SIZE else None
    return ReleasedPage(holds=holds, newest=after is None,
                        older=encode_cursor(last["released_at"].isoformat(), last["id"]) if last else None)
