"""A SaaS task's end, with the worker process killed at the line (a failpoint,
dsrflow/infra/failpoints.py) on either side of it: after its run's last journal write and before
its own result is stored, and after staff's resolution is stored while its attempt is still at
work at Mailchimp. What staff and the subject see: the task ends once, with the result that ended
it first; no journal row (the subject's memberships as Mailchimp listed them, sealed) outlives it;
the audit trail records one outcome; one response letter. (The race of the same windows staged in
one process: tests/test_saas_run_journal.py, tests/test_saas_erasure_complete.py.)

The stack: tests/saas_runs_fixtures.py's (the Mailchimp stand-in behind its rate limit)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import Request, Response

from devstack.saas.mailchimp import subscriber_hash
from schemas.workflow import task_workflow_id, workflow_id_for
from tests.fanout_stack import api
from tests.process_support import died, dsrflow_process
from tests.saas_runs_fixtures import newsletter_service_fixture, saas_stack_fixture  # noqa: F401 (the fixtures)
from tests.saas_runs_support import HeldAnswer, answered, member_of_lists
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



async def test_a_tasks_end_with_its_worker_killed_on_either_side_is_on_record_once(
        newsletter_service, stack, pool, dev_server, mail_sink, tmp_path):
    """Two subjects' erasures, a worker process killed in each window (one after the other, so
    that their recoveries, a heartbeat's and a step's timeout, overlap).

    Resolved: 10 memberships; Mailchimp holds its answer to the first delete. An operator ends the
    task's workflow (its attempt, not told, runs on in the worker) and compliance resolves the task:
    the worker stores the resolution and dies, the attempt with it, before the workflow hears it
    was stored. The next worker records it again (the step's retry): compliance's answer is taken
    (200), the task ends with the resolution, no journal row, no delete after it.

    Finished: 5 memberships; the run deletes them all, journals the last answer, and its worker
    dies before the attempt's result is stored. The next worker's try goes on from the journal,
    sends nothing again, and stores the result: done, 5 found and 5 deleted, the journal gone.

    Each: one outcome in the audit trail, one response letter."""
    app, client, note = newsletter_service, dev_server.client, "Deleted at Mailchimp by hand, ticket 61"
    resolved_email, finished_email = unique_email("killed-after-resolution"), unique_email("killed-before-result")
    member_of_lists(app, resolved_email, 10)
    member_of_lists(app, finished_email, 5)
    gate, held = asyncio.Event(), []

    def hold(request: Request, document: Any) -> Response:
        if subscriber_hash(resolved_email) not in request.url.path:
            return answered(document)
        held.append(request.url.path)
        return HeldAnswer(gate, answered(document))

    app.state.standin.tamper("/actions/delete-permanent", hold, method="POST")
    try:
        async with api(stack) as http:
            async with dsrflow_process("worker", stack.settings, client, tmp_path,
                                       failpoints="task-result-stored~newsletter:done:workflow") as worker:
                resolved = await attested_request(http, pool, "erasure", resolved_email)

                async def a_delete_held() -> bool:
                    return bool(held)

                await eventually(a_delete_held, 30)
                await client.get_workflow_handle(task_workflow_id(resolved, "newsletter", "erase", 1)).terminate(
                    "an operator ends the task's workflow")
                await task_result(http, pool, resolved, "newsletter", lambda r: r["status"] == "needs_attention")
                resolving = asyncio.create_task(staff_task_answer(
                    http, resolved, "resolve-task", {"system": "newsletter", "note": note},
                    await staff_headers(pool, "compliance")))
                await died(worker, tmp_path)
            after_resolution = await _seen(pool, resolved)
            gate.set()  # the dead attempt's connection: its answer goes nowhere
            async with dsrflow_process("worker", stack.settings, client, tmp_path,
                                       failpoints="task-effect-committed~newsletter:erase") as worker:
                finished = await attested_request(http, pool, "erasure", finished_email)
                await died(worker, tmp_path)
            before_result = await _seen(pool, finished)
            async with build_worker(client, stack.settings, pool):
                answer = await resolving
                states = [await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 120)
                          for rid in (resolved, finished)]
    finally:
        app.state.standin.tampers.clear()
        gate.set()

    # Resolved while its attempt ran.
    assert after_resolution["journal"] == 0 and after_resolution["task"]["status"] == "done", after_resolution
    assert answer.status_code == 200, answer.text
    seen = await _seen(pool, resolved)
    (result,) = [r for r in states[0]["results"] if r["system"] == "newsletter"]
    assert (result["status"], result["message"]) == ("done", f"resolved by staff: {note}")
    task = seen["task"]
    assert (task["status"], task["attempt"], task["message"]) == ("done", 1, f"resolved by staff: {note}"), task
    assert seen["journal"] == 0
    assert len(_deletes_of(app, resolved_email)) == len(held) == 1  # the held one; none after the resolution
    assert seen["events"] == {"task.needs_attention": 1, "task.resolved": 1, "task.done": 1}, seen["events"]
    # Finished by its next try.
    assert before_result["journal"] > 0 and before_result["task"] is None, before_result  # rows, no result
    seen = await _seen(pool, finished)
    (result,) = [r for r in states[1]["results"] if r["system"] == "newsletter"]
    assert (result["status"], result["found"], result["changed"], result["attempt"]) == ("done", 5, 5, 1)
    task = seen["task"]
    assert (task["status"], task["found"], task["changed"], task["attempt"]) == ("done", 5, 5, 1), task
    assert task["datasets"] == {"members": {"found": 5, "deleted": 5}}
    assert len(_deletes_of(app, finished_email)) == 5  # each once: none again after the kill
    assert seen["journal"] == 0
    assert seen["events"] == {"task.done": 1}, seen["events"]
    for rid in (resolved, finished):
        assert len(letters_for(mail_sink, rid, "response")) == 1


def _deletes_of(app: Any, email: str) -> list[str]:
    """The paths of the delete requests the stand-in carried out for one subject."""
    return [s.path for s in app.state.standin.requests("POST", "/actions/delete-permanent")
            if subscriber_hash(email) in s.path and s.status == 204]
