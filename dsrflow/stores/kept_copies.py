"""Copies of a subject's data that dsrflow itself keeps, deleted when their purpose ends.

An access package (`$DSRFLOW_HOME/packages`) exists to be downloaded: once its link has expired
the file goes (`purge_expired`, run by the `dsrflow-package-purge` schedule and by `dsrflow
packages purge`). An erasure of the subject, once completed, takes every package of the
subject's other requests and every export a processor uploaded for them
(`$DSRFLOW_HOME/uploads`) with it (`purge_subject_copies`): otherwise we would keep the very
data we told the subject we erased.

The file is deleted first and the row marked after, with an audit event per file
(`package.purged`, `processor_export.purged`), so a crash in between leaves a row the next run
finds again (the file already gone) and never a file nobody remembers. Rows stay as evidence.
Counts and ids only: nothing here logs or prints personal data.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from dsrflow.domain.audit import append_event
from schemas.copies import PurgeReport

EXPIRED = "link_expired"
ERASED = "subject_erased"


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


async def _purge_package(conn: asyncpg.Connection, row: Any, reason: str, actor: str,
                         data: dict[str, Any]) -> None:
    _unlink(row["path"])
    async with conn.transaction():
        await conn.execute(
            "UPDATE packages SET purged_at = now(), purge_reason = $2 WHERE id = $1 AND purged_at IS NULL",
            row["id"], reason)
        await append_event(
            conn, event_key=f"{row['request_id']}:package-purged:{row['id']}", request_id=str(row["request_id"]),
            event_type="package.purged", actor=actor,
            data={"package_id": str(row["id"]), "reason": reason, **data})


async def _purge_upload(conn: asyncpg.Connection, row: Any, actor: str, data: dict[str, Any]) -> None:
    _unlink(row["path"])
    async with conn.transaction():
        await conn.execute("UPDATE processor_exports SET purged_at = now() WHERE id = $1 AND purged_at IS NULL",
                           row["id"])
        await append_event(
            conn, event_key=f"{row['request_id']}:export-purged:{row['id']}", request_id=str(row["request_id"]),
            event_type="processor_export.purged", actor=actor,
            data={"upload_id": str(row["id"]), "system": row["system"], "reason": ERASED, **data})


async def purge_expired(pool: asyncpg.Pool, now: datetime, *, dry_run: bool = False,
                        actor: str = "workflow") -> PurgeReport:
    """Delete the file of every package whose download link expired before `now`. A package
    still waiting for approval has no link yet (no expiry) and stays."""
    rows = await pool.fetch(
        """SELECT id, request_id, path, size_bytes FROM packages
            WHERE purged_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at""", now)
    report = PurgeReport(packages=len(rows), package_bytes=sum(r["size_bytes"] for r in rows))
    if not dry_run:
        async with pool.acquire() as conn:
            for row in rows:
                await _purge_package(conn, row, EXPIRED, actor, {})
    return report


async def purge_subject_copies(conn: asyncpg.Connection, erasure_request_id: str) -> PurgeReport:
    """Delete every package and processor upload kept for the subject of this (completed)
    erasure, across all their requests (matched by e-mail address, as a request names them)."""
    subject = """SELECT o.id FROM dsr_requests o, dsr_requests e
                  WHERE e.id = $1 AND lower(o.subject_email) = lower(e.subject_email)"""
    packages = await conn.fetch(
        f"SELECT id, request_id, path, size_bytes FROM packages WHERE purged_at IS NULL AND request_id IN ({subject})",
        erasure_request_id)
    uploads = await conn.fetch(
        f"""SELECT id, request_id, system, path, size_bytes FROM processor_exports
             WHERE purged_at IS NULL AND request_id IN ({subject})""", erasure_request_id)
    because = {"erasure_request_id": erasure_request_id}
    for row in packages:
        await _purge_package(conn, row, ERASED, "workflow", because)
    for row in uploads:
        await _purge_upload(conn, row, "workflow", because)
    return PurgeReport(packages=len(packages), package_bytes=sum(r["size_bytes"] for r in packages),
                       uploads=len(uploads), upload_bytes=sum(r["size_bytes"] for r in uploads))
