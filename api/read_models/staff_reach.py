"""What of a request a member of staff reads beyond its status, its tasks and the letters to the
subject: the one place the REST endpoints and the console's pages ask, so that a page cannot show
what the API keeps back (red team of the read side, 2026-12-05: docs/security.md).

`READABLE_BY` is the one rule of who reads what; `Reads` answers whether the caller may read one
kind of it (`functools.partial(may_read, staff.has_role)`). The deferred-erasure panel and what
comes of it (`DEFERRED`, `DEFERRED_ROLES["read"]`) are compliance's, as the legal-claims holds
behind them are: a hold kept the records, and what becomes of them once it ended says that it
ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import asyncpg

from dsrflow.stores.deferred_store import is_alert_key, settling_notes
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.team_store import notes
from schemas.vocabulary import LetterPurpose

Reads = Callable[[str], bool]
DEFERRED = "deferred-erasures"
TIMELINE = "audit-timeline"
# A UK complaint's reasons (DPA 2018 s. 164A) are for who decides the complaint (compliance, who deny
# or approve it).
COMPLAINT_REASONS = "complaint-reasons"
LEGAL_CLAIMS_HOLDS = "legal-claims-holds"
WORKFLOW_HISTORY = "workflow-history"

# What staff may read beside what they may do (api/staff_actions.py), the one rule for the REST
# endpoints and the console's pages alike: the audit timeline (every actor, every decision) and
# legal-claims holds (their reasons speak of litigation) are compliance's; agents see a request's
# status, tasks and letters. A workflow's history decoded (the codec endpoint, and the request
# page's link to the Temporal UI, which calls it) holds each staff action's input and its actor: the
# timeline told another way. Erasures a hold deferred are too: what became of records a hold kept,
# once it ended, says it ended. A UK complaint's reasons go to compliance, who decide the complaint.
READABLE_BY = {TIMELINE: "compliance", LEGAL_CLAIMS_HOLDS: "compliance", WORKFLOW_HISTORY: "compliance",
               DEFERRED: "compliance", COMPLAINT_REASONS: "compliance"}


def may_read(has_role: Callable[[str], bool], what: str) -> bool:
    return has_role(READABLE_BY[what])


# What the REST view withholds from who may not read it: the approver and their note are a
# decision of the timeline, which the console's page shows compliance alone.
WITHHELD = "[withheld]"


def letter_readable(reads: Reads, purpose: str, key: str) -> bool:
    """Whether the caller may read the stored letter `<request>:<purpose>:<key>`: every letter to
    the subject, every staff alert but those about a deferred erasure (activities/deferred_processors.py
    `record_failure`: it names the hold's end and the processor's failure, the panel's facts), for
    those who may not read the deferred-erasure panel. A letter they may not read is one not found
    (404), as one never sent."""
    return reads(DEFERRED) or not (purpose == LetterPurpose.staff_alert and is_alert_key(key))


def readable_letters(reads: Reads, letters: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The letters of a request (rows with `letter_key`) the caller may read."""
    return [letter for letter in letters
            if letter_readable(reads, *letter["letter_key"].split(":", 2)[1:])]


async def readable_notes(pool: asyncpg.Pool, request_id: str, reads: Reads) -> list[dict[str, Any]]:
    """The request's internal notes the caller may read: all of them, but the notes settling a
    deferred erasure (dsrflow/stores/deferred_store.py `settle_deferred`) for those who may not
    read the panel they were written on. Every member of staff reads every other note."""
    found = await notes(pool, request_id)  # first: a note settling an erasure is linked when it is committed
    if reads(DEFERRED):
        return found
    settling = await settling_notes(pool, request_id)
    return [note for note in found if note["id"] not in settling]


async def readable_view(pool: asyncpg.Pool, reads: Reads, view: dict[str, Any]) -> dict[str, Any]:
    """A request as `GET /v1/requests/{id}` answers it, for the caller: the approval's note and
    approver withheld from who may not read the timeline (that there is an approval stays); a UK
    complaint's reasons, which `view` leaves out (api/service.py `request_view`), in its details
    for who may read them, and for nobody else (agents see them nowhere but as a flag on the page)."""
    if reads(COMPLAINT_REASONS):
        row = await get_request(pool, view["id"])
        if reasons := ((row or {}).get("details") or {}).get("complaint_reasons"):
            view = {**view, "details": {**(view["details"] or {}), "complaint_reasons": reasons}}
    approval = view.get("approval")
    if approval is None or reads(TIMELINE):
        return view
    return {**view, "approval": {field: WITHHELD if value is not None else None for field, value in approval.items()}}
