"""Staff working on the queue together: who a request is assigned to, internal notes on a request
and saved queue views (migrations/0026_team.sql). None of it is a workflow's business: it changes
nothing the subject sees and holds for closed requests too, so it lives in Postgres beside the
request and every change to a request is an audit event.

A member of staff is a staff token (dsrflow/stores/staff_tokens.py): its label names them."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from dsrflow.domain.audit import append_event
from dsrflow.domain.references import canonical_uuid, typed_reference
from dsrflow.stores.staff_tokens import IN_FORCE
from schemas.plain_text import FreeText, OneLine
from schemas.workflow import request_id_of

NOTE_MAX = 4000
# Notes by one member of staff on one request: a request worked on for months gathers tens; an
# agent's script (or a stolen cookie) posting thousands made its page, the timeline and the
# evidence pack too long to read for the compliance officer who answers for it. Counted per
# author, so that one who reached it does not stop their colleagues noting.
NOTES_PER_REQUEST = 300
# Assignments of one request changed by one member of staff: each is an event in its timeline,
# and a script handing a request to and fro filled it as notes did.
ASSIGNMENTS_PER_REQUEST = 100
VIEW_NAME_MAX = 60
VIEWS_MAX = 30  # per member of staff
_FREE_TEXT: TypeAdapter[str] = TypeAdapter(FreeText)
_ONE_LINE: TypeAdapter[str] = TypeAdapter(OneLine)


def _plain(adapter: TypeAdapter[str], value: str, what: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        raise TeamRefused(f"{what} must not contain control characters") from None


class TeamRefused(ValueError):
    """What was asked cannot be done (an unknown colleague, a revoked token, a full list)."""


class NoteKeyReused(TeamRefused):
    """A note's one-time key (`add_note`'s `once`) sent again with other words: the first note
    stands, this one is not kept. Taken as a repeat, it was lost without a word (a script that
    reused a key, a page sent back edited)."""


async def colleagues(pool: asyncpg.Pool | asyncpg.Connection) -> list[dict[str, Any]]:
    """Everyone a request may be assigned to: the staff tokens in force, by label."""
    rows = await pool.fetch(f"SELECT id, role, label FROM staff_tokens t WHERE {IN_FORCE} "
                            "ORDER BY lower(coalesce(label, '')), created_at")
    return [{"id": str(r["id"]), "role": r["role"], "label": r["label"] or f"{r['role']} {str(r['id'])[:8]}"}
            for r in rows]


async def staff_names(pool: asyncpg.Pool) -> dict[str, str]:
    """Each member of staff by label, keyed as audit events name them: the actor
    (`role:<first 8 of the token id>`) and `token:<id>` (an assignment's assignee)."""
    rows = await pool.fetch("SELECT id, role, label FROM staff_tokens")
    names: dict[str, str] = {}
    for r in rows:
        label = r["label"] or f"{r['role']} {str(r['id'])[:8]}"
        names[f"{r['role']}:{str(r['id'])[:8]}"] = names[f"token:{r['id']}"] = label
    return names


async def assignment(pool: asyncpg.Pool, request_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        """SELECT a.assignee, a.assigned_by, a.assigned_at, t.label, t.role FROM request_assignments a
           JOIN staff_tokens t ON t.id = a.assignee WHERE a.request_id = $1""", request_id)
    if row is None:
        return None
    return {"assignee": str(row["assignee"]), "label": row["label"] or f"{row['role']} {str(row['assignee'])[:8]}",
            "assigned_by": row["assigned_by"], "assigned_at": row["assigned_at"]}


async def assign(pool: asyncpg.Pool, request_id: str, assignee: str | None, *, actor: str) -> None:
    """Assign the request to a colleague (a token in force), or to nobody with None; audited.
    Assigning it to whom it is assigned already changes nothing and records nothing."""
    async with pool.acquire() as conn, conn.transaction():
        # One assignment of a request at a time, by a lock of its own: locking the request's row
        # first and its audit chain second (append_event) was the reverse of a workflow's step
        # recording its event and then the row (activities/lifecycle.py), and PostgreSQL failed
        # one of the two as a deadlock (the agent's "Take it" a 500).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"assign:{request_id}")
        current = await conn.fetchval("SELECT assignee FROM request_assignments WHERE request_id = $1", request_id)
        if assignee is not None:
            # One spelling: braces answered 500, and upper case assigned anew whom it already was.
            assignee = canonical_uuid(assignee)
            if assignee is None:
                raise TeamRefused("choose a colleague from the list")
            # In force: a request handed to a token past its expiry sat with no one who could sign in.
            if not await conn.fetchval(f"SELECT 1 FROM staff_tokens t WHERE id = $1 AND {IN_FORCE}", assignee):
                raise TeamRefused("that colleague's token is unknown, revoked or expired")
        if (str(current) if current else None) == assignee:
            return
        if await conn.fetchval(
                "SELECT count(*) FROM audit_events WHERE request_id = $1 AND actor = $2 "
                "AND event_type IN ('staff.assigned', 'staff.unassigned')", request_id, actor) >= ASSIGNMENTS_PER_REQUEST:
            raise TeamRefused(f"you have changed this request's assignment {ASSIGNMENTS_PER_REQUEST} times, the most "
                              "one member of staff may: nothing was changed; a colleague may assign it")
        if assignee is None:
            await conn.execute("DELETE FROM request_assignments WHERE request_id = $1", request_id)
        else:
            await conn.execute(
                """INSERT INTO request_assignments (request_id, assignee, assigned_by) VALUES ($1, $2, $3)
                   ON CONFLICT (request_id) DO UPDATE SET assignee = excluded.assignee,
                   assigned_by = excluded.assigned_by, assigned_at = now()""", request_id, assignee, actor)
        await append_event(conn, event_key=f"{request_id}:assigned:{uuid.uuid4()}", request_id=request_id,
                           event_type="staff.assigned" if assignee else "staff.unassigned", actor=actor,
                           data={"assignee": assignee, "previous": str(current) if current else None})


# The ids of notes sent with a one-time key (`add_note`'s `once`).
_ONCE = uuid.UUID("5b0f3c1e-8d52-4c1a-9a57-2f0d6a3b9e41")


async def add_note(pool: asyncpg.Pool, request_id: str, body: str, *, actor: str, once: str | None = None) -> str:
    """Keep an internal note on the request (never sent to the subject); audited with the sha256
    of its text. Returns the note's id. `once`: a one-time key, the console form's or a REST
    caller's `Idempotency-Key` (api/rest/team.py keeps the two apart); the same key again, from the
    same member of staff on the same request (a double click, a resubmitted page, a retried call),
    keeps nothing more and returns the first one's id; with other words it raises NoteKeyReused."""
    async with pool.acquire() as conn, conn.transaction():
        note_id = None if once is None else str(uuid.uuid5(_ONCE, f"{request_id}:{actor}:{once}"))
        # Counted one note at a time, so that two at once cannot both be the last one allowed.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"notes:{request_id}")
        kept_already = note_id is not None and await conn.fetchval(
            "SELECT true FROM request_notes WHERE id = $1", note_id)
        if not kept_already and await conn.fetchval(
                "SELECT count(*) FROM request_notes WHERE request_id = $1 AND author = $2",
                request_id, actor) >= NOTES_PER_REQUEST:
            raise TeamRefused(f"you have {NOTES_PER_REQUEST} notes on this request, the most it keeps from "
                              "one member of staff: nothing was added")
        return await insert_note(conn, request_id, body, actor=actor, note_id=note_id)


async def insert_note(conn: asyncpg.Connection, request_id: str, body: str, *, actor: str,
                      note_id: str | None = None) -> str:
    """`add_note` in the caller's transaction, for a change the note explains (a deferred erasure
    settled by staff, dsrflow/stores/deferred_store.py). A `note_id` already kept is not kept
    again: its id is returned, nothing written (two at once: the second waits for the first);
    kept with other words, NoteKeyReused."""
    text = _plain(_FREE_TEXT, body.strip(), "a note")
    if not text:
        raise TeamRefused("write the note first")
    if len(text) > NOTE_MAX:
        raise TeamRefused(f"a note has at most {NOTE_MAX} characters")
    note_id = note_id or str(uuid.uuid4())
    if await conn.fetchval("INSERT INTO request_notes (id, request_id, author, body) VALUES ($1, $2, $3, $4) "
                           "ON CONFLICT (id) DO NOTHING RETURNING id", note_id, request_id, actor, text) is None:
        if await conn.fetchval("SELECT body FROM request_notes WHERE id = $1", note_id) != text:
            raise NoteKeyReused("this page already sent another note, which is kept: this one was not; "
                                "reload the page to add it")
        return note_id
    await append_event(conn, event_key=f"{request_id}:note:{note_id}", request_id=request_id,
                       event_type="staff.note_added", actor=actor,
                       data={"note_id": note_id, "sha256": hashlib.sha256(text.encode()).hexdigest()})
    return note_id


async def notes(pool: asyncpg.Pool, request_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT id, author, body, created_at FROM request_notes WHERE request_id = $1 "
                            "ORDER BY created_at, id", request_id)
    return [{**dict(r), "id": str(r["id"])} for r in rows]


async def saved_views(pool: asyncpg.Pool, token_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT id, name, query FROM saved_views WHERE token_id = $1 ORDER BY lower(name)",
                            token_id)
    return [{**dict(r), "id": str(r["id"])} for r in rows]


async def save_view(pool: asyncpg.Pool, token_id: str, name: str, query: str) -> None:
    """Save (or replace, by name) one member of staff's queue filters."""
    name = _plain(_ONE_LINE, " ".join(name.split()), "a view's name")
    if not name or len(name) > VIEW_NAME_MAX:
        raise TeamRefused(f"name the view in 1 to {VIEW_NAME_MAX} characters")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"views:{token_id}")
        count = await conn.fetchval("SELECT count(*) FROM saved_views WHERE token_id = $1 AND name <> $2",
                                    token_id, name)
        if count >= VIEWS_MAX:
            raise TeamRefused(f"you have {VIEWS_MAX} saved views already; delete one first")
        await conn.execute(
            """INSERT INTO saved_views (id, token_id, name, query) VALUES ($1, $2, $3, $4)
               ON CONFLICT (token_id, name) DO UPDATE SET query = excluded.query""",
            str(uuid.uuid4()), token_id, name, query)


async def delete_view(pool: asyncpg.Pool, token_id: str, view_id: str) -> bool:
    stored_id = canonical_uuid(view_id)  # braces answered 500
    return stored_id is not None and await pool.fetchval(
        "DELETE FROM saved_views WHERE id = $1 AND token_id = $2 RETURNING true", stored_id, token_id) is not None


async def request_by_reference(pool: asyncpg.Pool, text: str) -> str | None:
    """The id of the request a typed reference (or full id, or workflow id) names; None when no
    request has it."""
    candidate = request_id_of(text.strip()) or text.strip()
    try:
        found = await pool.fetchval("SELECT id FROM dsr_requests WHERE id = $1", uuid.UUID(candidate))
    except ValueError:
        reference = typed_reference(candidate)
        found = reference and await pool.fetchval("SELECT id FROM dsr_requests WHERE dsr_reference(id) = $1",
                                                  reference)
    return str(found) if found else None

