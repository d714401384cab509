"""The staff queue: requests filtered and listed by due date, a page at a time.

Pages are cut by keyset, never OFFSET: the cursor carries the last row's (due date, id), so the
next page starts right after it however many rows precede it, and a request opened or closed
meanwhile neither repeats nor skips a row. The sort key is the current (extended) due date; a
request whose workflow has not yet computed it sorts last. Migration 0006 indexes exactly the
expressions used here.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

import asyncpg
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from api.read_models.cursors import decode_cursor, encode_cursor
from dsrflow.crypto.hashing import lookup_hash
from dsrflow.domain.request_resume import OPEN_ENDED_FLAG, STILL_RUNS
from schemas.clock_start import clock_waits_for_verification, clock_waits_sql
from schemas.plain_text import OneLine
from schemas.requests import RequestStatus, RequestType
from schemas.restrictions import LIFTING_SQL
from schemas.vocabulary import Regime
from schemas.workflow import request_id_of

OPEN_STATUSES = tuple(s for s in RequestStatus if not s.is_closed)

# The indexes of migrations/0006_queue_and_sessions.sql are on these expressions: keep them equal.
_DUE = "coalesce(r.current_due_date, DATE '9999-12-31')"
# Literal values, not a parameter, so the planner can use the partial index on open requests.
_OPEN = f"r.status IN ({', '.join(repr(s.value) for s in OPEN_STATUSES)})"
# Waiting for staff on an open request: a system task they must handle, or an objection they must
# decide (the workflow alerted them and has recorded no decision yet); migrations/0009 and 0011
# index each part.
_STUCK = (
    "SELECT t.request_id FROM system_tasks t WHERE t.status = 'needs_attention' UNION ALL "
    "SELECT l.request_id FROM sent_letters l WHERE l.purpose = 'staff_alert' "
    "AND l.letter_key LIKE '%:objection-decision' AND NOT EXISTS (SELECT 1 FROM audit_events e "
    "WHERE e.request_id = l.request_id AND e.event_type = 'objection.decided')"
)
# A step that failed (migration 0011) waits for staff, also on a closed request: the letter its denial or cancellation
# owes (workflows/owed_steps.py), a completed restriction's lift. Its trouble is open only while
# the step waits (the workflow closes it when the request closes under an open step).
_STEP_WAITS = "SELECT s.request_id FROM step_troubles s WHERE s.resolved_at IS NULL"
# Still worked on: open, or completed with its restriction being lifted (the lift's tasks).
_WORKED_ON = f"({_OPEN} OR r.id IN ({LIFTING_SQL}))"
_ATTENTION = (f"(r.status = 'awaiting_approval' OR ({_WORKED_ON} AND r.id IN ({_STUCK})) "
              f"OR r.id IN ({_STEP_WAITS}))")
# Its workflow ended while it is open (or its restriction not yet lifted): the start sweep's flag,
# until compliance resumes it.
_STOPPED = (f"({STILL_RUNS} AND EXISTS (SELECT 1 FROM step_troubles s WHERE s.request_id = r.id "
            f"AND {OPEN_ENDED_FLAG}))")
# The same condition written for a filter: the few ids that need attention are gathered first
# instead of testing every row in due-date order until a page is full.
# A UK GDPR request awaiting its subject's verification: its month has not started, so it is not
# due by any day yet (schemas/clock_start.py). Sorted by its date counted from receipt, the
# earliest it can be due, but neither overdue nor due before a day, whatever that date says.
_CLOCK_WAITS = clock_waits_sql("r")
_ATTENTION_FILTER = (
    f"r.id IN (SELECT o.id FROM dsr_requests o WHERE {_WORKED_ON.replace('r.', 'o.')} AND o.id IN ({_STUCK}) "
    f"UNION ALL SELECT a.id FROM dsr_requests a WHERE a.status = 'awaiting_approval' UNION ALL {_STEP_WAITS})"
)


class RequestFilters(BaseModel):
    """What the queue can be narrowed to; every filter given must hold (AND)."""

    model_config = ConfigDict(frozen=True)

    status: list[RequestStatus] = Field(
        default_factory=list, description="any of these statuses (repeat the parameter)",
        examples=[["in_progress", "awaiting_approval"]])
    type: RequestType | None = Field(None, description="request type")
    regime: Regime | None = Field(None, description="legal regime")
    overdue: bool | None = Field(
        None, description="true: open and past the current (extended) due date; false: not overdue (a UK GDPR "
                          "request awaiting its subject's verification never is: its month has not started)")
    due_before: date | None = Field(
        None, description="current due date strictly before this date (not a UK GDPR request awaiting its "
                          "subject's verification: it is due a month after they verify)", examples=["2026-12-01"])
    needs_attention: bool | None = Field(
        None, description="true: awaiting compliance approval, a system task waiting for staff, "
                          "a failed step of the request (also of a closed one: a denial's letter the "
                          "relay refused, a restriction's lift), or an objection waiting for their decision")
    stopped: bool | None = Field(
        None, description="true: open, with its workflow ended until compliance resumes it (it needs "
                          "attention too); false: not stopped")
    q: uuid.UUID | None = Field(
        None, description="exact request id (the workflow id `dsr-<id>` is accepted too)")

    # The subject's identities: matched through their keyed hashes (migrations/0025), never
    # compared in clear text; exact after trimming and case folding.
    subject_email: EmailStr | None = Field(
        None, description="the subject's e-mail address, exact, case-insensitive", examples=["ada@example.com"])
    customer_id: Annotated[OneLine, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None, description="the subject's customer number, exact, case-insensitive", examples=["C-1042"])

    @property
    def searches_subject(self) -> bool:
        return self.subject_email is not None or self.customer_id is not None

    assignee: str | None = Field(
        None, pattern=r"^(me|unassigned|[0-9a-fA-F-]{36})$",
        description="`me` (the caller), `unassigned`, or a staff token id: whom the request is assigned to")

    def for_caller(self, token_id: str) -> RequestFilters:
        """`assignee=me` made the caller's token id."""
        return self.model_copy(update={"assignee": token_id}) if self.assignee == "me" else self

    @field_validator("assignee")
    @classmethod
    def _token_id(cls, value: str | None) -> str | None:
        # The pattern lets through 36 hex digits and dashes in any arrangement: a token id is a UUID.
        if value not in (None, "me", "unassigned"):
            try:
                uuid.UUID(value)
            except ValueError:
                raise ValueError("a staff token id is a UUID (as `dsrflow token list` shows it)") from None
        return value

    @field_validator("q", mode="before")
    @classmethod
    def _workflow_id(cls, value: object) -> object:
        if isinstance(value, str):
            value = request_id_of(value.strip()) or value.strip()
        return value


class RequestSummary(BaseModel):
    """One row of the queue."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "3f2a9c1e-8b7d-4e21-9a55-0c6d2b9e4f10", "type": "erasure", "status": "in_progress",
        "regime": "gdpr", "country": "BE", "channel": "email", "origin": "staff",
        "subject_email": "ada@example.com", "received_at": "2026-11-20T09:00:00Z",
        "due_date": "2026-12-21", "current_due_date": "2026-12-21", "extended": False,
        "days_left": 4, "overdue": False, "due_dates_provisional": False, "needs_attention": True, "stopped": False,
        "closed_at": None,
        "reference": "KD7QX3M9TB", "assignee": "Bea (support)"}]})

    id: str
    type: RequestType
    status: RequestStatus
    regime: str
    country: str
    channel: str
    origin: str
    subject_email: str
    received_at: datetime
    due_date: date | None
    current_due_date: date | None
    extended: bool
    days_left: int | None = Field(description="calendar days to the current due date; negative when overdue; null "
                                              "while it has none yet or its due dates are provisional")
    overdue: bool
    due_dates_provisional: bool = Field(
        False, description="a UK GDPR request awaiting its subject's identity verification: its month starts on the "
                           "day they verify, when its due dates (counted from receipt until then, the earliest they "
                           "can be) move later. Meanwhile it is not overdue, has no `days_left`, and the `overdue` "
                           "and `due_before` filters leave it out")
    needs_attention: bool
    stopped: bool = Field(description="its workflow ended while it is open: no action is taken until compliance "
                                      "resumes it (POST /v1/requests/{id}/resume)")
    closed_at: datetime | None
    reference: str = Field(description="the short reference shown to people (the full id works too)")
    assignee: str | None = Field(None, description="the label of the member of staff it is assigned to")


class RequestPage(BaseModel):
    items: list[RequestSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page",
                                    examples=["WyIyMDI2LTEyLTIxIiwiM2YyYTljMWUtOGI3ZC00ZTIxLTlhNTUtMGM2ZDJiOWU0ZjEwIl0"])


def queue_cursor(due: date, request_id: str) -> str:
    """The cursor that continues the queue after the row (due, request_id)."""
    return encode_cursor(due.isoformat(), request_id)


# Whom the request is assigned to, by the label of their token (migrations/0026_team.sql).
_ASSIGNEE = ("(SELECT coalesce(t.label, t.role) FROM request_assignments a JOIN staff_tokens t ON t.id = a.assignee "
             "WHERE a.request_id = r.id)")


class _Args(list):
    """Query arguments; `add` returns the placeholder of the value it appends."""

    def add(self, value: object) -> str:
        self.append(value)
        return f"${len(self)}"


def _where(filters: RequestFilters, today: date, args: _Args, secret: bytes | None) -> list[str]:
    arg = args.add
    clauses = []
    if filters.status:
        clauses.append(f"r.status = ANY({arg([s.value for s in filters.status])}::text[])")
    if filters.type is not None:
        clauses.append(f"r.request_type = {arg(filters.type.value)}")
    if filters.regime is not None:
        clauses.append(f"r.regime = {arg(filters.regime.value)}")
    if filters.overdue is not None:
        overdue = f"({_OPEN} AND {_DUE} < {arg(today)} AND NOT {_CLOCK_WAITS})"
        clauses.append(overdue if filters.overdue else f"NOT {overdue}")
    if filters.due_before is not None:
        clauses.append(f"({_DUE} < {arg(filters.due_before)} AND NOT {_CLOCK_WAITS})")
    if filters.needs_attention is not None:
        clauses.append(_ATTENTION_FILTER if filters.needs_attention else f"NOT {_ATTENTION}")
    if filters.stopped is not None:
        clauses.append(_STOPPED if filters.stopped else f"NOT {_STOPPED}")
    if filters.q is not None:
        clauses.append(f"r.id = {arg(filters.q)}")
    if filters.searches_subject and secret is None:
        raise ValueError("searching by the subject's identity needs the secret that keys its hashes")
    if filters.subject_email is not None:
        assert secret is not None
        clauses.append(f"r.subject_email_key = {arg(lookup_hash(secret, 'email', str(filters.subject_email)))}")
    if filters.customer_id is not None:
        assert secret is not None
        clauses.append(f"r.customer_id_key = {arg(lookup_hash(secret, 'customer_id', filters.customer_id))}")
    if filters.assignee == "unassigned":
        clauses.append("NOT EXISTS (SELECT 1 FROM request_assignments a WHERE a.request_id = r.id)")
    elif filters.assignee is not None:
        clauses.append("EXISTS (SELECT 1 FROM request_assignments a WHERE a.request_id = r.id AND a.assignee = "
                       f"{arg(uuid.UUID(filters.assignee))})")  # `me` resolved by for_caller first
    return clauses


def queue_query(
    filters: RequestFilters, *, limit: int, cursor: str | None, today: date, secret: bytes | None = None
) -> tuple[str, list]:
    """The SQL and arguments of one page (limit + 1 rows: the extra row says a next page exists).
    `secret` keys the identity hashes; a search by the subject's identity needs it."""
    args = _Args()
    clauses = _where(filters, today, args, secret)
    if cursor is not None:
        due, after_id = decode_cursor(cursor, date.fromisoformat, uuid.UUID)
        # As text: asyncpg sends date.max (9999-12-31, the sort key of a request with no due date
        # yet) as 'infinity', after which no row would follow.
        clauses.append(f"({_DUE}, r.id) > ({args.add(due.isoformat())}::text::date, {args.add(after_id)})")
    where = " AND ".join(clauses) or "true"
    sql = f"""SELECT r.id, r.request_type, r.status, r.regime, r.country, r.channel, r.origin,
                   r.subject_email, r.received_at, r.due_date, r.current_due_date, r.extended,
                   r.closed_at, r.details ? 'appeal_of' AS appeal, {_DUE} AS queue_due,
                   {_ATTENTION} AS needs_attention, {_STOPPED} AS stopped,
                   dsr_reference(r.id) AS reference, {_ASSIGNEE} AS assignee
            FROM dsr_requests r
            WHERE {where}
            ORDER BY {_DUE}, r.id
            LIMIT {args.add(limit + 1)}"""
    return sql, args


async def list_requests(
    pool: asyncpg.Pool | asyncpg.Connection,
    filters: RequestFilters,
    *,
    limit: int = 50,
    cursor: str | None = None,
    today: date | None = None,
    secret: bytes | None = None,
) -> RequestPage:
    """One page of requests matching `filters`, by current due date then id.

    `today` is the controller's date (its timezone decides when a request becomes overdue);
    the default is the machine's date. Raises InvalidCursor (api.read_models.cursors) for a cursor it
    did not write.
    """
    if not 1 <= limit <= 1000:
        raise ValueError("limit must be between 1 and 1000")
    today = today or date.today()
    sql, args = queue_query(filters, limit=limit, cursor=cursor, today=today, secret=secret)
    rows = await pool.fetch(sql, *args)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return RequestPage(
        items=[_summary(row, today) for row in rows],
        next_cursor=queue_cursor(last["queue_due"], str(last["id"])) if last else None,
    )


def _summary(row: asyncpg.Record, today: date) -> RequestSummary:
    status = RequestStatus(row["status"])
    # Its month has not started: the date counted from receipt is not a day it is due by.
    waits = clock_waits_for_verification(row["regime"], status, appeal=row["appeal"])
    due = None if waits else row["current_due_date"]
    return RequestSummary(
        id=str(row["id"]),
        type=RequestType(row["request_type"]),
        status=status,
        regime=row["regime"],
        country=row["country"],
        channel=row["channel"],
        origin=row["origin"],
        subject_email=row["subject_email"],
        received_at=row["received_at"],
        due_date=row["due_date"],
        current_due_date=row["current_due_date"],
        extended=row["extended"],
        days_left=(due - today).days if due else None,
        overdue=due is not None and not status.is_closed and due < today,
        due_dates_provisional=waits,
        needs_attention=row["needs_attention"],
        stopped=row["stopped"],
        closed_at=row["closed_at"],
        reference=row["reference"],
        assignee=row["assignee"],
    )

