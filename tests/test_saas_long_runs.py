"""A SaaS action with thousands of requests outlasts one activity attempt (10 minutes; here a slice
of a second or half of one, DSRFLOW_HTTP_RUN_SLICE_SECONDS). Each attempt keeps what it read and what each
request got back (activities/connectors/http_journal.py), stops by itself near the end of its slice,
and the next carries on: the run ends, with the counts a run in one go would give, every request sent
once (twice only for the one whose answer a dying process never heard: its 404 counts as done).
Before, every attempt started again from the first page, timed out, and the task ended needing staff.

The service: the Mailchimp stand-in (its wire format: lists, members by subscriber hash, the
delete-permanent action), a subject in thousands of lists, and Mailchimp's rate limit enforced in
front of it (429 with its problem document past it)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
from fastapi import Request, Response
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError

from activities.connectors.base import PermanentConnectorError
from devstack.saas.mailchimp import subscriber_hash
from dsrflow.infra.metrics import CONNECTOR_FAILURES
from dsrflow.infra.temporal_client import connect_client
from dsrflow.settings import Settings
from schemas.workflow import RUN_CONTINUES, task_workflow_id, workflow_id_for
from tests.fanout_stack import api
from tests.process_support import died, worker_to_kill
from tests.saas_runs_fixtures import newsletter_service_fixture, saas_stack_fixture  # noqa: F401 (the fixtures)
from tests.saas_runs_support import (
    HeldAnswer,
    answered,
    deletes,
    mailchimp,
    member_of_lists,
    newsletter,
)
from tests.saas_support import connector, http_policy, subject
from tests.support import (
    attested_request,
    eventually,
    letters_for,
    staff_headers,
    staff_task_answer,
    task_result,
    unique_email,
)
from workers.dsr_worker import build_worker
from workers.metrics_endpoint import worker_runtime


async def test_an_erasure_longer_than_an_attempt_finishes_slice_by_slice(pool, monkeypatch, tmp_path):
    """400 list memberships, slices of a second: each attempt does part, none starts again,
    and the last reports every membership found and deleted, each delete sent once. One attempt
    ends after its request went and before it heard the answer (the stand-in deletes, then answers
    400): the next sends it again, Mailchimp answers 404, and it counts once, as deleted."""
    lists = 400
    async with mailchimp(monkeypatch) as app:
        email = unique_email("long")
        member_of_lists(app, email, lists)
        lost = {"at": 250, "seen": 0}

        def lose_answer(request: Request, document: Any) -> Response:
            if document is None:
                lost["seen"] += 1
            # The 250th: carried out; the answer never heard.
            return answered(document, 400 if document is None and lost["seen"] == lost["at"] else 204)

        app.state.standin.tamper("/actions/delete-permanent", lose_answer, method="POST")
        loaded = http_policy(tmp_path, {"newsletter": newsletter()})
        settings = Settings().model_copy(update={"http_run_slice_seconds": 1.0})
        who = subject(email)
        attempts: list[int] = []  # the requests each attempt made
        outcome = None
        while outcome is None:
            # Each attempt moves the run on (checked below), so it ends within its requests' number.
            assert len(attempts) < 2 * lists, attempts
            before = len(app.state.standin.served)
            system = connector(loaded, "newsletter", pool, settings)
            try:
                outcome = await system.erase(who)
            except ApplicationError as exc:
                assert exc.type == RUN_CONTINUES, exc
            except PermanentConnectorError as exc:
                assert "HTTP 400" in str(exc), exc
            finally:
                await system.close()
                attempts.append(len(app.state.standin.served) - before)

    assert len(attempts) > 3 and all(attempts), attempts  # several attempts, each moving the run on
    assert outcome.status == "done"
    assert outcome.datasets == {"members": {"found": lists, "deleted": lists}}
    assert (outcome.found, outcome.changed) == (lists, lists)
    assert sum(len(keys) for keys in outcome.erased.values()) == lists
    assert not any(app.state.data.members.values())
    statuses = deletes(app)
    assert len(statuses) == lists + 1 and statuses.count(404) == 1
    # Read once each: no attempt went back to the first page; and once more after the deletes
    # (http_rounds.py), which found nothing left.
    assert [s.status for s in app.state.standin.requests("GET", "/members/")] == [200] * lists + [404] * lists
    # What the journal keeps of the subject is sealed: no address, no list id in the clear.
    rows = await pool.fetch("SELECT item, sealed FROM http_run_journal WHERE request_id = $1",
                            uuid.UUID(who.request_id))
    # The lists page, each member read, each delete; the read after them (the lists page, each
    # member). The task's result would take them (none here: the connector alone).
    assert len(rows) == 3 * lists + 2
    some_list = next(iter(app.state.data.lists))
    for row in rows:
        assert email.encode() not in (row["sealed"] or b"") and some_list.encode() not in (row["sealed"] or b"")
        assert email not in row["item"]


async def _activities(client: Any, workflow_id: str) -> int:
    """How many times the task's workflow started its activity."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)


async def test_a_long_erasure_survives_a_killed_worker_with_exact_evidence(
        newsletter_service, stack, pool, dev_server, tmp_path):
    """400 list memberships through the whole request: the worker process dies right after
    Mailchimp carried out a delete (before the journal heard the answer); another worker carries
    on from the journal, slice by slice. The task ends done, with every membership found and
    deleted once in its evidence, and the journal's rows gone."""
    lists = 400
    app = newsletter_service
    client = dev_server.client
    email = unique_email("killed")
    member_of_lists(app, email, lists)
    async with api(stack) as http:
        async with worker_to_kill(stack.settings, client, tmp_path,
                                   # The 5th delete of an attempt (the count is the attempt's own:
                                   # a half-second slice sends some tens, not always a hundred).
                                   failpoints="http-effect-sent~newsletter#5") as worker:
            rid = await attested_request(http, pool, "erasure", email)
            await died(worker, tmp_path, timeout=120)
        assert 5 <= len(deletes(app)) < lists
        async with build_worker(client, stack.settings, pool):
            state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 300)

    (result,) = [r for r in state["results"] if r["system"] == "newsletter"]
    assert result["status"] == "done", result
    assert result["datasets"] == {"members": {"found": lists, "deleted": lists}}
    assert (result["found"], result["changed"]) == (lists, lists)
    task = await pool.fetchrow("SELECT status, found, changed FROM system_tasks WHERE request_id = $1 "
                               "AND system = 'newsletter'", uuid.UUID(rid))
    assert tuple(task) == ("done", lists, lists)
    # The ledger names the member once: its key, Mailchimp's subscriber hash, is the same in every list.
    ledger = await pool.fetch("SELECT dataset, record_key, action FROM erasure_ledger WHERE request_id = $1 "
                              "AND system = 'newsletter'", uuid.UUID(rid))
    assert [tuple(r) for r in ledger] == [("members", subscriber_hash(email), "deleted")]
    assert not any(app.state.data.members.values())
    statuses = deletes(app)
    # The delete whose answer the killed worker never journaled went again; Mailchimp said 404.
    assert len(statuses) == lists + 1 and statuses.count(404) == 1
    # Each member read once, and once more after the deletes, which found nothing left.
    assert [s.status for s in app.state.standin.requests("GET", "/members/")] == [200] * lists + [404] * lists
    # More than one attempt (the kill's retry and the slices after it), none a failure staff see.
    assert await _activities(client, task_workflow_id(rid, "newsletter", "erase", 1)) > 3
    assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(rid)) == 0


async def _seen(pool: Any, rid: str) -> dict[str, Any]:
    """The newsletter task's record, its journal's rows, and its audit events by type, at once."""
    row = await pool.fetchrow(
        """SELECT (SELECT to_jsonb(t) - 'request_id' - 'updated_at' - 'external_id' FROM system_tasks t
                    WHERE request_id = $1 AND system = 'newsletter') AS task,
                  (SELECT count(*) FROM http_run_journal WHERE request_id = $1) AS journal,
                  (SELECT coalesce(jsonb_object_agg(event_type, n), '{}') FROM
                     (SELECT event_type, count(*) AS n FROM audit_events WHERE request_id = $1
                         AND event_type LIKE 'task.%' AND data->>'system' = 'newsletter' GROUP BY event_type) e)
                    AS events""", uuid.UUID(rid))
    return dict(row)


async def test_a_resolution_stored_as_its_worker_dies_ends_the_task_once(
        newsletter_service, stack, pool, dev_server, mail_sink, tmp_path):
    """10 memberships; Mailchimp holds its answer to the first delete. An operator ends the task's
    workflow (its attempt, not told, runs on in the worker) and compliance resolves the task: the
    worker process stores the resolution and is killed at the line (failpoint task-result-stored),
    the attempt with it, before the workflow hears it was stored. The next worker records it again
    (the step's retry): compliance's answer is taken (200), the task ends once, with the resolution:
    no journal row (the subject's memberships as Mailchimp listed them), no delete after it, one
    outcome in the audit trail, one response letter. (The window after a run's last journal write
    and before its result: the kill above, at http-effect-sent, and tests/test_task_result_races.py.)"""
    app, client, note = newsletter_service, dev_server.client, "Deleted at Mailchimp by hand, ticket 61"
    email = unique_email("killed-after-resolution")
    member_of_lists(app, email, 10)
    gate, held = asyncio.Event(), []

    def hold(request: Request, document: Any) -> Response:
        if subscriber_hash(email) not in request.url.path:
            return answered(document)
        held.append(request.url.path)
        return HeldAnswer(gate, answered(document))

    app.state.standin.tamper("/actions/delete-permanent", hold, method="POST")
    try:
        async with api(stack) as http:
            async with worker_to_kill(stack.settings, client, tmp_path,
                                      failpoints="task-result-stored~newsletter:done:workflow") as worker:
                rid = await attested_request(http, pool, "erasure", email)

                async def a_delete_held() -> bool:
                    return bool(held)

                await eventually(a_delete_held)  # a worker process starting on a loaded machine: the default minute
                await client.get_workflow_handle(task_workflow_id(rid, "newsletter", "erase", 1)).terminate(
                    "an operator ends the task's workflow")
                await task_result(http, pool, rid, "newsletter", lambda r: r["status"] == "needs_attention")
                resolving = asyncio.create_task(staff_task_answer(
                    http, rid, "resolve-task", {"system": "newsletter", "note": note},
                    await staff_headers(pool, "compliance")))
                await died(worker, tmp_path)
            after_resolution = await _seen(pool, rid)
            gate.set()  # the dead attempt's connection: its answer goes nowhere
            async with build_worker(client, stack.settings, pool):
                answer = await resolving
                state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 120)
    finally:
        app.state.standin.tampers.clear()
        gate.set()

    assert after_resolution["journal"] == 0 and after_resolution["task"]["status"] == "done", after_resolution
    assert answer.status_code == 200, answer.text
    seen = await _seen(pool, rid)
    (result,) = [r for r in state["results"] if r["system"] == "newsletter"]
    assert (result["status"], result["message"]) == ("done", f"resolved by staff: {note}")
    task = seen["task"]
    assert (task["status"], task["attempt"], task["message"]) == ("done", 1, f"resolved by staff: {note}"), task
    assert seen["journal"] == 0
    deleted = [s.path for s in app.state.standin.requests("POST", "/actions/delete-permanent")
               if subscriber_hash(email) in s.path and s.status == 204]
    assert len(deleted) == len(held) == 1  # the held one; none after the resolution
    assert seen["events"] == {"task.needs_attention": 1, "task.resolved": 1, "task.done": 1}, seen["events"]
    assert len(letters_for(mail_sink, rid, "response")) == 1


async def test_a_delete_answered_5xx_after_it_was_carried_out_counts_once(pool, monkeypatch, tmp_path):
    """Mailchimp deletes a membership and answers 500 (a gateway that lost its answer); the
    connector tries again within the attempt and hears 404. The first try was the deletion: the
    evidence says every membership found was deleted, not one fewer, as if one were still there."""
    lists = 30
    async with mailchimp(monkeypatch) as app:
        email = unique_email("lost500")
        member_of_lists(app, email, lists)
        seen = {"n": 0}

        def fail_after_deleting(request: Request, document: Any) -> Response:
            seen["n"] += 1
            return answered(document, 500 if seen["n"] == 10 else 204)

        app.state.standin.tamper("/actions/delete-permanent", fail_after_deleting, method="POST")
        config = newsletter()
        config["config"]["retry"] = {"backoff_seconds": 0}
        system = connector(http_policy(tmp_path, {"newsletter": config}), "newsletter", pool)
        try:
            outcome = await system.erase(subject(email))
        finally:
            await system.close()
    assert deletes(app).count(500) == 1 and deletes(app).count(404) == 1
    assert outcome.datasets == {"members": {"found": lists, "deleted": lists}}
    assert (outcome.found, outcome.changed) == (lists, lists)


async def _failed_attempts(sdk_url: str, activity_type: str) -> float:
    """temporal_activity_execution_failed for one activity type, as the worker's runtime
    publishes it to Prometheus (DsrActivityFailureRate's numerator)."""
    async with httpx.AsyncClient() as http:
        page = (await http.get(sdk_url)).text
    return sum(sample.value for family in text_string_to_metric_families(page)
               if family.name.startswith("temporal_activity_execution_failed")
               for sample in family.samples if sample.labels.get("activity_type") == activity_type)


def _connector_failures(system: str) -> float:
    """dsrflow_connector_failures_total for one system, as this process (its worker) counts it."""
    return sum(sample.value for family in CONNECTOR_FAILURES.collect() for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("system") == system)


async def test_a_run_in_progress_is_no_failure_and_counts_what_it_did(
        newsletter_service, stack, pool, dev_server, caplog):
    """100 list memberships through the whole request, in slices: each slice's end is no failed
    attempt in the worker's metrics (DsrActivityFailureRate would page for a run that is only
    long) nor a warning in its log. While the deletes run, someone else removes one membership:
    its delete hears 404, and the evidence says 99 deleted of 100 found, as a run in one go
    would; before, each slice's plan (every membership deleted) won over the run's counts."""
    lists = 100
    app = newsletter_service
    email = unique_email("inprogress")
    data = app.state.data
    mine = [data.add_list(f"Mine {n}") for n in range(lists)]
    for list_id in mine:
        data.add_member(list_id, email, FNAME="Ada")

    def removed_by_someone_else(request: Request, document: Any) -> Response:
        data.members[mine[-1]].pop(subscriber_hash(email), None)
        return answered(document)

    runtime, sdk_url = worker_runtime(stack.settings)
    assert runtime is not None and sdk_url is not None
    client = await connect_client(stack.settings, address=dev_server.client.service_client.config.target_host,
                                  runtime=runtime)
    app.state.standin.tamper("/actions/delete-permanent", removed_by_someone_else, method="POST")
    failures_before = _connector_failures("newsletter")
    try:
        async with api(stack) as http, build_worker(client, stack.settings, pool):
            rid = await attested_request(http, pool, "erasure", email)
            state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 300)
            failed = await _failed_attempts(sdk_url, "run_system_action")
    finally:
        app.state.standin.tampers.clear()

    (result,) = [r for r in state["results"] if r["system"] == "newsletter"]
    assert result["status"] == "done", result
    assert result["datasets"] == {"members": {"found": lists, "deleted": lists - 1}}
    assert (result["found"], result["changed"]) == (lists, lists - 1)
    assert await _activities(client, task_workflow_id(rid, "newsletter", "erase", 1)) > 2  # it took slices
    assert failed == 0
    assert _connector_failures("newsletter") == failures_before  # dsrflow_connector_failures_total: none either
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "activity as failed" in r.getMessage()]
