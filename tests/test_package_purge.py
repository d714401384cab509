"""Copies that escape expiry and erasure (issue 14, item 8): a package file is deleted once its
download link has expired (the hourly schedule's workflow, or `dsrflow packages purge`), and
every package and processor upload of a subject once an erasure of that subject completes.
Both are audited, and a link to a deleted package answers 410 saying why. Each runs on both back
ends of the package storage: the local directory and an S3 bucket (moto's server over loopback)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from activities.letter_context import issue_package_link
from dsrflow.crypto.keys import load_secret_key
from dsrflow.infra.db import create_pool
from dsrflow.infra.storage import BlobStore, open_storage
from dsrflow.settings import Settings
from dsrflow.stores.export_store import export_writer
from dsrflow.stores.kept_copies import purge_expired
from schemas.copies import PurgeInput, PurgeReport
from schemas.workflow import workflow_id_for
from tests.conftest import make_database
from tests.s3_support import s3_settings, stored
from tests.support import (
    assert_problem,
    delete_schedules,
    served,
    settings_env,
    staff_headers,
    stored_request,
    text_of,
    unique_email,
    wait_for_letter,
)
from workers.dsr_worker import activity_context
from workers.schedules import PACKAGE_PURGE_SCHEDULE_ID, ensure_schedules
from workflows.package_purge import PackagePurgeWorkflow

REPO = Path(__file__).resolve().parent.parent
_LINK = re.compile(r"/portal/packages/[0-9a-f]{64}")


@dataclass
class Kept:
    """The API and a worker on one back end of the package storage, and that storage."""

    http: httpx.AsyncClient
    settings: Settings
    store: BlobStore


@pytest.fixture(scope="module")
async def purge_settings(settings, postgres) -> Settings:
    """A database of this module's own: the purge sweeps every expired package in its database,
    and other modules leave rows there that no storage holds (tests/test_portal.py's pages)."""
    return settings.model_copy(update={"database_url": await make_database(postgres, "purge")})


@pytest.fixture(scope="module")
async def pool(purge_settings) -> AsyncIterator[asyncpg.Pool]:
    """This module's tests read and write `purge_settings`' database (overrides conftest's)."""
    pool = await create_pool(purge_settings.database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture(params=["local", "s3"])
async def kept(request, purge_settings, pool, dev_server, task_queue, s3_endpoint) -> AsyncIterator[Kept]:
    chosen = purge_settings if request.param == "local" else s3_settings(purge_settings, s3_endpoint)
    async with served(chosen, pool, dev_server.client, task_queue) as http:
        yield Kept(http, chosen, open_storage(chosen))


async def _exists(kept: Kept, key: str) -> bool:
    return await kept.store.size(key) is not None


async def _open(http, pool, type_: str, email: str) -> str:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                        json={"type": type_, "subject": {"email": email}, "identity_attested": True})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _access_with_link(kept: Kept, pool, mail_sink, email: str) -> tuple[str, str, str]:
    """An access request answered: its download link, and its package's storage key."""
    rid = await _open(kept.http, pool, "access", email)
    link = _LINK.search(text_of(await wait_for_letter(mail_sink, rid, "response", timeout=60))).group(0)
    key = await pool.fetchval("SELECT path FROM packages WHERE request_id = $1", uuid.UUID(rid))
    assert key.startswith("packages/") and await _exists(kept, key)
    download = await kept.http.post(link)
    assert download.status_code == 200 and "summary.html" in zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    return rid, link, key


async def _events(pool, request_id: str, event_type: str) -> list[dict]:
    rows = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND event_type = $2",
                            uuid.UUID(request_id), event_type)
    return [dict(r["data"]) for r in rows]


def _purge_cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "packages", "purge", *args], check=False,
                          env={**os.environ, **settings_env(settings), "PYTHONPATH": str(REPO)},
                          cwd=REPO, capture_output=True, text=True, timeout=120)


async def test_a_package_whose_link_expired_is_deleted_and_its_link_says_so(
        kept, pool, mail_sink, dev_server, task_queue):
    http, settings = kept.http, kept.settings
    email = unique_email("expired")
    rid, link, key = await _access_with_link(kept, pool, mail_sink, email)
    # Seven days later (the policy's package_link_days): the link has expired.
    await pool.execute("UPDATE packages SET expires_at = now() - interval '1 minute' WHERE request_id = $1",
                       uuid.UUID(rid))

    # The operator's command counts first and deletes nothing without --yes; it names no one.
    dry = await asyncio.to_thread(_purge_cli, settings)
    assert dry.returncode == 0, dry.stderr
    assert re.fullmatch(r"would delete [1-9]\d* package file\(s\) \(\d+ bytes\); run with --yes to delete them\n",
                        dry.stdout), dry.stdout
    assert "@" not in dry.stdout + dry.stderr and await _exists(kept, key)

    # The hourly schedule runs this workflow.
    await ensure_schedules(dev_server.client, task_queue)
    try:
        schedule = await dev_server.client.get_schedule_handle(PACKAGE_PURGE_SCHEDULE_ID).describe()
    finally:
        await delete_schedules(dev_server.client)
    assert schedule.schedule.action.workflow == "PackagePurgeWorkflow"
    report = await dev_server.client.execute_workflow(
        PackagePurgeWorkflow.run, PurgeInput(), id=f"purge-{uuid.uuid4().hex[:8]}", task_queue=task_queue,
        result_type=PurgeReport)
    assert report.packages >= 1
    assert not await _exists(kept, key)
    row = await pool.fetchrow("SELECT purged_at, purge_reason FROM packages WHERE request_id = $1", uuid.UUID(rid))
    assert row["purged_at"] is not None and row["purge_reason"] == "link_expired"
    assert [e["reason"] for e in await _events(pool, rid, "package.purged")] == ["link_expired"]

    problem = assert_problem(await http.get(link.replace("/portal/", "/v1/public/")), 410)  # the API's answer
    assert "deleted" in problem["detail"] and "@" not in problem["detail"]
    page = await http.get(link, headers={"Accept": "text/html"})
    assert page.status_code == 410 and "deleted" in page.text
    review = await http.get(f"/v1/requests/{rid}/package", headers=await staff_headers(pool, "compliance"))
    assert_problem(review, 410)

    again = await asyncio.to_thread(_purge_cli, settings, "--yes")
    assert again.returncode == 0 and again.stdout.startswith("deleted "), again.stdout + again.stderr
    assert len(await _events(pool, rid, "package.purged")) == 1  # once, whoever runs it


async def _fake_upload(pool, kept: Kept, request_id: str) -> str:
    """What a processor without an API leaves when it answers an access request on its page
    (api/callbacks/processor_uploads.py): an encrypted object under uploads/ and its row."""
    external_id = f"manual-{uuid.uuid4().hex}"
    await pool.execute(
        """INSERT INTO manual_tasks (request_id, system, action, external_id, contact_email, message_id, confirmed_at)
           VALUES ($1, 'surveys', 'access', $2, 'privacy@surveys.example', '<m@x>', now())""",
        uuid.UUID(request_id), external_id)
    upload_id = str(uuid.uuid4())
    writer, blob = export_writer(kept.store, load_secret_key(kept.settings), upload_id)
    writer.write(b'{"answers": ["I like the product"]}')
    writer.close()
    await blob.commit()
    await pool.execute(
        """INSERT INTO processor_exports (id, request_id, system, external_id, filename, media_type, size_bytes,
                                          sha256, path) VALUES ($1, $2, 'surveys', $3, 'answers.json',
                                          'application/json', 36, 'x', $4)""",
        uuid.UUID(upload_id), uuid.UUID(request_id), external_id, blob.key)
    return blob.key


async def test_an_erasure_deletes_the_subjects_packages_and_uploads_and_nobody_elses(
        kept, pool, mail_sink, dev_server, s3_endpoint):
    http = kept.http
    email, other = unique_email("erased"), unique_email("bystander")
    rid, link, key = await _access_with_link(kept, pool, mail_sink, email)
    upload = await _fake_upload(pool, kept, rid)
    other_rid, other_link, other_key = await _access_with_link(kept, pool, mail_sink, other)
    if kept.settings.storage == "s3":  # what the bucket holds is sealed: no clear text, no address
        objects = stored(s3_endpoint, kept.settings.s3_prefix)
        assert {key, upload, other_key} <= set(objects)
        assert not any(b"I like the product" in data or email.encode() in data for data in objects.values())

    erasure = await _open(http, pool, "erasure", email.upper())  # the same subject, however written
    state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(erasure)).result(), 60)
    assert state["status"] == "completed"

    assert not await _exists(kept, key) and not await _exists(kept, upload)
    assert not [found async for found in kept.store.listing("uploads") if found.key.startswith(upload)]
    [event] = await _events(pool, rid, "package.purged")
    assert event["reason"] == "subject_erased" and event["erasure_request_id"] == erasure
    [uploaded] = await _events(pool, rid, "processor_export.purged")
    assert uploaded["system"] == "surveys" and uploaded["erasure_request_id"] == erasure
    assert await pool.fetchval("SELECT purged_at IS NOT NULL FROM processor_exports WHERE request_id = $1",
                               uuid.UUID(rid))
    problem = assert_problem(await http.get(link.replace("/portal/", "/v1/public/")), 410)  # the API's answer
    assert "erased" in problem["detail"]

    # Another subject's package is untouched.
    assert await _exists(kept, other_key) and (await http.get(other_link)).status_code == 200
    assert not await _events(pool, other_rid, "package.purged")


async def test_a_response_that_has_not_gone_keeps_its_package_and_its_link_runs_from_when_it_goes(
        purge_settings, pool):
    """The response carrying a package's link failed (the relay refused it) and waits for staff
    longer than the link's days. Before, its days ran from the first render: the purge deleted the
    package, and the letter staff finally sent named a date already past and a dead link. Now the
    package stays while its open request's response has not gone, and the link's days start again
    with each render until the letter goes; after that, and for a closed request, expiry is final."""
    ctx = activity_context(purge_settings, pool)
    store = ctx.storage

    async def package_for(request_id: str) -> tuple[str, str]:
        package_id, key = str(uuid.uuid4()), f"packages/{uuid.uuid4().hex}"
        blob = store.writer(key)
        blob.write(b"sealed")
        size = await blob.commit()
        await pool.execute("INSERT INTO packages (id, request_id, kind, path, size_bytes, records) "
                           "VALUES ($1, $2, 'access', $3, $4, 1)", package_id, uuid.UUID(request_id), key, size)
        return package_id, key

    async def eight_days_later(package_id: str) -> None:
        await pool.execute("UPDATE packages SET expires_at = now() - interval '1 day' WHERE id = $1", package_id)

    async def purged(package_id: str, key: str) -> bool:
        await purge_expired(pool, store, datetime.now(UTC))
        gone = await pool.fetchval("SELECT purged_at IS NOT NULL FROM packages WHERE id = $1", package_id)
        assert gone == (await store.size(key) is None)
        return bool(gone)

    rid = await stored_request(pool, purge_settings, "late")
    package_id, key = await package_for(rid)
    _, first = await issue_package_link(ctx, package_id, 7)  # the response's first render
    await eight_days_later(package_id)
    assert not await purged(package_id, key)  # its response has not gone: the package stays
    _, again = await issue_package_link(ctx, package_id, 7)  # staff retry the letter: it goes now
    assert again > first and again > datetime.now(UTC) + timedelta(days=6)

    await pool.execute("INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject, message_id, "
                       "body_text, body_html) VALUES ($1, $2, 'response', 'x@example.com', 's', 'm', 't', 'h')",
                       f"{rid}:response:1", uuid.UUID(rid))
    await eight_days_later(package_id)
    _, after = await issue_package_link(ctx, package_id, 7)  # a render after it went changes nothing
    assert after < datetime.now(UTC)
    assert await purged(package_id, key)

    closed = await stored_request(pool, purge_settings, "late")  # closed without its response (denied, cancelled)
    closed_package, closed_key = await package_for(closed)
    await issue_package_link(ctx, closed_package, 7)
    await pool.execute("UPDATE dsr_requests SET closed_at = now() WHERE id = $1", uuid.UUID(closed))
    await eight_days_later(closed_package)
    assert await purged(closed_package, closed_key)

    # Denied (or withdrawn) at approval: its response, and so its link, never comes. Before, the
    # package stayed for good, downloadable by staff; it goes a week after the close.
    refused = await stored_request(pool, purge_settings, "late")
    refused_package, refused_key = await package_for(refused)
    await pool.execute("UPDATE dsr_requests SET closed_at = now() - interval '6 days' WHERE id = $1", uuid.UUID(refused))
    assert not await purged(refused_package, refused_key)
    await pool.execute("UPDATE dsr_requests SET closed_at = now() - interval '8 days' WHERE id = $1", uuid.UUID(refused))
    assert await purged(refused_package, refused_key)
    assert await pool.fetchval("SELECT purge_reason FROM packages WHERE id = $1", refused_package) == "closed_unanswered"

