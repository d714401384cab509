"""Legal-claims holds (Art. 17(3)(e) GDPR) in Postgres, shared by the API and the activities.

A subject is referenced by `subject_hash`, a keyed hash of their e-mail address; it is the one
subject key of holds, deferred erasures and the erasure ledger. The clear address is kept on the
hold row only so compliance can see whom they hold; it never goes into the audit trail, whose
events name the hold, its scope, its basis and its review date and nothing about the person. The
reasons compliance gives, for placing a hold (which claim) and for releasing it (why the claim
ended), are free text that may name people: they stay on the hold's row, which can be minimised,
and out of the trail, which can never be changed.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any, TypeAlias

import asyncpg

from dsrflow.crypto.hashing import keyed_hash, subject_hash
from dsrflow.domain.audit import append_event

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


class HoldIdempotencyConflict(Exception):
    """An Idempotency-Key already used to place another hold."""




def _hold_id(hold_id: str | uuid.UUID) -> uuid.UUID | None:
    try:
        return hold_id if isinstance(hold_id, uuid.UUID) else uuid.UUID(str(hold_id))
    except ValueError:
        return None


def _as_dict(row: asyncpg.Record) -> dict[str, Any]:
    hold = dict(row)
    hold["id"] = str(hold["id"])
    hold["systems"] = list(hold["systems"]) if hold["systems"] is not None else None
    hold["categories"] = list(hold["categories"]) if hold["categories"] is not None else None
    hold["active"] = hold["released_at"] is None
    return hold


async def resolve_customer_email(conn: Executor, customer_id: str) -> str | None:
    """The e-mail address the subject with this customer id last filed a request under."""
    email: str | None = await conn.fetchval(
        "SELECT subject_email FROM dsr_requests WHERE customer_id = $1"
        " ORDER BY received_at DESC, created_at DESC LIMIT 1",
        customer_id,
    )
    return email


async def place_hold(
    conn: asyncpg.Connection,
    *,
    secret: bytes,
    email: str,
    customer_id: str | None,
    systems: list[str] | None,
    categories: list[str] | None,
    basis: str,
    reason: str,
    review_date: date,
    actor: str,
    idempotency_key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a hold (`systems`/`categories` None: all of them) and its `legal_hold.placed` event,
    in one transaction: (the hold, whether it is new). A repeat with the same `idempotency_key`
    returns the hold it placed; the key used for another hold raises HoldIdempotencyConflict."""
    hold_id = uuid.uuid4()
    who = subject_hash(secret, email)
    fingerprint = keyed_hash(secret, "legal-hold", json.dumps(
        [who, customer_id, systems, categories, basis, reason, review_date.isoformat()]))
    async with conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO legal_holds
                   (id, subject_hash, subject_email, customer_id, systems, categories, basis,
                    reason, review_date, placed_by, idempotency_key, fingerprint)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               ON CONFLICT (idempotency_key) DO NOTHING
               RETURNING *""",
            hold_id, who, email.strip(), customer_id, systems, categories,
            basis, reason, review_date, actor, idempotency_key, fingerprint,
        )
        if row is None:
            existing = await conn.fetchrow("SELECT * FROM legal_holds WHERE idempotency_key = $1", idempotency_key)
            if existing["fingerprint"] != fingerprint:
                raise HoldIdempotencyConflict("this idempotency key was already used for a different hold")
            return _as_dict(existing), False
        # Records this hold now covers are not waiting for an unreachable system any more: the
        # days unreached count anew from the first run that cannot reach it once they are due
        # again. Before, only a sweep that saw them held cleared the date, so a hold placed and
        # released between two daily runs left it, and the rows could fail days early.
        await conn.execute(
            """UPDATE deferred_erasures SET unreached_since = NULL
               WHERE subject_hash = $1 AND unreached_since IS NOT NULL AND done_at IS NULL AND failed_at IS NULL
                 AND (coalesce(cardinality($2::text[]), 0) = 0 OR system = ANY($2::text[]))""", who, systems)
        await append_event(
            conn, event_key=f"legal_hold:{hold_id}:placed", event_type="legal_hold.placed",
            actor=actor,
            data={"hold_id": str(hold_id), "systems": systems, "categories": categories,
                  "basis": basis, "review_date": review_date.isoformat()},
        )
    return _as_dict(row), True


async def release_hold(conn: asyncpg.Connection, hold_id: str | uuid.UUID, actor: str, *,
                       reason: str | None) -> dict[str, Any] | None:
    """End a hold, saying why the claim ended (`reason`, stored with the release in its one
    statement; None when the caller gave none), and record `legal_hold.released`. Releasing a
    released hold changes nothing, its first reason standing, and returns it as it is; an unknown
    id returns None."""
    key = _hold_id(hold_id)
    if key is None:
        return None
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE legal_holds SET released_at = now(), released_by = $2, release_reason = $3"
            " WHERE id = $1 AND released_at IS NULL RETURNING *",
            key, actor, reason,
        )
        if row is None:
            row = await conn.fetchrow("SELECT * FROM legal_holds WHERE id = $1", key)
            return _as_dict(row) if row else None
        await append_event(
            conn, event_key=f"legal_hold:{key}:released", event_type="legal_hold.released",
            actor=actor, data={"hold_id": str(key)},
        )
    return _as_dict(row)


async def get_hold(conn: Executor, hold_id: str | uuid.UUID) -> dict[str, Any] | None:
    key = _hold_id(hold_id)
    if key is None:
        return None
    row = await conn.fetchrow("SELECT * FROM legal_holds WHERE id = $1", key)
    return _as_dict(row) if row else None


async def list_holds(
    conn: Executor,
    *,
    active_only: bool = False,
    subject_hash: str | None = None,
    released_only: bool = False,
) -> list[dict[str, Any]]:
    """Holds, newest first: all, only active ones, or only released ones; optionally one subject's."""
    if active_only and released_only:
        raise ValueError("active_only and released_only exclude each other")
    rows = await conn.fetch(
        """SELECT * FROM legal_holds
           WHERE ($1::text IS NULL OR subject_hash = $1)
             AND (NOT $2 OR released_at IS NULL)
             AND (NOT $3 OR released_at IS NOT NULL)
           ORDER BY placed_at DESC, id""",
        subject_hash, active_only, released_only,
    )
    return [_as_dict(r) for r in rows]


async def active_holds_for(conn: Executor, subject_hash: str) -> list[dict[str, Any]]:
    """What the erasure planner needs of each active hold on a subject. `systems`/`categories`
    None means the hold covers every system/category."""
    rows = await conn.fetch(
        """SELECT id, systems, categories, basis, reason, review_date FROM legal_holds
           WHERE subject_hash = $1 AND released_at IS NULL
           ORDER BY placed_at, id""",
        subject_hash,
    )
    return [
        {"id": str(r["id"]),
         "systems": list(r["systems"]) if r["systems"] is not None else None,
         "categories": list(r["categories"]) if r["categories"] is not None else None,
         "basis": r["basis"], "reason": r["reason"], "review_date": r["review_date"]}
        for r in rows
    ]
