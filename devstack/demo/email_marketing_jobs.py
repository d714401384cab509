"""The demo processor's work queue: carry out each OpenDSR request after a delay, then tell every
callback URL, signing the exact bytes sent.

State lives in `dsr_requests`, so a restart resumes both requests still pending and callbacks
not yet delivered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import httpx
import structlog

from activities.connectors.opendsr_signature import DOMAIN_HEADER, SIGNATURE_HEADER, sign
from devstack.demo.email_marketing_db import erase_subject, export_subject

API_VERSION = "2.0"
log = structlog.get_logger("devstack.demo.email_marketing")
T = TypeVar("T")


class _Outage(Exception):
    """The database stayed away through every retry."""


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def canonical_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class RequestProcessor:
    """Schedules, performs and reports OpenDSR requests for one processor app."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        http: httpx.AsyncClient,
        *,
        controller_id: str,
        api_url: str,
        key_pem: bytes,
        callback_attempts: int = 5,
        callback_backoff: float = 0.5,
    ) -> None:
        self.pool = pool
        self.http = http
        self.controller_id = controller_id
        self.api_url = api_url  # public URL of the OpenDSR API root, e.g. http://host:port/opendsr
        self.domain = urlsplit(api_url).hostname or "localhost"
        self.key_pem = key_pem
        self.callback_attempts = callback_attempts
        self.callback_backoff = callback_backoff
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._deliveries: set[asyncio.Task[None]] = set()

    # -- documents -------------------------------------------------------------------------

    def results_url(self, row: asyncpg.Record) -> str | None:
        if row["subject_request_type"] == "erasure" or row["request_status"] != "completed":
            return None
        return f"{self.api_url}/requests/{row['subject_request_id']}/results?token={row['results_token']}"

    def status_document(self, row: asyncpg.Record, callback_url: str | None = None) -> dict[str, Any]:
        """The status response body; with `callback_url`, the callback body for that URL."""
        document: dict[str, Any] = {"controller_id": self.controller_id}
        document["expected_completion_time"] = rfc3339(row["expected_completion_time"])
        if callback_url is not None:
            document["status_callback_url"] = callback_url
            # Signed with the body: the controller refuses a callback replayed after it went stale.
            document["status_changed_time"] = rfc3339(row["status_changed_time"])
        document["subject_request_id"] = str(row["subject_request_id"])
        document["request_status"] = row["request_status"]
        document["api_version"] = API_VERSION
        results_url = self.results_url(row)
        if results_url is not None:
            document["results_url"] = results_url
        if row["request_status"] == "completed" and row["results_count"] is not None:
            document["results_count"] = row["results_count"]
        return document

    def signed_headers(self, body: bytes) -> dict[str, str]:
        return {SIGNATURE_HEADER: sign(body, self.key_pem), DOMAIN_HEADER: self.domain}

    # -- scheduling ------------------------------------------------------------------------

    async def resume(self) -> None:
        """After a start: reschedule pending requests and resend callbacks not yet delivered."""
        async with self.pool.acquire() as conn:
            pending = await conn.fetch(
                "SELECT subject_request_id, expected_completion_time FROM dsr_requests "
                "WHERE request_status IN ('pending', 'in_progress')"
            )
            undelivered = await conn.fetch(
                "SELECT subject_request_id FROM dsr_requests "
                "WHERE request_status IN ('completed', 'cancelled') AND cardinality(callbacks_due) > 0"
            )
        for row in pending:
            self.schedule(str(row["subject_request_id"]), row["expected_completion_time"])
        for row in undelivered:
            self.deliver_soon(str(row["subject_request_id"]))
        if pending or undelivered:
            log.info("opendsr requests resumed", pending=len(pending), undelivered=len(undelivered))

    def schedule(self, request_id: str, due: dt.datetime) -> None:
        if request_id in self._jobs:
            return
        task = asyncio.create_task(self._run(request_id, due), name=f"opendsr-{request_id}")
        self._jobs[request_id] = task
        task.add_done_callback(lambda _: self._jobs.pop(request_id, None))

    def unschedule(self, request_id: str) -> None:
        task = self._jobs.pop(request_id, None)
        if task is not None:
            task.cancel()

    def deliver_soon(self, request_id: str) -> None:
        task = asyncio.create_task(self.deliver(request_id), name=f"opendsr-callbacks-{request_id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def close(self) -> None:
        tasks = [*self._jobs.values(), *self._deliveries]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, request_id: str, due: dt.datetime) -> None:
        delay = (due - dt.datetime.now(dt.UTC)).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            changed = await self._through_outages(self.complete, request_id, "opendsr request not processed")
            if changed:
                await self._through_outages(self.deliver, request_id, "opendsr callbacks not read")
        except _Outage:
            return  # left pending or due: the next start resumes it
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("opendsr request failed; left for the next start", subject_request_id=request_id)

    async def _through_outages(self, step: Callable[[str], Awaitable[T]], request_id: str, what: str) -> T:
        """Run `step`, retrying while the database is away (a restart takes seconds)."""
        for attempt in range(1, 11):
            try:
                return await step(request_id)
            # A connection lost to a database restart (InterfaceError) is as passing as the rest.
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                log.warning(f"{what}; retrying", subject_request_id=request_id, attempt=attempt,
                            error=type(exc).__name__)
                # After a restart every idle connection of the pool is dead: without this, each
                # attempt could draw another one and fail.
                self.pool.expire_connections()
                await asyncio.sleep(min(attempt, 5))
        raise _Outage

    # -- the work --------------------------------------------------------------------------

    async def complete(self, request_id: str) -> bool:
        """Carry out a pending request in one transaction; False if it was no longer pending."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT subject_request_type, identity_hashes, request_status FROM dsr_requests "
                "WHERE subject_request_id = $1 FOR UPDATE",
                request_id,
            )
            if row is None or row["request_status"] not in ("pending", "in_progress"):
                return False
            hashes = list(row["identity_hashes"])
            results: str | None = None
            if row["subject_request_type"] == "erasure":
                count = await erase_subject(conn, hashes)
            else:
                document, count = await export_subject(conn, hashes)
                results = json.dumps({"subject_request_id": request_id, **document})
            await conn.execute(
                "UPDATE dsr_requests SET request_status = 'completed', status_changed_time = now(), "
                "results = $2::jsonb, results_count = $3, callbacks_due = status_callback_urls "
                "WHERE subject_request_id = $1",
                request_id, results, count,
            )
        log.info("opendsr request completed", subject_request_id=request_id,
                 subject_request_type=row["subject_request_type"], results_count=count)
        return True

    async def deliver(self, request_id: str) -> None:
        """POST the current status to every callback URL still due, retrying each a few times."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM dsr_requests WHERE subject_request_id = $1", request_id)
        if row is None:
            return
        for url in row["callbacks_due"]:
            body = canonical_json(self.status_document(row, callback_url=url))
            headers = {"Content-Type": "application/json", **self.signed_headers(body)}
            for attempt in range(1, self.callback_attempts + 1):
                try:
                    response = await self.http.post(url, content=body, headers=headers)
                    # 409: the controller has this very body already (an earlier attempt whose
                    # answer was lost); sending it again would change nothing.
                    if response.is_success or response.status_code == 409:
                        break
                    outcome = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                log.warning("opendsr callback failed", subject_request_id=request_id, attempt=attempt,
                            outcome=outcome)
                if attempt < self.callback_attempts:
                    await asyncio.sleep(self.callback_backoff * 2 ** (attempt - 1))
            else:
                continue  # stays due: retried at the next start
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE dsr_requests SET callbacks_due = array_remove(callbacks_due, $2) "
                    "WHERE subject_request_id = $1",
                    request_id, url,
                )
