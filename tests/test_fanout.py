"""The processor fan-out end to end: the demo systems, the OpenDSR processor over loopback with
signed callbacks, access packages, erasure, rectification, and a worker process killed mid-fan-out."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import uuid
import zipfile
from datetime import timedelta

import asyncpg
import httpx
import pytest

from schemas.workflow import task_workflow_id, workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import (
    delete_schedules,
    eventually,
    fetch_rows,
    letters_for,
    settings_env,
    staff_headers,
    staff_retry,
    text_of,
    wait_for_letter,
)
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow


@pytest.fixture
async def stack(postgres, settings, dev_server, tmp_path):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as running:
        yield running


async def _count(url: str, sql: str, *args) -> int:
    return (await fetch_rows(url, sql, *args))[0][0]


async def _open(http, pool, body: dict) -> str:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                        json={"identity_attested": True, **body})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _result(client, rid: str) -> dict:
    return await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90)


async def test_access_for_ada_returns_all_four_systems(stack, pool, dev_server, mail_sink):
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open(http, pool, {"type": "access", "subject": {"email": "ada@example.com"}})
        state = await _result(dev_server.client, rid)
        assert state["status"] == "completed"
        assert set(state["package"]["systems"]) == {"crm", "analytics", "billing", "email_marketing"}
        # Staff reading the request over the API see what the package read from each system,
        # though those systems had no task (and no entry in `results`).
        view = (await http.get(f"/v1/requests/{rid}", headers=await staff_headers(pool, "agent"))).json()
        assert view["package"]["systems"] == state["package"]["systems"]
        assert all(count > 0 for count in view["package"]["systems"].values())

        letter = text_of(await wait_for_letter(mail_sink, rid, "response"))
        link = re.search(r"(http://\S+/portal/packages/[0-9a-f]{64})", letter).group(1)
        stored = await pool.fetchval("SELECT body_text FROM sent_letters WHERE request_id = $1 AND purpose = 'response'", rid)
        assert link not in stored  # the kept copy of the letter cannot open the package
        downloads = ("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                     "AND event_type = 'package.downloaded'")
        # A mail scanner opens the link: the page, and no download in the subject's name.
        scanned = await http.get(link.removeprefix(stack.api_url))
        assert scanned.status_code == 200 and "Download your data" in scanned.text
        assert await pool.fetchval(downloads, uuid.UUID(rid)) == 0
        download = await http.post(link.removeprefix(stack.api_url))  # the button on the link's page
        assert download.status_code == 200, download.text
        assert await pool.fetchval(downloads, uuid.UUID(rid)) == 1
        first = await pool.fetchval("SELECT downloaded_at FROM packages WHERE request_id = $1", uuid.UUID(rid))
        assert first is not None
        again = await http.post(link.removeprefix(stack.api_url))  # downloaded again: still the first time
        assert again.status_code == 200 and again.content == download.content
        assert await pool.fetchval(downloads, uuid.UUID(rid)) == 1
        assert await pool.fetchval("SELECT downloaded_at FROM packages WHERE request_id = $1", uuid.UUID(rid)) == first
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    names = archive.namelist()
    assert "summary.html" in names
    assert any(n.startswith("billing/payments/invoices") and n.endswith(".json") for n in names)
    assert any(n.startswith("email_marketing/") for n in names)
    contacts = json.loads(archive.read(next(n for n in names if n.endswith("contacts.json"))))
    assert any(row.get("email") == "ada@example.com" for row in contacts)
    summary = archive.read("summary.html").decode()
    for expected in ("Legal basis", "Retention", "Gegevensbeschermingsautoriteit", "Google Analytics"):
        assert expected in summary
    # Nothing of ada's lies in clear text on disk.
    key = await pool.fetchval("SELECT path FROM packages WHERE request_id = $1", rid)
    assert b"ada@example.com" not in (stack.settings.home.resolve() / key).read_bytes()


async def test_erasure_for_grace_everywhere_and_idempotent(stack, pool, dev_server, mail_sink):
    db = stack.databases
    others_before = await _count(db["crm"], "SELECT count(*) FROM contacts WHERE email <> 'grace@example.com'")
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open(http, pool, {"type": "erasure", "subject": {"email": "grace@example.com"}})
        state = await _result(dev_server.client, rid)
        assert state["status"] == "completed", state
        results = {r["system"]: r for r in state["results"]}
        assert {s: r["status"] for s, r in results.items()} == {
            "crm": "done", "analytics": "done", "billing": "done", "email_marketing": "done"}
        assert await _count(db["crm"], "SELECT count(*) FROM contacts WHERE lower(email) = 'grace@example.com'") == 0
        assert await _count(db["billing"], "SELECT count(*) FROM customers WHERE lower(email) = 'grace@example.com'") == 0
        assert await _count(db["analytics"], "SELECT count(*) FROM users WHERE lower(email) = 'grace@example.com'") == 0
        assert await _count(db["email_marketing"], "SELECT count(*) FROM subscribers WHERE email = 'grace@example.com'") == 0
        assert await _count(db["crm"], "SELECT count(*) FROM contacts WHERE email <> 'grace@example.com'") == others_before
        events = await pool.fetch("SELECT event_type FROM audit_events WHERE request_id = $1", rid)
        assert "processor.callback" in {e["event_type"] for e in events}
        # The signed callback's own count settled the processor's task: its status was not asked.
        assert results["email_marketing"]["changed"] > 0
        child = await dev_server.client.get_workflow_handle(
            task_workflow_id(rid, "email_marketing", "erase", 1)).fetch_history()
        assert [e.activity_task_scheduled_event_attributes.activity_type.name for e in child.events
                if e.HasField("activity_task_scheduled_event_attributes")] == ["run_system_action"]
        # The request's workflow and its system's task take the configured workflow task timeout:
        # a worker killed in a step holds them that long (docs/configuration.md).
        parent = await dev_server.client.get_workflow_handle(workflow_id_for(rid)).fetch_history()
        assert {h.events[0].workflow_execution_started_event_attributes.workflow_task_timeout.ToTimedelta()
                for h in (parent, child)} == {timedelta(seconds=stack.settings.workflow_task_timeout)}
        letter = text_of(await wait_for_letter(mail_sink, rid, "response"))
        assert "Art. 19" in letter

        again = await _open(http, pool, {"type": "erasure", "subject": {"email": "grace@example.com"}})
        second = await _result(dev_server.client, again)
        assert second["status"] == "completed"
        assert all(r["changed"] == 0 for r in second["results"]), second["results"]


async def test_rectification_of_ada_reaches_every_system_holding_her_name(stack, pool, dev_server):
    db = stack.databases
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open(http, pool, {"type": "rectification", "subject": {"email": "ada@example.com"},
                                       "corrections": {"name": "Ada King", "last_name": "King"}})
        handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))

        async def email_task_flagged() -> bool:
            state = await handle.query(DataSubjectRequestWorkflow.state)
            return any(r.system == "email_marketing" and r.status == "needs_attention" for r in state.results)

        for _ in range(100):
            if await email_task_flagged():
                break
            await asyncio.sleep(0.2)
        assert await email_task_flagged()  # OpenDSR has no rectification: staff must tell them
        assert await _count(db["crm"], "SELECT count(*) FROM contacts WHERE email = 'ada@example.com' AND last_name = 'King'") == 1
        assert await _count(db["billing"], "SELECT count(*) FROM customers WHERE email = 'ada@example.com' AND name = 'Ada King'") == 1
        r = await http.post(f"/v1/requests/{rid}/resolve-task", headers=await staff_headers(pool, "compliance"),
                            json={"system": "email_marketing", "note": "Told the newsletter provider by e-mail, ticket 88"})
        assert r.status_code == 200, r.text
        assert (await _result(dev_server.client, rid))["status"] == "completed"


async def test_worker_killed_mid_erasure_completes_with_each_action_once(stack, pool, dev_server, mail_sink, tmp_path):
    """A worker process is killed (SIGKILL) while its billing erasure waits inside its
    transaction; the transaction dies with it, another worker retries once the heartbeat
    times out, and the request completes: the erasure applied once, one response letter."""
    db = stack.databases
    blocker = await asyncpg.connect(db["billing"])
    hold = blocker.transaction()
    await hold.start()
    # Her customer row, locked: the erasure's transaction waits on it until the worker dies.
    await blocker.execute("SELECT 1 FROM customers WHERE email = 'ada@example.com' FOR UPDATE")
    target = dev_server.client.service_client.config.target_host
    env = {**os.environ, **settings_env(stack.settings), "TEMPORAL_ADDRESS": target}
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        async with api(stack) as http:
            rid = await _open(http, pool, {"type": "erasure", "subject": {"email": "ada@example.com"}})
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            # Asked on a connection of its own: inside the blocker's transaction the statistics
            # would stay as they were when it began.
            for _ in range(300):
                if await _count(db["billing"], waiting):
                    break
                await asyncio.sleep(0.1)
            assert await _count(db["billing"], waiting), (tmp_path / "worker.log").read_text()[-3000:]
            worker.kill()
            worker.wait(timeout=30)
            await hold.rollback()  # the dead worker's statement ends; its transaction cannot commit
            await blocker.close()
            async with build_worker(dev_server.client, stack.settings, pool):
                state = await _result(dev_server.client, rid)
    finally:
        if worker.poll() is None:
            worker.kill()
        await delete_schedules(dev_server.client)  # the process worker made them
    assert state["status"] == "completed"
    billing = next(r for r in state["results"] if r["system"] == "billing")
    assert billing["status"] == "done" and billing["changed"] > 0
    assert await _count(db["billing"], "SELECT count(*) FROM customers WHERE email = 'ada@example.com'") == 0
    assert len(letters_for(mail_sink, rid, "response")) == 1
    assert await pool.fetchval("SELECT count(*) FROM system_tasks WHERE request_id = $1 AND status <> 'needs_attention'", rid) == 4


async def test_callback_with_bad_signature_is_refused(stack, pool, dev_server):
    before = await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_type = 'processor.callback'")
    async with api(stack) as http:
        body = json.dumps({"subject_request_id": "00000000-0000-4000-8000-000000000000",
                           "request_status": "completed"})
        r = await http.post("/v1/callbacks/opendsr?system=email_marketing", content=body,
                            headers={"X-OpenDSR-Signature": "bm90IGEgc2lnbmF0dXJl",
                                     "Content-Type": "application/json"})
        assert r.status_code == 403
        unsigned = await http.post("/v1/callbacks/opendsr?system=email_marketing", content=body)
        assert unsigned.status_code == 403
    after = await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_type = 'processor.callback'")
    assert after == before


async def test_direct_marketing_objection_unsubscribes_and_suppresses(stack, pool, dev_server):
    db = stack.databases
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open(http, pool, {"type": "objection", "objection_scope": "direct_marketing",
                                       "subject": {"email": "ada@example.com"}})
        state = await _result(dev_server.client, rid)
        assert state["status"] == "completed", state
        assert await _count(db["crm"], "SELECT count(*) FROM contacts WHERE email = 'ada@example.com' AND marketing_opt_in") == 0
        assert await _count(db["crm"], "SELECT count(*) FROM contacts WHERE email <> 'ada@example.com' AND marketing_opt_in") > 0
        email_task = next(r for r in state["results"] if r["system"] == "email_marketing")
        assert email_task["status"] == "done", email_task
        check = await http.post("/v1/suppressions/check", headers=await staff_headers(pool, "agent"),
                                json={"emails": ["ADA@example.com", "grace@example.com", "ada+news@example.com"]})
        # The mailbox objected, however an importer spells it (dsrflow/domain/mailboxes.py).
        assert check.json() == {"suppressed": ["ADA@example.com", "ada+news@example.com"]}


async def test_legitimate_interest_objection_waits_for_compliance(stack, pool, dev_server, mail_sink):
    db = stack.databases
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open(http, pool, {"type": "objection", "objection_scope": "legitimate_interest",
                                       "subject": {"email": "ada@example.com"}})
        handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
        for _ in range(100):
            if (await handle.query(DataSubjectRequestWorkflow.state)).awaiting_decision:
                break
            await asyncio.sleep(0.1)
        assert (await handle.query(DataSubjectRequestWorkflow.state)).awaiting_decision
        restricted = "SELECT count(*) FROM page_events e JOIN users u USING (user_id) WHERE u.email = 'ada@example.com' AND e.restricted"
        assert await _count(db["analytics"], restricted) == 0
        compliance = await staff_headers(pool, "compliance")

        async def in_queue() -> dict:
            listed = await http.get("/v1/requests", params={"q": rid}, headers=compliance)
            return listed.json()["items"][0]

        for _ in range(100):  # the staff alert goes out just after the workflow starts waiting
            if (await in_queue())["needs_attention"]:
                break
            await asyncio.sleep(0.1)
        assert (await in_queue())["needs_attention"] is True
        agent = await http.post(f"/v1/requests/{rid}/decide-objection", headers=await staff_headers(pool, "agent"),
                                json={"compelling_grounds": False, "explanation": "No overriding interest in analytics."})
        assert agent.status_code == 403
        r = await http.post(f"/v1/requests/{rid}/decide-objection", headers=await staff_headers(pool, "compliance"),
                            json={"compelling_grounds": False, "explanation": "No overriding interest in analytics."})
        assert r.status_code == 200, r.text
        assert (await _result(dev_server.client, rid))["status"] == "completed"
        assert (await in_queue())["needs_attention"] is False
        assert await _count(db["analytics"], restricted) > 0
        letter = text_of(await wait_for_letter(mail_sink, rid, "response"))
        assert "stopped that processing" in letter
        assert "Your right to complain" not in letter  # the objection was upheld: nothing refused

        # Overridden on compelling grounds, the objection is refused in part: the remedies follow.
        again = await _open(http, pool, {"type": "objection", "objection_scope": "legitimate_interest",
                                         "subject": {"email": "ada@example.com"}})
        handle = dev_server.client.get_workflow_handle(workflow_id_for(again))
        for _ in range(100):
            if (await handle.query(DataSubjectRequestWorkflow.state)).awaiting_decision:
                break
            await asyncio.sleep(0.1)
        r = await http.post(f"/v1/requests/{again}/decide-objection", headers=compliance, json={
            "compelling_grounds": True, "explanation": "Fraud monitoring of this account is required by our acquirer."})
        assert r.status_code == 200, r.text
        assert (await _result(dev_server.client, again))["status"] == "completed"
        letter = text_of(await wait_for_letter(mail_sink, again, "response"))
        assert "compelling legitimate grounds" in letter and "Fraud monitoring" in letter
        assert "found no personal data" not in letter  # no task ran: processing continues
        assert "Your right to complain to the supervisory authority" in letter and "Gegevensbeschermingsautoriteit" in letter


async def test_two_concurrent_retries_of_a_task_run_it_once(stack, pool, dev_server):
    """Two officers retry the same task at once: one retry runs (attempt 2), the other is refused."""
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open(http, pool, {"type": "rectification", "subject": {"email": "ada@example.com"},
                                       "corrections": {"name": "Ada King"}})
        handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))

        async def email_task() -> object:
            state = await handle.query(DataSubjectRequestWorkflow.state)
            return next((r for r in state.results if r.system == "email_marketing"), None)

        for _ in range(100):
            task = await email_task()
            if task is not None and task.status == "needs_attention":
                break
            await asyncio.sleep(0.2)
        compliance = await staff_headers(pool, "compliance")
        answers = await asyncio.gather(*(http.post(f"/v1/requests/{rid}/retry-task", headers=compliance,
                                                   json={"system": "email_marketing"}) for _ in range(2)))
        codes = sorted(a.status_code for a in answers)
        # Normally the second arrives while the first runs and is refused; on a loaded machine it
        # may arrive after the first retry already needs attention again, and is then a retry of
        # its own (attempt 3). Either way no attempt runs twice.
        assert codes in ([200, 409], [200, 200]), [a.text for a in answers]
        ran = codes.count(200)
        assert (await email_task()).attempt == 1 + ran
        retried = await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                                      "AND event_type = 'task.retried'", rid)
        assert retried == ran


async def test_a_staff_retry_of_a_job_the_processor_cancelled_asks_it_anew(postgres, settings, pool, dev_server,
                                                                          tmp_path):
    """The e-mail marketing processor cancels the erasure job; staff run the task again. The retry
    is a new job with an id of its own: asked with the first id, the processor answered with the
    cancelled job, and the task needed attention again, with "resolve" (no erasure) as the only
    way out."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, email_delay=600) as stack, \
            build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open(http, pool, {"type": "erasure", "subject": {"email": "ada@example.com"}})

        async def until(status: str, attempt: int) -> asyncpg.Record:
            for _ in range(150):
                task = await pool.fetchrow("SELECT status, attempt, external_id FROM system_tasks "
                                           "WHERE request_id = $1 AND system = 'email_marketing'", uuid.UUID(rid))
                if task is not None and (task["status"], task["attempt"]) == (status, attempt) and task["external_id"]:
                    return task
                await asyncio.sleep(0.2)
            raise AssertionError(f"email_marketing never {status} at attempt {attempt}")

        first = await until("pending", 1)
        # The task's job id is on record before the processor is asked (a retry then asks with the
        # same id): until its request arrives, the processor knows no such job (404).
        async with httpx.AsyncClient() as processor:
            for _ in range(100):
                cancelled = await processor.delete(f"{stack.email_url}/requests/{first['external_id']}")
                if cancelled.status_code != 404:
                    break
                await asyncio.sleep(0.1)
            assert cancelled.status_code == 202, cancelled.text
        await until("needs_attention", 1)

        r = await staff_retry(http, rid, "email_marketing", await staff_headers(pool, "compliance"))
        assert r.status_code == 200, r.text
        second = await until("pending", 2)
        assert second["external_id"] != first["external_id"]
        # The new job, whatever the processor has made of it meanwhile (a loaded machine gives it
        # time to move past pending); the first stays cancelled. Its id is on record before the
        # processor is asked, so the job may arrive a moment after.
        async def the_new_job_alone_is_live() -> bool:
            live = await _count(stack.databases["email_marketing"],
                                "SELECT array_agg(subject_request_id::text) FROM dsr_requests "
                                "WHERE subject_request_type = 'erasure' AND request_status <> 'cancelled'")
            assert live is None or live == [str(second["external_id"])], live
            return live is not None

        await eventually(the_new_job_alone_is_live, timeout=30)
