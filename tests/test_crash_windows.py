"""Crash windows, each opened by killing a real worker process at the line it follows (a failpoint,
dsrflow/infra/failpoints.py) or by stopping a real PostgreSQL at that moment: exactly once in effect,
nothing lost."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from devstack.processes import free_port
from devstack.smtp_sink import read_mailbox
from dsrflow.crypto.keys import load_secret_key
from dsrflow.infra.db import create_pool
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.workflow import StartRequest, workflow_id_for
from tests.conftest import make_database, running_postgres
from tests.fanout_stack import api, fanout_stack
from tests.process_support import answering, died, dsrflow_process, worker_to_kill
from tests.support import (
    api_client,
    attested_request,
    comparable_letter,
    letters_for,
    staff_headers,
    task_result,
    unique_email,
    verification_code,
    wait_for_letter,
)
from tests.untrusted_support import CALLBACK, PROCESSOR, callback_killed_before_telling
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow


def _comparable(results: list[dict]) -> dict[str, tuple]:
    return {r["system"]: (r["status"], r["found"], r["changed"], r["kept"], sorted(r["datasets"]), r["kept_records"])
            for r in results}


@pytest.fixture(scope="module")
async def clean_erasure(postgres, settings, dev_server, pool, tmp_path_factory) -> tuple[str, dict]:
    """Ada's erasure on demo systems of its own with nothing killed: (its request id, its final
    state), what each crash run below must match. Its ledger and letter stay in the session's
    database and mailbox."""
    client = dev_server.client
    async with fanout_stack(postgres, settings, client, tmp_path_factory.mktemp("clean")) as clean, \
            api(clean) as http:
        async with build_worker(client, clean.settings, pool):
            clean_id = await attested_request(http, pool, "erasure")
            return clean_id, await client.get_workflow_handle(workflow_id_for(clean_id)).result()


@pytest.mark.parametrize("failpoint", [
    pytest.param("task-effect-committed", id="after-the-system-committed"),
    pytest.param("erasure-evidence-kept", id="evidence-kept-before-the-system-committed"),
    # The processor's signed callback settled its task: the result is stored by a local step.
    pytest.param("task-result-recorded", id="after-a-signed-callback's-result-was-stored"),
])
async def test_a_task_result_survives_a_worker_killed_after_the_erasure_committed(
        postgres, settings, dev_server, pool, mail_sink, tmp_path, clean_erasure, failpoint):
    """The worker dies right after a system's erasure committed, before the step reported back;
    after the erasure's evidence was kept but before the system committed; or after the result a
    processor's signed callback gave was stored, before the workflow heard of it. The retry reports
    the effect that happened: every system's result, its audit events, the erasure ledger (each
    record once), the response letter and its Art. 19 recipients are those of a clean run (not
    "not found, 0 records")."""
    client = dev_server.client
    clean_id, clean_state = clean_erasure
    (tmp_path / "crash").mkdir()
    async with fanout_stack(postgres, settings, client, tmp_path / "crash") as crash, api(crash) as http:
        async with worker_to_kill(crash.settings, client, tmp_path, failpoints=failpoint) as worker:
            crash_id = await attested_request(http, pool, "erasure")
            await died(worker, tmp_path)
        async with build_worker(client, crash.settings, pool):
            crash_state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(crash_id)).result(), 120)

    assert crash_state["status"] == clean_state["status"] == "completed"
    assert _comparable(crash_state["results"]) == _comparable(clean_state["results"])
    ledger = "SELECT system, dataset, action, count(*) FROM erasure_ledger WHERE request_id = $1 GROUP BY 1, 2, 3"
    assert sorted(map(tuple, await pool.fetch(ledger, uuid.UUID(crash_id)))) == \
        sorted(map(tuple, await pool.fetch(ledger, uuid.UUID(clean_id))))
    assert any(r["changed"] for r in crash_state["results"])
    tasks = ("SELECT event_type, data->>'system', count(*) FROM audit_events "
             "WHERE request_id = $1 AND event_type LIKE 'task.%' GROUP BY 1, 2")
    assert sorted(map(tuple, await pool.fetch(tasks, uuid.UUID(crash_id)))) == \
        sorted(map(tuple, await pool.fetch(tasks, uuid.UUID(clean_id))))

    assert comparable_letter(mail_sink, crash_id) == comparable_letter(mail_sink, clean_id)
    assert "Art. 19" in comparable_letter(mail_sink, crash_id)


class _GatedWriter:
    """An SMTP sink that, once armed, keeps the message it accepted (as a mailbox would) but holds
    back its "250 accepted" answer until released: the sender waits inside the SMTP transaction."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.armed = True
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml").write_bytes(envelope.original_content)
        if self.armed:
            self.armed = False
            self.arrived.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return "250 Message accepted for delivery"


@pytest.fixture
def gated_sink(tmp_path: Path) -> Iterator[tuple[_GatedWriter, int]]:
    handler = _GatedWriter(tmp_path / "mail")
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    handler.release.set()
    controller.stop()


async def test_a_letter_accepted_while_the_database_restarts_goes_out_once(
        settings, dev_server, task_queue, gated_sink, tmp_path):
    """PostgreSQL stops while the relay holds the acknowledgement's "accepted" answer: the letter
    was sent, and recording that waits for the database instead of failing the step, whose retry
    would send it again. One acknowledgement, recorded once, and the request completes."""
    sink, smtp_port = gated_sink
    (tmp_path / "pg").mkdir()
    async with running_postgres(tmp_path / "pg") as server:
        url = await make_database(server, "crash")
        own = settings.model_copy(update={"database_url": url, "smtp_port": smtp_port})
        loaded = load_policy(own.policy_path)
        pool = await create_pool(url, min_size=1, max_size=10)
        try:
            row, _ = await create_request(pool, NewRequest(type="erasure", subject={"email": "ada@example.com"},
                                                           identity_attested=True),
                                          loaded_policy=loaded, secret=load_secret_key(own), actor="test", idempotency_key=None)
            rid = str(row["id"])
            async with build_worker(dev_server.client, own, pool, task_queue=task_queue):
                handle = await dev_server.client.start_workflow(
                    DataSubjectRequestWorkflow.run, StartRequest(request_id=rid, policy_version=loaded.version),
                    id=workflow_id_for(rid), task_queue=task_queue)
                assert await asyncio.to_thread(sink.arrived.wait, 30)
                server.stop()
                sink.release.set()  # "accepted": the worker now finds the database gone
                await asyncio.sleep(3)
                server.start(tmp_path / "pg" / "postgres-again.log")
                await server.wait_ready()
                state = await asyncio.wait_for(handle.result(), 120)
            assert state.status.value == "completed"
            letters = await pool.fetch("SELECT purpose FROM sent_letters WHERE request_id = $1", uuid.UUID(rid))
            events = [r["event_type"] for r in await pool.fetch(
                "SELECT event_type FROM audit_events WHERE request_id = $1", uuid.UUID(rid))]
        finally:
            await pool.close()
    mailbox = [m for m in read_mailbox(sink.directory) if m["X-DSR-Request-Id"] == rid]
    assert sorted(m["X-DSR-Purpose"] for m in mailbox) == ["acknowledgement", "response"]
    assert sorted(r["purpose"] for r in letters) == ["acknowledgement", "response"]
    assert "mail.resent" not in events and events.count("letter.sent") == 2


@pytest.mark.parametrize(("failpoint", "event"), [
    pytest.param("mail-claimed", "mail.resent", id="before-the-relay-had-it"),
    pytest.param("mail-handed", "mail.unconfirmed", id="as-the-relay-got-it-before-its-answer"),
    pytest.param("mail-accepted", "mail.unconfirmed", id="after-the-relay-accepted-it"),
])
async def test_a_worker_killed_around_the_smtp_transaction_sends_the_letter_once(
        settings, dev_server, pool, mail_sink, tmp_path, failpoint, event):
    """The worker dies with the acknowledgement claimed but not yet handed to the relay, handed over
    (`data_sent` recorded) before the relay's answer, or accepted but not yet recorded as sent.
    Each way the subject gets it once: the retry sends
    what the relay never had, and records as sent what it had (activities/outbox.py), saying which
    in the audit trail; nothing else of the request repeats."""
    client = dev_server.client
    task_queue = f"crash-{uuid.uuid4().hex[:6]}"
    own = settings.model_copy(update={"task_queue": task_queue})
    async with worker_to_kill(own, client, tmp_path, failpoints=failpoint) as worker:
        async with api_client(own, client, task_queue) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "erasure", "subject": {"email": "ada@example.com"}, "identity_attested": True})
            rid = r.json()["id"]
        await died(worker, tmp_path)
    async with build_worker(client, own, pool, task_queue=task_queue):
        await wait_for_letter(mail_sink, rid, "response")
        await client.get_workflow_handle(workflow_id_for(rid)).result()
    assert len(letters_for(mail_sink, rid, "acknowledgement")) == 1
    assert len(letters_for(mail_sink, rid, "response")) == 1
    assert await pool.fetchval("SELECT count(*) FROM sent_letters WHERE request_id = $1", uuid.UUID(rid)) == 2
    told = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1 "
                            "AND event_type LIKE 'mail.%'", uuid.UUID(rid))
    assert [r["event_type"] for r in told] == [event]
    assert told[0]["data"]["message_id"] == letters_for(mail_sink, rid, "acknowledgement")[0]["Message-ID"]


async def test_a_callback_recorded_by_an_api_killed_before_telling_its_task_is_told_on_the_retry(
        postgres, settings, dev_server, mail_sink, lifecycle_policy, task_queue, tmp_path):
    """The API dies right after it recorded a processor's signed "completed" callback (seen and
    audited in one statement), before signalling the task. The processor, left without an answer,
    sends the same body to the restarted API: refused as already received (409), it still tells the
    task, which settles with the callback's count. This processor expects to finish in 2099, so
    without that the task would wait five minutes for its first poll. On a database of its own:
    tests/test_untrusted_processors.py counts this processor's events in the session's."""
    client = dev_server.client
    async with callback_killed_before_telling(postgres, settings, client, lifecycle_policy, task_queue, tmp_path,
                                              "callback") as killed:
        http, pool = killed.http, killed.pool
        async with dsrflow_process("api", killed.settings, client, tmp_path, failpoints="callback-recorded") as again:
            await answering(http, again, tmp_path)
            retried = await http.post(CALLBACK, content=killed.body, headers=killed.headers)
            state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(killed.request_id)).result(), 60)
        told = await pool.fetch("SELECT data FROM audit_events WHERE event_type = 'processor.callback'")
    assert retried.status_code == 409, retried.text
    assert state["status"] == "completed"
    (result,) = state["results"]
    assert (result["system"], result["status"], result["found"], result["changed"]) == (PROCESSOR, "done", 3, 3)
    assert [r["data"]["status"] for r in told] == ["completed"]




@contextlib.asynccontextmanager
async def _unverified_erasure(settings, client, pool, tmp_path, failpoint: str) -> AsyncIterator[tuple]:
    """A worker process that dies at `failpoint`, an API on its own task queue, and an unverified
    erasure opened there (it stays open, waiting for its code): (worker, http, request id, settings)."""
    own = settings.model_copy(update={"task_queue": f"crash-{uuid.uuid4().hex[:6]}"})
    async with (worker_to_kill(own, client, tmp_path, failpoints=failpoint) as worker,
                api_client(own, client, own.task_queue) as http):
        r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "type": "erasure", "subject": {"email": "ada@example.com"}})
        assert r.status_code == 201, r.text
        yield worker, http, r.json()["id"], own


async def test_a_worker_killed_as_a_denials_letter_is_accepted_sends_it_once(
        settings, dev_server, pool, mail_sink, tmp_path):
    """A denial's letter is a step the denial owes, run beside the request's main line
    (workflows/owed_steps.py). The worker dies the moment the relay accepted it, before it was
    recorded: the denial stands, the next worker records the letter without a second copy, and
    the compliance officer's call, waiting meanwhile, gets its answer."""
    client = dev_server.client
    async with _unverified_erasure(settings, client, pool, tmp_path, "mail-accepted~:denial:") as (worker, http, rid, own):
        await wait_for_letter(mail_sink, rid, "acknowledgement")
        denying = asyncio.ensure_future(http.post(
            f"/v1/requests/{rid}/deny", headers=await staff_headers(pool, "compliance"),
            json={"reason_code": "manifestly_unfounded", "explanation": "The same request was answered last week"}))
        await died(worker, tmp_path)
        async with build_worker(client, own, pool, task_queue=own.task_queue):
            denied = await denying
            await client.get_workflow_handle(workflow_id_for(rid)).result()
    assert denied.status_code == 200, denied.text
    # No step left waiting for staff (absent too if the query missed the API's patience).
    assert denied.json()["status"] == "denied" and denied.json().get("trouble") is None
    assert len(letters_for(mail_sink, rid, "denial")) == 1
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 ORDER BY seq", uuid.UUID(rid))]
    assert events.count("mail.unconfirmed") == 1 and "mail.resent" not in events
    assert events.count("status.denied") == 1


async def test_a_worker_killed_as_a_verification_is_recorded_records_it_once_and_goes_on(
        settings, dev_server, pool, mail_sink, tmp_path):
    """A verification's success is a step the subject's attempt owes (workflows/verification.py):
    the subject is answered at once, and the request goes on only once the success is on record.
    The worker dies right after the event is appended, before its workflow heard of it: the next
    worker records it once (the same key), and only then does the request go on."""
    client = dev_server.client
    async with _unverified_erasure(settings, client, pool, tmp_path, "event-recorded~verified:") as (worker, http, rid, own):
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        verified = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
        await died(worker, tmp_path)
        assert await _events(pool, rid, "status.in_progress") == 0  # not before the record
        async with build_worker(client, own, pool, task_queue=own.task_queue):
            for _ in range(600):
                if await _events(pool, rid, "status.in_progress"):
                    break
                await asyncio.sleep(0.1)
    assert verified.status_code == 200, verified.text
    assert await _events(pool, rid, "verification.succeeded") == 1
    assert await _events(pool, rid, "status.in_progress") == 1
    order = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 AND event_type = ANY($2) ORDER BY seq",
        uuid.UUID(rid), ["verification.succeeded", "status.in_progress"])]
    assert order == ["verification.succeeded", "status.in_progress"]


async def _events(pool, rid: str, event_type: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = $2",
                               uuid.UUID(rid), event_type)


@pytest.mark.parametrize("answer", ["retry-task", "resolve-task"])
async def test_a_worker_killed_as_a_task_answer_is_recorded_records_it_once_and_counts_it(
        postgres, settings, dev_server, pool, tmp_path, answer):
    """Staff's retry or resolution of a task stands at once and owes its record
    (workflows/task_fanout.py). The worker dies right after the record is appended, before its
    workflow heard of it: the next worker records it once (the same key), and only then does the
    retry run, once, or the resolution let the request complete. The OpenDSR demo processor
    cannot restrict, so the restriction's task needs attention and gets the answer."""
    client = dev_server.client
    key = "retry:email_marketing:" if answer == "retry-task" else "resolved:email_marketing:"
    (tmp_path / "stack").mkdir()
    async with fanout_stack(postgres, settings, client, tmp_path / "stack") as stack, api(stack) as http:
        async with worker_to_kill(stack.settings, client, tmp_path, failpoints=f"event-recorded~{key}") as worker:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "restriction", "identity_attested": True, "restriction_grounds": ["needed_for_legal_claims"],
                "subject": {"email": unique_email("killed-answer")}})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await task_result(http, pool, rid, "email_marketing", lambda t: t["status"] == "needs_attention")
            body = {"system": "email_marketing"} | ({"note": "Restricted by hand, ticket 12"}
                                                   if answer == "resolve-task" else {})
            answering = asyncio.ensure_future(http.post(
                f"/v1/requests/{rid}/{answer}", headers=await staff_headers(pool, "compliance"), json=body))
            await died(worker, tmp_path)
        async with build_worker(client, stack.settings, pool):
            answered = await answering
            if answer == "retry-task":  # ran again, once: the demo still cannot restrict
                task = await task_result(http, pool, rid, "email_marketing",
                                      lambda t: t["attempt"] == 2 and t["status"] == "needs_attention")
            else:
                await task_result(http, pool, rid, "email_marketing", lambda t: t["status"] == "done")
                for _ in range(600):
                    if (await pool.fetchval("SELECT status FROM dsr_requests WHERE id = $1", uuid.UUID(rid))) == "completed":
                        break
                    await asyncio.sleep(0.1)
        events = await pool.fetch("SELECT event_type, event_key FROM audit_events WHERE request_id = $1 ORDER BY seq",
                                  uuid.UUID(rid))

    assert answered.status_code == 200, answered.text
    # Once, under its key (the next worker's append found it there).
    attempt = 2 if answer == "retry-task" else 1
    assert [e["event_key"] for e in events if e["event_key"].startswith(f"{rid}:{key}")] == [f"{rid}:{key}{attempt}"]
    if answer == "retry-task":
        assert task["attempt"] == 2
        # The new attempt ran once, and only after the retry was on record.
        keys = [e["event_key"].removeprefix(f"{rid}:") for e in events]
        ran = [k for k in keys if k.startswith("task:email_marketing:")]
        assert ran == ["task:email_marketing:restrict:1:needs_attention", "task:email_marketing:restrict:2:needs_attention"]
        assert keys.index(f"{key}2") < keys.index(ran[1])
    else:
        assert await pool.fetchval("SELECT status FROM dsr_requests WHERE id = $1", uuid.UUID(rid)) == "completed"
