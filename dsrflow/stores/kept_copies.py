"""Copies of a subject's data that dsrflow itself keeps, deleted when their purpose ends.

An access package (`$DSRFLOW_HOME/packages`) exists to be downloaded: once its link has expired,
or its request closed without sending it, the file goes (`purge_expired`, run by the `dsrflow-package-purge` schedule and by `dsrflow
packages purge`). An erasure of the subject, once completed, takes every package of the
subject's other requests and every export a processor uploaded for them
(`$DSRFLOW_HOME/uploads`) with it (`purge_subject_copies`): otherwise we would keep the very
data we told the subject we erased.

The files are objects of the package storage (dsrflow/infra/storage.py, local or a bucket). The
object is deleted first and the row marked after, with an audit event per file
(`package.purged`, `processor_export.purged`), so a crash in between leaves a row the next run
finds again (the object already gone) and never an object nobody remembers. Rows stay as evidence.
An object is recorded only once it is whole, so a crash before its row leaves one that no row
names: `purge_expired` also sweeps those once a day old (`sweep_orphans`). Counts and ids only:
nothing here logs or prints personal data.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.storage import BlobStore, StoredObject
from schemas.copies import PurgeReport

EXPIRED = "link_expired"
# Whether the response that carries package `p`'s link has gone (a query's condition): its days
# run from then (activities/letter_context.py `issue_package_link`), and the purge waits for it.
RESPONSE_SENT = "EXISTS (SELECT FROM sent_letters s WHERE s.request_id = p.request_id AND s.purpose = 'response')"
ERASED = "subject_erased"
# A package whose request closed without the response that carries its link (denied, cancelled,
# withdrawn, or the letter settled by staff by hand): no link will ever start its days, so it goes
# this long after the close, as long as a link would have lived by default.
UNSENT = "closed_unanswered"
UNSENT_AFTER = timedelta(days=7)
# Older than any package build or upload still between its object and its row.
ORPHAN_AGE = timedelta(days=1)
# The folders of the package storage, the table whose rows name their objects, the keys' suffix.
_RECORDED_IN = {"packages": ("packages", ".zip.enc"), "uploads": ("processor_exports", ".enc")}


async def _purge_package(conn: asyncpg.Connection, store: BlobStore, row: Any, reason: str, actor: str,
                         data: dict[str, Any]) -> None:
    await store.delete(row["path"])
    failpoint("copy-deleted", str(row["id"]))  # the object gone, its row not yet marked (a rerun marks it)
    async with conn.transaction():
        await conn.execute(
            "UPDATE packages SET purged_at = now(), purge_reason = $2 WHERE id = $1 AND purged_at IS NULL",
            row["id"], reason)
        await append_event(
            conn, event_key=f"{row['request_id']}:package-purged:{row['id']}", request_id=str(row["request_id"]),
            event_type="package.purged", actor=actor,
            data={"package_id": str(row["id"]), "reason": reason, **data})


async def _purge_upload(conn: asyncpg.Connection, store: BlobStore, row: Any, actor: str,
                        data: dict[str, Any]) -> None:
    await store.delete(row["path"])
    failpoint("copy-deleted", str(row["id"]))  # the object gone, its row not yet marked (a rerun marks it)
    async with conn.transaction():
        await conn.execute("UPDATE processor_exports SET purged_at = now() WHERE id = $1 AND purged_at IS NULL",
                           row["id"])
        await append_event(
            conn, event_key=f"{row['request_id']}:export-purged:{row['id']}", request_id=str(row["request_id"]),
            event_type="processor_export.purged", actor=actor,
            data={"upload_id": str(row["id"]), "system": row["system"], "reason": ERASED, **data})


async def purge_expired(pool: asyncpg.Pool, store: BlobStore, now: datetime, *, dry_run: bool = False,
                        actor: str = "workflow") -> PurgeReport:
    """Delete the file of every package whose download link expired before `now`, or whose request
    closed UNSENT_AFTER ago without ever sending it, and the objects no row names. A package still
    waiting for approval has no link yet (no expiry) and stays while its request is open; so does
    one whose response has not gone while its request is open (the letter failed and waits for
    staff): its link starts again when the letter goes (activities/letter_context.py `issue_package_link`).
    Before, a package whose request was denied or withdrawn at approval stayed for good."""
    rows = await pool.fetch(
        f"""SELECT p.id, p.request_id, p.path, p.size_bytes,
                   CASE WHEN p.expires_at IS NULL THEN '{UNSENT}' ELSE '{EXPIRED}' END AS reason
              FROM packages p JOIN dsr_requests r ON r.id = p.request_id
             WHERE p.purged_at IS NULL
               AND (p.expires_at <= $1 AND (r.closed_at IS NOT NULL OR {RESPONSE_SENT})
                    OR p.expires_at IS NULL AND r.closed_at <= $1 - $2::interval)
             ORDER BY p.expires_at NULLS FIRST""", now, UNSENT_AFTER)
    orphans = await sweep_orphans(pool, store, now, dry_run=dry_run)
    report = PurgeReport(packages=len(rows), package_bytes=sum(r["size_bytes"] for r in rows), orphans=orphans)
    if not dry_run:
        async with pool.acquire() as conn:
            for row in rows:
                await _purge_package(conn, store, row, row["reason"], actor, {})
    return report


async def sweep_orphans(pool: asyncpg.Pool, store: BlobStore, now: datetime, *, dry_run: bool = False) -> int:
    """Delete the objects older than ORPHAN_AGE that no row keeps: left by a crash between an
    object and its row (an upload kept while its task was answered, a `.part` file), or by a
    row purged while its object was being written. Returns how many (would) go.

    One deployment per bucket prefix: another deployment's objects have no rows here."""
    swept = 0
    for folder, (table, suffix) in _RECORDED_IN.items():
        batch: list[StoredObject] = []
        async for found in store.listing(folder):
            if found.modified <= now - ORPHAN_AGE:
                batch.append(found)
            if len(batch) == 1000:
                swept += await _sweep(pool, store, table, suffix, batch, dry_run)
                batch = []
        swept += await _sweep(pool, store, table, suffix, batch, dry_run)
    return swept


async def _sweep(pool: asyncpg.Pool, store: BlobStore, table: str, suffix: str, found: list[StoredObject],
                 dry_run: bool) -> int:
    ids = {item.key: _id_in(item.key, suffix) for item in found}
    kept = {str(r["id"]) for r in await pool.fetch(
        f"SELECT id FROM {table} WHERE purged_at IS NULL AND id = ANY($1::uuid[])",
        [i for i in ids.values() if i is not None])}
    orphans = [key for key, id_ in ids.items() if id_ not in kept]
    if not dry_run:
        for key in orphans:
            await store.delete(key)
    return len(orphans)


def _id_in(key: str, suffix: str) -> str | None:
    """The row id a key names (`packages/<id>.zip.enc`), None for anything else (a `.part`)."""
    name = key.partition("/")[2]
    try:
        return str(uuid.UUID(name.removesuffix(suffix))) if name.endswith(suffix) else None
    except ValueError:
        return None


async def erased_under(conn: asyncpg.Pool | asyncpg.Connection, package: Mapping[str, Any]) -> str | None:
    """The regime of the erasure that deleted `package` with the subject's data (`purge_subject_copies`
    names it in the `package.purged` event): another request than the package's own, whose law
    says what the portal tells of it ("we deleted your data" under the CCPA, "erased" under the GDPR)."""
    regime = await conn.fetchval(
        """SELECT e.regime FROM audit_events a JOIN dsr_requests e ON e.id::text = a.data->>'erasure_request_id'
            WHERE a.request_id = $1 AND a.event_type = 'package.purged' AND a.data->>'package_id' = $2""",
        package["request_id"], str(package["id"]))
    return None if regime is None else str(regime)


async def purge_subject_copies(conn: asyncpg.Connection, store: BlobStore, erasure_request_id: str) -> PurgeReport:
    """Delete every package and processor upload kept for the subject of this (completed)
    erasure, across all their requests (matched by e-mail address, as a request names them)."""
    subject = """SELECT o.id FROM dsr_requests o, dsr_requests e
                  WHERE e.id = $1 AND lower(o.subject_email) = lower(e.subject_email)"""
    # Both kinds in one round trip: every erasure asks, and most find nothing.
    kept = await conn.fetch(
        f"""SELECT 'package' AS kind, id, request_id, NULL::text AS system, path, size_bytes FROM packages
             WHERE purged_at IS NULL AND request_id IN ({subject})
            UNION ALL
            SELECT 'upload', id, request_id, system, path, size_bytes FROM processor_exports
             WHERE purged_at IS NULL AND request_id IN ({subject})""", erasure_request_id)
    packages = [row for row in kept if row["kind"] == "package"]
    uploads = [row for row in kept if row["kind"] == "upload"]
    because = {"erasure_request_id": erasure_request_id}
    for row in packages:
        await _purge_package(conn, store, row, ERASED, "workflow", because)
    for row in uploads:
        await _purge_upload(conn, store, row, "workflow", because)
    return PurgeReport(packages=len(packages), package_bytes=sum(r["size_bytes"] for r in packages),
                       uploads=len(uploads), upload_bytes=sum(r["size_bytes"] for r in uploads))
