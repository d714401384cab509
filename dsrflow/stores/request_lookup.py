"""The keyed hashes staff find a subject's requests by (migrations/0025_request_lookup.sql).

Intake writes them with each request (`lookup_keys`). Requests stored before they existed, or
while the secret was another one, get them from `backfill_lookup_keys`, which `dsrflow migrate`
and `dsrflow up` run after the SQL migrations: the key lives outside the database, so no SQL
migration can compute them.
"""

from __future__ import annotations

import asyncpg

from dsrflow.crypto.hashing import keyed_hash, lookup_hash

BATCH = 2000


def lookup_keys(secret: bytes, email: str, customer_id: str | None) -> tuple[str, str | None]:
    """(subject_email_key, customer_id_key) of a request's subject."""
    return lookup_hash(secret, "email", email), (
        lookup_hash(secret, "customer_id", customer_id) if customer_id else None)


def _key_check(secret: bytes) -> str:
    return keyed_hash(secret, "request-lookup-check")


async def backfill_lookup_keys(pool: asyncpg.Pool | asyncpg.Connection, secret: bytes, *, batch: int = BATCH) -> int:
    """Hash the identities of every request that has no lookup hash yet, or of every request when
    the stored hashes were made with another secret; return how many rows it hashed.

    Idempotent and safe beside a running API: rows are taken in id order, a batch per
    transaction, and only rows still needing it are written. The key check is recorded last, so
    a run cut short starts again where it must.
    """
    check = _key_check(secret)
    stored = await pool.fetchval("SELECT key_check FROM request_lookup_state")
    everything = stored is not None and stored != check
    done, after = 0, None
    while True:
        rows = await pool.fetch(
            """SELECT id, subject_email, customer_id FROM dsr_requests
               WHERE ($1 OR subject_email_key IS NULL) AND ($2::uuid IS NULL OR id > $2)
               ORDER BY id LIMIT $3""", everything, after, batch)
        if not rows:
            break
        keys = [lookup_keys(secret, r["subject_email"], r["customer_id"]) for r in rows]
        await pool.execute(
            """UPDATE dsr_requests r SET subject_email_key = v.email_key, customer_id_key = v.customer_key
               FROM unnest($1::uuid[], $2::text[], $3::text[]) AS v(id, email_key, customer_key)
               WHERE r.id = v.id""",
            [r["id"] for r in rows], [k[0] for k in keys], [k[1] for k in keys])
        done += len(rows)
        after = rows[-1]["id"]
    await pool.execute(
        """INSERT INTO request_lookup_state (key_check) VALUES ($1)
           ON CONFLICT (singleton) DO UPDATE SET key_check = $1, filled_at = now()""", check)
    return done


async def backfill_database(database_url: str, secret: bytes) -> int:
    """`backfill_lookup_keys` over one connection of its own (the start-up and CLI step)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await backfill_lookup_keys(conn, secret)
    finally:
        await conn.close()
