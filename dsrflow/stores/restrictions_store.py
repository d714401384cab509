"""Restrictions of processing (Art. 18 GDPR) in Postgres: one row per restriction request once its
fan-out finished, until it is lifted. Read by the request view, the restriction list, and the
sweeps that must not erase what an active restriction keeps (retention, deferred erasure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg

Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


def phase(row: dict[str, Any] | asyncpg.Record | None) -> str | None:
    """active | lifting (the subject was told, the systems not yet all lifted) | lifted."""
    if row is None:
        return None
    if row["lifted_at"] is not None:
        return "lifted"
    return "lifting" if row["lift_requested_at"] is not None else "active"


def as_view(row: asyncpg.Record | None) -> dict[str, Any] | None:
    """A restriction as the request page and the REST view show it."""
    if row is None:
        return None
    return {
        "status": phase(row), "grounds": list(row["grounds"]), "systems": list(row["systems"]),
        "since": row["since"], "keeps_from_erasure": row["keeps_from_erasure"],
        "lift_reason": row["lift_reason"], "lift_requested_by": row["lift_requested_by"],
        "lift_requested_at": row["lift_requested_at"], "lift_effective_on": row["lift_effective_on"],
        "lifted_at": row["lifted_at"],
    }


async def restriction_for(conn: Executor, request_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM restrictions WHERE request_id = $1::uuid", request_id)


async def restriction_as_told(conn: Executor, request_id: str, notice_days: int) -> dict[str, Any] | None:
    """The restriction as its lift letter gives it, with `held`: the systems the subject's other
    restrictions keep restricted, each with its request (`restricted_elsewhere`), which the lift
    leaves as they are, and `held_in_force`: those of the requests in force (the others under way). The notice runs from the letter (the workflow's
    timer starts once it went: patch `lift-notice-from-letter`): while the letter has not gone (its
    step failed and waits for staff, the relay refused it), each render starts the days again, so
    a letter that goes out late never gives less notice than the policy promises, nor a date
    already past."""
    restarted: asyncpg.Record | None = await conn.fetchrow(
        """UPDATE restrictions SET lift_effective_on = now() + make_interval(days => $2)
           WHERE request_id = $1::uuid AND lift_effective_on IS NOT NULL AND lifted_at IS NULL
             AND NOT EXISTS (SELECT FROM sent_letters s WHERE s.request_id = $1::uuid
                             AND s.purpose = 'restriction_lift')
           RETURNING *""", request_id, notice_days)
    row = restarted or await restriction_for(conn, request_id)
    if row is None:
        return None
    held = await restricted_elsewhere(conn, request_id)
    # Which of them are in force (on record, not lifted), not only under way: one under way may yet
    # end without coming into force, and the held lift is then carried out after all
    # (activities/held_lifts.py), which its letter must not promise otherwise.
    in_force = await conn.fetch("SELECT request_id::text AS id FROM restrictions WHERE request_id = ANY($1::uuid[]) "
                                "AND lifted_at IS NULL", sorted(set(held.values())))
    return {**row, "held": held, "held_in_force": sorted(r["id"] for r in in_force)}


async def list_restrictions(conn: Executor, *, active: bool | None, limit: int = 200) -> list[asyncpg.Record]:
    """Newest first; `active`: only those not yet lifted (True), only lifted ones (False)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT * FROM restrictions
           WHERE $1::boolean IS NULL OR (lifted_at IS NULL) = $1
           ORDER BY since DESC LIMIT $2""", active, limit)
    return rows


# A restriction request under way, or completed or closed part-way with its record not yet written,
# whose systems may have restricted the data already: the status goes first, the record after
# (workflows/restriction_lifecycle.py), a step that may wait on staff when it fails.
_UNDER_WAY = """d.request_type = 'restriction'
             AND (d.status IN ('in_progress', 'awaiting_approval')
                  -- completed, and its record not yet written. Bounded, so that one completed
                  -- before restrictions were recorded at all (migration 0014) keeps nothing for ever.
                  OR d.status = 'completed' AND d.closed_at > now() - interval '30 days'
                  -- closed part-way (withdrawn, cancelled, denied) with a system restricted: its
                  -- record waits for the tasks still running (a processor: days) before it is
                  -- written, as a completed one's does (workflows/restriction_lifecycle.py).
                  OR d.status IN ('cancelled', 'denied') AND d.closed_at > now() - interval '30 days'
                     AND EXISTS (SELECT 1 FROM system_tasks t WHERE t.request_id = d.id
                                 AND t.action = 'restrict' AND t.status = 'done'))
             AND NOT EXISTS (SELECT 1 FROM restrictions r WHERE r.request_id = d.id)"""


async def keeping_from_erasure(conn: Executor, keeping_grounds: Sequence[str]) -> list[asyncpg.Record]:
    """Restrictions under a ground that keeps the records from any erasure the controller starts
    itself, with the restricted subject's identities (for the retention sweep's SQL): those in
    force, and those still under way under one of `keeping_grounds` (the policy's). A restriction
    goes on record once its request has completed, which waits for every processor to confirm
    (days, by e-mail), while its systems may have restricted the records already: from the moment
    its identity is confirmed until its record is written it keeps them, and so does one closed
    part-way once a system restricted them. `subject_hash` is NULL for one under way."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT r.request_id, r.subject_hash, lower(d.subject_email) AS email, lower(d.customer_id) AS customer_id
           FROM restrictions r JOIN dsr_requests d ON d.id = r.request_id
           WHERE r.lifted_at IS NULL AND r.keeps_from_erasure
           UNION ALL
           SELECT d.id, NULL, lower(d.subject_email), lower(d.customer_id)
           FROM dsr_requests d
           WHERE {_UNDER_WAY}
             AND (d.details -> 'restriction_grounds') ?| $1::text[]""",
        list(keeping_grounds))
    return rows


# The subject of request $1 (`me`), and that subject in another request `d`, as the connectors find a
# subject: by address or by customer number (dsrflow/stores/lifts_outstanding_store.py uses them too).
SUBJECT_OF_REQUEST = ("me AS (SELECT lower(subject_email) AS email, lower(customer_id) AS customer_id "
                      "FROM dsr_requests WHERE id = $1::uuid)")
SAME_SUBJECT = "(lower(d.subject_email) = me.email OR lower(d.customer_id) = me.customer_id)"


async def restricted_elsewhere(conn: Executor, request_id: str) -> dict[str, str]:
    """The systems where another restriction of the same subject (by address, or by customer number:
    the systems find the subject by either, `_identities_agree` checking they agree) still restricts the
    data, each with that restriction's request, the earliest: lifting this one must leave them
    restricted there (before, lifting a second restriction un-restricted the data the first, still
    in force, kept). In force: recorded and not lifted, its lift (if announced) not yet due, so that
    two lifts due together both lift and neither leaves the other's systems restricted for ever;
    or under way with that system restricted, as for `keeping_from_erasure`; or under way and still
    running (in progress, or awaiting approval) with that system in its plan, whether or not its task
    there has run: the plan is written before any of its calls, so a lift that checks under the
    system's lock (activities/restriction_lock.py) sees every restriction whose call may already
    have reached the system, and any other starts after the lift (before, one that restricted the
    system and had not yet recorded its task done was undone by the lift)."""
    rows = await conn.fetch(
        f"""WITH {SUBJECT_OF_REQUEST}
           SELECT DISTINCT ON (system) system, other FROM (
             SELECT unnest(r.systems) AS system, r.request_id::text AS other, r.since AS since
             FROM restrictions r JOIN dsr_requests d ON d.id = r.request_id JOIN me ON {SAME_SUBJECT}
             WHERE r.request_id <> $1::uuid AND r.lifted_at IS NULL
               AND (r.lift_effective_on IS NULL OR r.lift_effective_on > now())
             UNION ALL
             SELECT t.system, d.id::text, d.received_at
             FROM dsr_requests d JOIN me ON {SAME_SUBJECT}
                  JOIN system_tasks t ON t.request_id = d.id AND t.action = 'restrict' AND t.status = 'done'
             WHERE d.id <> $1::uuid AND {_UNDER_WAY}
             UNION ALL
             SELECT task ->> 'system', d.id::text, d.received_at
             FROM dsr_requests d JOIN me ON {SAME_SUBJECT}
                  JOIN request_plans p ON p.request_id = d.id
                  CROSS JOIN jsonb_array_elements(p.plan -> 'tasks') task
             WHERE d.id <> $1::uuid AND d.status IN ('in_progress', 'awaiting_approval') AND {_UNDER_WAY}) held
           ORDER BY system, since""", request_id)
    return {row["system"]: row["other"] for row in rows}
