"""Crash windows of a processor's answer on its signed link (api/callbacks/manual_confirm.py,
processor_uploads.py), each opened by killing a real API process at the line it follows (a
failpoint, dsrflow/infra/failpoints.py): an export's files stored before their rows
(`export-stored`), an export on record before its task is told (`export-kept`), a confirmation
on record before its task, or the sweep following an erasure asked after a hold ended, is told
(`manual-confirmed`); and PostgreSQL stopping while an export streams in. The processor, whose
page never came, sends again, or never comes back. Exactly once in effect, nothing lost: no file
kept twice, one confirmation, and the waiting task told. One stack and one database of their own
for the kills the processor repeats (its worker is never killed; the sweep of orphans takes every
row there); the one it never repeats runs on a time-skipping server, the outage on a PostgreSQL
server of its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.processes import free_port
from dsrflow.infra.storage import open_storage
from dsrflow.stores.kept_copies import sweep_orphans
from schemas.workflow import workflow_id_for
from tests.conftest import running_postgres
from tests.evidence_pages import LOCAL_TIME
from tests.fanout_stack import api, fanout_stack, fanout_stack_alone
from tests.hold_release import release_over_rest
from tests.process_support import answering, died, dsrflow_process
from tests.support import (
    attested_request,
    eventually,
    letters_for,
    live_client,
    place_claims_hold,
    staff_headers,
    text_of,
    unique_email,
    wait_for_letter,
)
from tests.test_processor_exports import _LINK, ANSWERS, LIMITS, PROFILE, SURVEYS_CONTACT, _package, _uploads
from workers.dsr_worker import build_worker

EXPORT = [("files", ("answers.csv", ANSWERS, "text/csv")), ("files", ("profile.json", PROFILE, "application/json"))]
ON_RECORD = ("SELECT count(*) FROM manual_tasks m JOIN system_tasks s USING (request_id, system, action) "
             "WHERE m.request_id = $1 AND m.system = 'surveys' AND s.status = 'pending'")


@contextlib.asynccontextmanager
async def surveys_asked_by_email(postgres, settings, client, tmp: Path, name: str,
                                 **worker_settings: Any) -> AsyncIterator[dict]:
    """The stack with the survey provider asked by e-mail, a worker running throughout (with
    `worker_settings` over the stack's), and settings for an API process of the test's own (its
    own port), to be killed."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)  # read by the worker and the API processes
        async with fanout_stack_alone(postgres, settings, client, tmp, name, keep_manual=("surveys",),
                                      policy_updates=LIMITS) as (stack, pool), \
                build_worker(client, stack.settings.model_copy(update=worker_settings), pool), \
                api(stack) as http:
            port = free_port()
            own = stack.settings.model_copy(update={"api_port": port, "public_url": f"http://127.0.0.1:{port}"})
            yield {"stack": stack, "pool": pool, "http": http, "own": own}


@pytest.fixture(scope="module")
async def answers(postgres, settings, dev_server, mail_sink, tmp_path_factory) -> AsyncIterator[dict]:
    async with surveys_asked_by_email(postgres, settings, dev_server.client, tmp_path_factory.mktemp("uploads"),
                                      "uploads") as stack:
        yield stack


async def _asked(http, pool, mail_sink, type_: str, email: str) -> tuple[str, str]:
    """A request whose survey-provider task waits for the processor: its id and the link's path."""
    rid = await attested_request(http, pool, type_, email)
    path = _LINK.search(text_of(await wait_for_letter(mail_sink, rid, "processor_request", 60))).group(1)

    async def waiting() -> bool:  # the e-mail on record, not only in the sink, and the task waiting
        return await pool.fetchval(ON_RECORD, rid) == 1

    await eventually(waiting)
    return rid, path


async def _killed_at(failpoint: str, own, client, tmp_path: Path, path: str, **sent) -> None:
    """The processor sends its answer to an API process of its own (settings `own`) that dies at
    `failpoint`: its page never comes."""
    async with live_client(base_url=own.public_url, timeout=30) as processor, \
            dsrflow_process("api", own, client, tmp_path, failpoints=failpoint) as first:
        await answering(processor, first, tmp_path)
        with pytest.raises(httpx.TransportError):
            await processor.post(path, **sent)
        await died(first, tmp_path, role="api")


async def _surveys(http, pool, rid: str) -> dict:
    """The survey provider's task as staff read it on the request."""
    view = (await http.get(f"/v1/requests/{rid}", headers=await staff_headers(pool, "agent"))).json()
    return next(r for r in view["results"] if r["system"] == "surveys")


async def _events(pool, rid: str, event_type: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = $2",
                               rid, event_type)


async def test_an_upload_killed_once_its_files_are_stored_is_kept_once_when_sent_again(
        answers, dev_server, mail_sink, tmp_path):
    """The API dies with the export's files stored whole and no row naming them: nothing is on
    record, the link shows its form, the task waits. The processor sends the export again: kept
    once (one file each in the package, one audit event), and the first try's files, which no row
    names, are swept once a day old, the kept ones left."""
    stack, pool, http = answers["stack"], answers["pool"], answers["http"]
    rid, path = await _asked(http, pool, mail_sink, "access", unique_email("stored"))
    before = _uploads(stack.settings.home)
    await _killed_at("export-stored~surveys", answers["own"], dev_server.client, tmp_path, path, files=EXPORT)
    first_try = _uploads(stack.settings.home) - before
    assert len(first_try) == 2 and not any(p.name.endswith(".part") for p in first_try), first_try
    assert await pool.fetchval("SELECT count(*) FROM processor_exports WHERE request_id = $1", rid) == 0
    assert await pool.fetchval("SELECT confirmed_at FROM manual_tasks WHERE request_id = $1", rid) is None
    page = await http.get(path)
    assert page.status_code == 200 and 'type="file"' in page.text

    again = await http.post(path, files=EXPORT)
    assert again.status_code == 200 and "We have received 2 files: answers.csv, profile.json" in again.text
    state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
    assert state["status"] == "completed", state
    assert (await _surveys(http, pool, rid))["message"].startswith("Survey service provider sent its export (2 files)")
    _, archive = await _package(http, mail_sink, rid)
    assert sorted(n for n in archive.namelist() if n.startswith("surveys/files/")) == \
        ["surveys/files/answers.csv", "surveys/files/profile.json"]
    assert archive.read("surveys/files/answers.csv") == ANSWERS
    assert await _events(pool, rid, "processor.export_received") == 1

    kept = {stack.settings.home.resolve() / r["path"] for r in await pool.fetch(
        "SELECT path FROM processor_exports WHERE request_id = $1", rid)}
    assert len(kept) == 2 and not kept & first_try
    day_old = (datetime.now(UTC) - timedelta(days=1, minutes=1)).timestamp()
    for left in first_try:
        os.utime(left, (day_old, day_old))
    assert await sweep_orphans(pool, open_storage(stack.settings), datetime.now(UTC)) == 2
    assert not any(p.exists() for p in first_try) and all(p.exists() for p in kept)


async def test_an_upload_killed_before_its_task_is_told_is_told_when_sent_again_and_named(
        answers, dev_server, mail_sink, tmp_path):
    """The API dies with the export on record (files, rows, the answer) and its task not told:
    staff still see the task waiting. The processor, whose page never came, opens its link or
    sends again: it is told which files we have (before: only that the request was answered and
    that no more files could be added), nothing is kept twice, and its repeat tells the task."""
    pool, http = answers["pool"], answers["http"]
    rid, path = await _asked(http, pool, mail_sink, "access", unique_email("kept"))
    await _killed_at("export-kept~surveys", answers["own"], dev_server.client, tmp_path, path, files=EXPORT)
    assert await pool.fetchval("SELECT count(*) FROM processor_exports WHERE request_id = $1", rid) == 2
    assert (await _surveys(http, pool, rid))["status"] == "pending"
    assert letters_for(mail_sink, rid, "response") == []

    named = "We received your export on "
    opened = await http.get(path)
    assert opened.status_code == 200 and "Already confirmed" in opened.text
    assert named in opened.text and "2 files (answers.csv, profile.json)" in opened.text
    assert re.search(f"{named}{LOCAL_TIME}", opened.text), opened.text  # on the controller's clock, named
    again = await http.post(path, files=EXPORT)
    assert again.status_code == 409 and "already been answered" in again.text
    assert named in again.text and "2 files (answers.csv, profile.json)" in again.text
    state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
    assert state["status"] == "completed", state
    assert (await _surveys(http, pool, rid))["status"] == "done"
    assert await pool.fetchval("SELECT count(*) FROM processor_exports WHERE request_id = $1", rid) == 2
    assert await _events(pool, rid, "processor.export_received") == 1
    assert len(letters_for(mail_sink, rid, "response")) == 1


async def test_a_confirmation_killed_before_its_task_is_told_is_told_when_confirmed_again(
        answers, dev_server, mail_sink, tmp_path):
    """The API dies with the processor's confirmation of an erasure on record and its task not
    told. The processor confirms again: 'Already confirmed', its first note kept, one
    `processor.confirmed`, and the task is told: the request completes."""
    pool, http = answers["pool"], answers["http"]
    rid, path = await _asked(http, pool, mail_sink, "erasure", unique_email("confirmed"))
    await _killed_at("manual-confirmed~surveys", answers["own"], dev_server.client, tmp_path, path,
                     data={"note": "Deleted from our panel."})
    assert await pool.fetchval("SELECT confirmed_at FROM manual_tasks WHERE request_id = $1", rid) is not None
    assert (await _surveys(http, pool, rid))["status"] == "pending"

    again = await http.post(path, data={"note": "Sending again: no page came."})
    assert again.status_code == 200 and "Already confirmed" in again.text
    state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
    assert state["status"] == "completed", state
    assert (await _surveys(http, pool, rid))["status"] == "done"
    assert await pool.fetchval("SELECT confirmation_note FROM manual_tasks WHERE request_id = $1", rid) == \
        "Deleted from our panel."
    assert await _events(pool, rid, "processor.confirmed") == 1


async def test_a_deferred_erasures_confirmation_killed_before_its_sweep_is_recorded_when_confirmed_again(
        answers, dev_server, mail_sink, tmp_path):
    """The survey provider was asked to erase once a legal-claims hold ended, long after its
    request closed; the API dies with its confirmation on record, before the sweep that records
    the erasure as done starts. It confirms again: the sweep runs, and compliance sees the erasure
    confirmed, once. Before, the repeat said 'Already confirmed' and started nothing: the erasure
    read as asked until the next day's sweep."""
    client, stack, pool, http = dev_server.client, answers["stack"], answers["pool"], answers["http"]
    email = unique_email("deferred")
    hold = await place_claims_hold(pool, stack.settings, email, ["surveys"])
    rid = await attested_request(http, pool, "erasure", email)
    assert (await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90))["status"] == \
        "completed"
    compliance = await staff_headers(pool, "compliance")
    released = await release_over_rest(http, hold['id'], headers=compliance)
    assert released.status_code == 204, released.text
    path = _LINK.search(text_of(await wait_for_letter(mail_sink, rid, "processor_request", 60))).group(1)
    row = "SELECT submitted_at, done_at FROM deferred_erasures WHERE request_id = $1 AND system = 'surveys'"

    async def asked() -> bool:
        return (await pool.fetchrow(row, rid))["submitted_at"] is not None

    await eventually(asked)
    await _killed_at("manual-confirmed~surveys", answers["own"], client, tmp_path, path, data={"note": "Removed."})
    assert await pool.fetchval("SELECT confirmed_at FROM manual_tasks WHERE request_id = $1", rid) is not None
    assert (await pool.fetchrow(row, rid))["done_at"] is None

    again = await http.post(path, data={"note": "again"})
    assert again.status_code == 200 and "Already confirmed" in again.text

    async def erased() -> bool:
        return (await pool.fetchrow(row, rid))["done_at"] is not None

    await eventually(erased, timeout=30)
    listed = (await http.get(f"/v1/requests/{rid}/deferred-erasures", headers=compliance)).json()
    assert next(d for d in listed if d["system"] == "surveys")["states"] == {"erased": 1}
    assert await _events(pool, rid, "erasure.deferred_confirmed") == 1


async def test_a_confirmation_killed_before_its_task_is_told_reaches_it_at_its_next_poll_unrepeated(
        postgres, settings, pool, time_skipping, mail_sink, tmp_path, monkeypatch):
    """The processor confirms two days after it was asked, the API dies before telling the task,
    and the processor never comes back: with no start sweep running (none does here), the task's
    own poll, at most six hours apart (workflows/system_task.py), still finds the confirmation, and
    the request completes. The sweep tells it within minutes: tests/test_crash_untold.py."""
    env = time_skipping
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    async with fanout_stack(postgres, settings, env.client, tmp_path, keep_manual=("surveys",)) as stack:
        port = free_port()
        own = stack.settings.model_copy(update={"api_port": port, "public_url": f"http://127.0.0.1:{port}"})
        async with build_worker(env.client, stack.settings, pool), api(stack) as http:
            rid, path = await _asked(http, pool, mail_sink, "erasure", unique_email("unrepeated"))
            await env.sleep(timedelta(days=2))
            assert (await _surveys(http, pool, rid))["status"] == "pending"
            await _killed_at("manual-confirmed~surveys", own, env.client, tmp_path, path, data={"note": "x"})
            await env.sleep(timedelta(hours=6, minutes=1))

            async def done() -> bool:  # without moving the clock on: a wait for the result would
                return (await _surveys(http, pool, rid))["status"] == "done"

            await eventually(done)
            state = await asyncio.wait_for(env.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
    assert state["status"] == "completed", state
    assert {r["system"]: r["status"] for r in state["results"]}["surveys"] == "done"


async def test_an_upload_while_postgresql_stops_keeps_nothing_and_is_kept_once_when_sent_again(
        postgres, settings, dev_server, mail_sink, tmp_path, monkeypatch):
    """PostgreSQL stops while the processor's export streams in: the page says to send it again
    in a few seconds (503), and nothing is kept (no file, no row, the link still takes
    the export). Sent again once PostgreSQL is back: kept once, and the request completes. A
    PostgreSQL server of its own (the request's database and the demo systems'), stopped for the test."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    client = dev_server.client
    async with running_postgres(tmp_path) as server, \
            fanout_stack_alone(server, settings, client, tmp_path, "upload_outage", keep_manual=("surveys",)) as (
                stack, pool), \
            build_worker(client, stack.settings, pool), api(stack) as http:
        rid, path = await _asked(http, pool, mail_sink, "access", unique_email("outage"))
        before = _uploads(stack.settings.home)
        boundary = "crash-window-boundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"answers.csv\"\r\n"
                "Content-Type: text/csv\r\n\r\n").encode() + ANSWERS[:10]
        tail = ANSWERS[10:] + f"\r\n--{boundary}--\r\n".encode()

        async def streamed() -> AsyncIterator[bytes]:
            yield head

            async def receiving() -> bool:  # past the link's look-up: the file is being written
                return any(p.name.endswith(".part") for p in _uploads(stack.settings.home) - before)

            await eventually(receiving)
            await asyncio.to_thread(server.stop)
            yield tail

        cut = await http.post(path, content=streamed(), headers={
            "content-type": f"multipart/form-data; boundary={boundary}", "accept": "text/html"})
        assert cut.status_code == 503 and "send the form again in a few seconds" in cut.text, cut.text
        # Nothing was kept, and the page says it may not have reached us, not that nothing was lost.
        assert "may not have reached us" in cut.text and "Nothing you sent has been lost" not in cut.text
        assert _uploads(stack.settings.home) == before
        server.start(tmp_path / "postgres-again.log")
        await server.wait_ready()
        assert await pool.fetchval("SELECT count(*) FROM processor_exports WHERE request_id = $1", rid) == 0
        assert await pool.fetchval("SELECT confirmed_at FROM manual_tasks WHERE request_id = $1", rid) is None

        again = await http.post(path, files=EXPORT)
        assert again.status_code == 200 and "We have received 2 files" in again.text
        state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
        assert state["status"] == "completed", state
        assert await pool.fetchval("SELECT count(*) FROM processor_exports WHERE request_id = $1", rid) == 2
        assert await _events(pool, rid, "processor.export_received") == 1
