"""A SaaS erasure's try under way when its request is withdrawn, and the worker killed (SIGKILL, a
real process) right after the close committed, before the try heard of it: another worker takes
over. What is on record must be what the service did, once: each record erased at most once, none
after the withdrawal, the count kept on the task the service's own count of deletions, one
withdrawal letter naming it, one task.partial_effect in the trail.

One stack for the module (the Mailchimp stand-in behind its rate limit, tests/saas_runs_fixtures.py,
on the session's Temporal dev server); the worker that dies is a process of its own
(tests/process_support.py), the one after it in-process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import Request, Response
from temporalio.exceptions import ApplicationError

from devstack.saas.mailchimp import subscriber_hash
from dsrflow.stores.requests_store import set_status
from schemas.requests import RequestStatus
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api
from tests.letters_as_sent import as_sent
from tests.process_support import died, dsrflow_process, released
from tests.saas_runs_fixtures import newsletter_service_fixture, saas_stack_fixture  # noqa: F401 (the fixtures)
from tests.saas_runs_support import HeldAnswer, answered, mailchimp, member_of_lists, newsletter
from tests.saas_support import connector, http_policy, subject
from tests.support import attested_request, eventually, letters_for, staff_headers, stored_request, unique_email
from workers.dsr_worker import build_worker

# The second delete was on the wire as the worker died: its answer is known nowhere, so "at least".
STOPPED = "Our automated work in our system “Newsletter” stopped before it was finished; by then it had made at least 1 change"


def _list_of(path: str) -> str:
    return path.split("/lists/")[1].split("/")[0]


def _deletions(app: Any, email: str) -> list[str]:
    """The lists whose membership of `email` the stand-in deleted (answered 204), in order."""
    return [_list_of(s.path) for s in app.state.standin.requests("POST", "/actions/delete-permanent")
            if subscriber_hash(email) in s.path and s.status == 204]


async def test_a_withdrawal_committed_as_the_worker_dies_mid_run_stops_the_run_and_counts_it_once(
        newsletter_service, stack, pool, dev_server, mail_sink, tmp_path):
    """3 memberships. The first is deleted; the second delete reaches the service, which holds it
    (not carried out: a request still on the wire). The subject withdraws; the worker process dies
    right after the close committed (failpoint status-recorded), its try still waiting. The next
    worker's retry of that try sends no delete (the request was withdrawn while it ran); the record,
    the letter and the trail say at least 1 change (the service did not carry out the second, but
    nothing here can know it: it says "at least", and the trail the change on the wire; before, the
    letter said 1 change as exact, which the service could have made two). Before, the retry began on a closed
    request, took itself for a hold's deferred erasure and deleted the other two memberships after
    the withdrawal."""
    app, client = newsletter_service, dev_server.client
    email = unique_email("withdrawn-killed")
    before = set(app.state.data.lists)
    member_of_lists(app, email, 3)
    mine = [list_id for list_id in app.state.data.lists if list_id not in before]
    kept = {list_id: dict(app.state.data.members[list_id][subscriber_hash(email)]) for list_id in mine}
    gate = asyncio.Event()

    def second_held(request: Request, document: Any) -> Response:
        if subscriber_hash(email) not in request.url.path or not _deletions(app, email):
            return answered(document)
        # Not carried out (the stand-in deleted it: put back), its answer never to come.
        list_id = _list_of(request.url.path)
        app.state.data.members[list_id][subscriber_hash(email)] = kept[list_id]
        return HeldAnswer(gate, Response(status_code=503))

    app.state.standin.tamper("/actions/delete-permanent", second_held, method="POST")
    try:
        async with api(stack) as http:
            # A worker without schedules or a sticky queue (tests/worker_process.py): its workflows'
            # next tasks go to the next worker at once after the kill.
            async with dsrflow_process("worker", stack.settings, client, tmp_path, failpoints="status-recorded~:cancelled",
                                       module="tests.worker_process", held=True) as worker:
                released(worker)
                rid = await attested_request(http, pool, "erasure", email)

                async def second_on_the_wire() -> bool:
                    return len(app.state.standin.requests("POST", subscriber_hash(email) + "/actions/")) == 2

                await eventually(second_on_the_wire)
                withdrawing = asyncio.create_task(http.post(
                    f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "agent"),
                    json={"reason": "Withdrawn by phone", "withdrawn_by_subject": True}))
                await died(worker, tmp_path)
            app.state.standin.tampers.clear()
            gate.set()  # the dead try's connection: its answer goes nowhere
            async with build_worker(client, stack.settings, pool):
                withdrawn = await withdrawing
                state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 120)
    finally:
        app.state.standin.tampers.clear()
        gate.set()

    assert withdrawn.status_code == 200, withdrawn.text
    assert state["status"] == "cancelled", state
    deleted = _deletions(app, email)
    assert deleted == mine[:1], (deleted, mine)  # none after the withdrawal
    assert [list_id for list_id in mine if subscriber_hash(email) in app.state.data.members[list_id]] == mine[1:]
    task = await pool.fetchrow("SELECT status, changed, partial_changed FROM system_tasks WHERE request_id = $1 "
                               "AND system = 'newsletter'", uuid.UUID(rid))
    assert (task["status"], task["partial_changed"]) == ("needs_attention", len(deleted)), dict(task)
    events = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND event_type = "
                              "'task.partial_effect'", uuid.UUID(rid))
    assert [(e["data"]["counted"], e["data"].get("unsure")) for e in events] == [(1, 1)], events
    (letter,) = letters_for(mail_sink, rid, "cancellation")
    body = letter.get_body(("plain",)).get_content()
    assert STOPPED in body, body


async def _withdrawn_while_a_delete_is_held(pool, settings, monkeypatch, tmp_path, name: str, held: int,
                                            meanwhile: Callable[[str], Awaitable[object]], dies: bool = False,
                                            **setting: Any) -> tuple[Any, str, str, ApplicationError | None, object]:
    """5 memberships erased; the delete after the first `held` is held on the wire while the request
    is withdrawn, then `meanwhile(request id)` runs, then the delete is answered (carried out). The
    try must stop: its error, with the stand-in, the address, the request and what `meanwhile` gave.
    `dies`: the try dies first, as with its worker, and hears no answer (no error then)."""
    email = unique_email(name)
    rid = await stored_request(pool, settings, name, "erasure", email=email)
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 5)
        gate = asyncio.Event()

        def one_held(request: Request, document: Any) -> Response:
            return HeldAnswer(gate, answered(document)) if len(_deletions(app, email)) == held else answered(document)

        app.state.standin.tamper("/actions/delete-permanent", one_held, method="POST")
        system = connector(http_policy(tmp_path, {"newsletter": newsletter()}), "newsletter", pool,
                           settings.model_copy(update=setting) if setting else None)
        try:
            erasing = asyncio.ensure_future(system.erase(subject(email, rid)))
            while len(_deletions(app, email)) < held + 1 and not erasing.done():
                await asyncio.sleep(0.01)
            async with pool.acquire() as conn:
                await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-withdrawn", actor="test")
            seen = await meanwhile(rid)
            if dies:
                erasing.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await erasing
            gate.set()
            if dies:
                return app, email, rid, None, seen
            with pytest.raises(ApplicationError) as stopped:
                await erasing
        finally:
            gate.set()
            await system.close()
    return app, email, rid, stopped.value, seen


async def _cancellation_letter(pool, rid: str) -> str:
    """The withdrawal's letter as it reads the request's stopped runs now (activities/letters.py)."""
    letter = await as_sent("cancellation", "erasure", {"reason": "Withdrawn", "withdrawn": True, "acted_in": [],
                                                        "asked_in": ["newsletter"]}, pool=pool, id=rid)
    return " ".join(letter.text.split())


def _stopped(num: str) -> str:
    return f"Our automated work in our system “newsletter” stopped before it was finished; by then it had made {num} to your"


async def _partial_effects(pool, rid: str) -> list[tuple[int, int | None]]:
    events = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND event_type = "
                              "'task.partial_effect' ORDER BY chain_pos", uuid.UUID(rid))
    return [(e["data"]["counted"], e["data"].get("unsure")) for e in events]


async def test_a_change_answered_after_the_close_is_counted_with_those_before(pool, settings, monkeypatch, tmp_path):
    """The request is withdrawn while a delete is on the wire: the close keeps the count of the
    answers the journal held, and that delete's answer comes after it. The try stops at its next
    change and adds that answer to the count on record, and the trail says the whole count. Before,
    the answer was kept with the next change's journal write, which the close refused: the record
    said one change fewer than the service had made. A withdrawal letter written before the answer
    comes says "at least 2 changes" (it said 2, exact, and the service made 3); one written after it
    says 3."""
    async def kept_at_close(rid: str) -> object:
        return (await pool.fetchval("SELECT partial_changed FROM system_tasks WHERE request_id = $1", uuid.UUID(rid)),
                await _cancellation_letter(pool, rid))

    app, email, rid, stopped, (kept, letter) = await _withdrawn_while_a_delete_is_held(
        pool, settings, monkeypatch, tmp_path, "answered-after-close", 2, kept_at_close)
    assert stopped is not None and stopped.type == "HttpRunRequestClosed"
    assert (kept, len(_deletions(app, email))) == (2, 3)
    assert _stopped("at least 2 changes") in letter, letter
    task = await pool.fetchrow("SELECT partial_changed, partial_unsure FROM system_tasks WHERE request_id = $1",
                               uuid.UUID(rid))
    assert (task["partial_changed"], task["partial_unsure"]) == (3, None)
    assert _stopped("3 changes") in await _cancellation_letter(pool, rid)
    assert await _partial_effects(pool, rid) == [(2, 1), (3, None)]


async def test_a_change_on_the_wire_as_the_try_dies_at_the_close_is_said_as_not_known(
        pool, settings, monkeypatch, tmp_path):
    """The request is withdrawn while a delete is on the wire, and the try dies with its worker
    before its answer comes: the service made 3 deletions, of which our records know 2 and the
    one on the wire, whose answer nobody will hear (a retry begins on the closed request and sends
    nothing). The record, the trail and the letter say at least 2 changes, one on the wire then.
    Before, they said 2 changes, as exact."""
    async def nothing(rid: str) -> None:
        return None

    app, email, rid, _, _ = await _withdrawn_while_a_delete_is_held(
        pool, settings, monkeypatch, tmp_path, "dies-at-close", 2, nothing, dies=True)
    assert len(_deletions(app, email)) == 3
    assert _stopped("at least 2 changes") in await _cancellation_letter(pool, rid)
    task = await pool.fetchrow("SELECT partial_changed, partial_unsure FROM system_tasks WHERE request_id = $1",
                               uuid.UUID(rid))
    assert (task["partial_changed"], task["partial_unsure"]) == (2, 1)
    assert await _partial_effects(pool, rid) == [(2, 1)]


async def test_a_slice_ending_after_the_close_is_not_continued(pool, settings, monkeypatch, tmp_path):
    """The request is withdrawn while a delete of a slice is on the wire, and the slice's time runs
    out before its answer comes: the try stops as closed (HttpRunRequestClosed), with that answer
    counted, rather than ending its slice (RUN_CONTINUES). Before, the workflow then started the
    next slice, which began on a closed request whose journal the close had taken, took itself for
    a hold's deferred erasure and deleted every membership left."""
    async def slice_runs_out(rid: str) -> None:
        await asyncio.sleep(2.0)  # the slice's time runs out while the answer is held

    app, email, rid, stopped, _ = await _withdrawn_while_a_delete_is_held(
        pool, settings, monkeypatch, tmp_path, "slice-after-close", 1, slice_runs_out, http_run_slice_seconds=2.0)
    assert stopped.type == "HttpRunRequestClosed", stopped
    assert len(_deletions(app, email)) == 2
    task = await pool.fetchrow("SELECT partial_changed FROM system_tasks WHERE request_id = $1", uuid.UUID(rid))
    assert task["partial_changed"] == 2

@pytest.mark.parametrize("closed_as, deleted", [(RequestStatus.cancelled, 0), (RequestStatus.denied, 0),
                                                (RequestStatus.completed, 3)])
async def test_a_run_that_begins_after_a_withdrawal_sends_nothing(pool, settings, monkeypatch, tmp_path,
                                                                  closed_as, deleted):
    """A task's run that begins once its request is closed, however it comes to begin then (a try
    the workflow scheduled before it heard of the withdrawal, a retry of a try whose worker died,
    a long run's next slice): a withdrawal's, a cancellation's or a denial's close means no further
    action, so it stops before its first change. One on a completed request goes on (a
    restriction's lift runs then; a hold's deferred erasure says so itself, ErasureContext.after_close).
    Before, a run that began on any closed request went on, and deleted every membership."""
    email = unique_email(f"begins-{closed_as.value}")
    rid = await stored_request(pool, settings, f"begins-{closed_as.value}", "erasure", email=email)
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 3)
        async with pool.acquire() as conn:
            await set_status(conn, rid, closed_as, event_key=f"{rid}:test-closed", actor="test")
        system = connector(http_policy(tmp_path, {"newsletter": newsletter()}), "newsletter", pool)
        try:
            if deleted:
                await system.erase(subject(email, rid))
            else:
                with pytest.raises(ApplicationError) as stopped:
                    await system.erase(subject(email, rid))
                assert stopped.value.type == "HttpRunRequestClosed", stopped.value
        finally:
            await system.close()
    assert len(_deletions(app, email)) == deleted
