"""What a long SaaS run keeps of the subject between its attempts (http_run_journal, migration
0036: the records each read found, sealed) must not outlive the run, nor be lost while it lasts: a
request closed while its run is part-way (withdrawn, cancelled) gets no task result to take the
rows with it; a run paused for days still carries on from them; a worker without the deployment's
key says so; a result that ends its task takes every row written before it and none is written
after. And what the run counts is each record once, however often the service lists it."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date
from typing import Any

import pytest
from fastapi import Request
from temporalio.exceptions import ApplicationError

from activities.connectors import build_connector
from activities.connectors.base import ConnectorEnv, ErasureContext
from activities.connectors.http_journal import Journal
from activities.erasure_evidence import ErasureEvidence
from activities.fanout import FanoutActivities
from activities.task_results import store_task_result
from dsrflow.settings import Settings
from dsrflow.stores.requests_store import set_status
from schemas.requests import RequestStatus
from schemas.workflow import RUN_CONTINUES, SystemTask, TaskInput, TaskResult
from tests.saas_runs_support import deletes, mailchimp, member_of_lists, newsletter
from tests.saas_support import SECRET, connector, http_policy, subject
from tests.support import stored_request, unique_email
from workers.dsr_worker import activity_context


async def _journal_rows(pool, request_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1", uuid.UUID(request_id))


async def test_a_request_closed_part_way_through_a_run_keeps_none_of_its_journal(pool, settings, monkeypatch,
                                                                                  tmp_path):
    """An erasure's run stops at the end of its first slice, its journal holding the subject's
    memberships; the request is cancelled before the next slice. Its journal goes with the close:
    before, the sealed records stayed (no task result came to take them), for as long as no other
    SaaS run started."""
    email = unique_email("closed-run")
    rid = await stored_request(pool, settings, "closed-run", "erasure", email=email)
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 200)
        loaded = http_policy(tmp_path, {"newsletter": newsletter()})
        await _one_slice(loaded, pool, subject(email, rid))
        assert await _journal_rows(pool, rid) > 0
        async with pool.acquire() as conn:
            await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-cancelled", actor="test")
        assert await _journal_rows(pool, rid) == 0
        # The run's next slice (the workflow not yet told of the cancellation) keeps nothing more,
        # and stops before its first change (a run that begins on a withdrawn request sends none).
        await _one_slice(loaded, pool, subject(email, rid), expect="HttpRunRequestClosed")
    assert await _journal_rows(pool, rid) == 0


async def test_a_result_ending_the_task_takes_the_write_in_flight_and_refuses_those_after(pool, settings):
    """An attempt's write is in flight (its transaction not yet committed) when staff's resolution
    is stored: the resolution waits for it and takes its rows. The attempt's next write keeps
    nothing and stops it. Before, the resolution's statement ran at once, could not see the rows
    still uncommitted, and they stayed until the request closed; so did every later write."""
    rid = await stored_request(pool, settings, "in-flight", "erasure")
    key, ends = (rid, "newsletter", "erase", 1), time.monotonic() + 60
    resolution = TaskResult(system="newsletter", action="erase", status="done", message="resolved by staff: by hand")
    async with pool.acquire() as conn:
        writing = conn.transaction()
        await writing.start()
        journal = await Journal.open(conn, SECRET, key, ends, "config")
        await journal.read("lists", "first", [{"id": "list-1"}], 10)
        await journal.flush()
        resolving = asyncio.create_task(store_task_result(activity_context(settings, pool), rid, resolution))
        await asyncio.sleep(0.5)
        waited = not resolving.done()
        await writing.commit()
    await resolving
    assert await _journal_rows(pool, rid) == 0
    assert waited
    late = await Journal.open(pool, SECRET, key, ends, "config")
    await late.read("lists", "second", [{"id": "list-2"}], 10)
    with pytest.raises(ApplicationError) as stopped:
        await late.flush()
    assert (stopped.value.type, stopped.value.non_retryable) == ("HttpRunTaskEnded", True)
    assert await _journal_rows(pool, rid) == 0


async def test_an_attempt_whose_task_ended_before_its_first_change_keeps_no_evidence(pool, settings, monkeypatch,
                                                                                     tmp_path):
    """Staff resolve the task while its attempt still reads: the attempt's first change finds the
    task ended and stops, sending nothing and keeping no evidence of the deletes it planned. Before,
    the planned evidence (a ledger row for each membership) was kept first, then the change's
    journal write was refused: the ledger named the membership as erased, which it never was."""
    email = unique_email("ended-unplanned")
    rid = await stored_request(pool, settings, "ended-unplanned", "erasure", email=email)
    resolution = TaskResult(system="newsletter", action="erase", status="done", message="resolved by staff: by hand")
    ctx = activity_context(settings, pool)
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 3)
        system = connector(http_policy(tmp_path, {"newsletter": newsletter()}), "newsletter", pool)
        await store_task_result(ctx, rid, resolution)  # before the reads' first write: they are kept with it
        try:
            with pytest.raises(ApplicationError) as stopped:
                await ErasureEvidence(ctx).erase_with_evidence(system, rid, "newsletter", "test", subject(email, rid),
                                                              ErasureContext(today=date.today()))
        finally:
            await system.close()
    assert stopped.value.type == "HttpRunTaskEnded"
    assert deletes(app) == []
    assert await pool.fetchval("SELECT count(*) FROM erasure_ledger WHERE request_id = $1", uuid.UUID(rid)) == 0


async def test_a_resolution_stored_after_the_runs_last_write_stands_over_the_attempts_result(
        pool, settings, monkeypatch, tmp_path):
    """The attempt's run ends (its last journal write found the task not ended, the deletes sent),
    and staff's resolution is stored before the attempt's own result: that result is not stored
    over it, and the attempt answers with the resolution. Before, nothing checked after the run's
    last write: the attempt's result replaced the resolution on record (message None)."""
    email = unique_email("ended-after-run")
    rid = await stored_request(pool, settings, "ended-after-run", "erasure", email=email)
    resolution = TaskResult(system="newsletter", action="erase", status="done", message="resolved by staff: by hand")
    ctx = activity_context(settings, pool)
    ctx._policies["test"] = http_policy(tmp_path, {"newsletter": newsletter()})  # the request's stored policy
    act = FanoutActivities._act

    async def resolved_meanwhile(self: FanoutActivities, *args: Any, **kwargs: Any) -> TaskResult:
        result = await act(self, *args, **kwargs)
        await store_task_result(ctx, rid, resolution)
        return result

    monkeypatch.setattr(FanoutActivities, "_act", resolved_meanwhile)
    task = TaskInput(request_id=rid, policy_version="test", record=True,
                     task=SystemTask(system="newsletter", action="erase", connector="http", label="Newsletter"))
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 3)
        answer = await FanoutActivities(ctx)._run(task)
    assert len(deletes(app)) == 3  # the run was over before the resolution
    assert (answer.status, answer.message) == ("done", resolution.message)
    record = await pool.fetchrow("SELECT status, attempt, message FROM system_tasks WHERE request_id = $1",
                                 uuid.UUID(rid))
    assert tuple(record) == ("done", 1, resolution.message)


async def _one_slice(loaded, pool, who, settings: Settings | None = None, expect: str | None = RUN_CONTINUES) -> None:
    """One attempt of the subject's erasure, cut into short slices: it stops with `expect`, or
    (None) ends without stopping."""
    system = connector(loaded, "newsletter", pool,
                       settings or Settings().model_copy(update={"http_run_slice_seconds": 0.2}))
    try:
        if expect is None:
            await system.erase(who)
            return
        with pytest.raises(ApplicationError) as stopped:
            await system.erase(who)
    finally:
        await system.close()
    assert stopped.value.type == expect


async def test_a_run_paused_for_over_a_week_keeps_its_journal(pool, settings, monkeypatch, tmp_path):
    """A run of an open request whose journal is eight days old (its service's quota or
    Retry-After held it that long) carries on from it when another run starts meanwhile: every
    membership counted as deleted once, none sent twice. Before, any run's start deleted every
    journal row older than a week, so this run sent its deletes again, heard 404 and counted them
    as not deleted. Rows of a request that is gone still go."""
    email = unique_email("paused-run")
    rid = await stored_request(pool, settings, "paused-run", "erasure", email=email)
    lists = 100
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, lists)
        loaded = http_policy(tmp_path, {"newsletter": newsletter()})
        fast = Settings().model_copy(update={"http_run_slice_seconds": 0.4})
        while not deletes(app):
            await _one_slice(loaded, pool, subject(email, rid), fast)
        gone = str(uuid.uuid4())  # a run whose request is no longer there
        await pool.execute("""INSERT INTO http_run_journal (request_id, system, run, attempt, step, item, state)
                              VALUES ($1, 'newsletter', 'erase', 1, 'lists', 'x', 'read')""", uuid.UUID(gone))
        await pool.execute("UPDATE http_run_journal SET stored_at = now() - interval '8 days' "
                           "WHERE request_id = ANY($1::uuid[])", [uuid.UUID(rid), uuid.UUID(gone)])
        other = unique_email("other-run")
        await _one_slice(loaded, pool, subject(other), Settings(), expect=None)  # another subject's run, whole
        system = connector(loaded, "newsletter", pool)
        try:
            outcome = await system.erase(subject(email, rid))
        finally:
            await system.close()
    assert outcome.datasets == {"members": {"found": lists, "deleted": lists}}
    assert deletes(app).count(204) == lists and 404 not in deletes(app)
    assert await _journal_rows(pool, gone) == 0


async def test_a_journal_sealed_under_another_key_is_named_and_nothing_is_sent(pool, settings, monkeypatch,
                                                                                tmp_path):
    """A worker started without the deployment's DSRFLOW_SECRET_KEY (it makes its own) takes over
    a run part-way: it cannot open the journal's sealed records, says so in words staff can act on
    (the task's message once retries run out), and sends nothing. Before, it failed with a bare
    InvalidTag, retried, and staff read 'InvalidTag: no message'."""
    email = unique_email("other-key")
    lists = 60
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, lists)
        loaded = http_policy(tmp_path, {"newsletter": newsletter()})
        who = subject(email)
        await _one_slice(loaded, pool, who)
        before = len(app.state.standin.served)
        policy = loaded.policy
        stranger = build_connector(ConnectorEnv(
            system_name="newsletter", system=policy.systems["newsletter"], policy=policy, settings=Settings(),
            secret=b"another worker's own key 32 byte", callback_url="", pool=pool))
        try:
            with pytest.raises(ApplicationError) as refused:
                await stranger.erase(who)
        finally:
            await stranger.close()
        assert len(app.state.standin.served) == before
    assert not refused.value.non_retryable
    assert "DSRFLOW_SECRET_KEY" in refused.value.message and "Nothing was sent" in refused.value.message


async def test_a_list_answered_twice_is_one_membership_found_and_deleted_once(pool, monkeypatch, tmp_path):
    """Mailchimp's offset pages shift while a run reads them (a list created meanwhile): the same
    list comes twice. Its membership is one record: found once, deleted once, no second delete
    answered 404. Before, the evidence said 31 found and 30 deleted, as if one were left."""
    email = unique_email("twice")
    lists = 30
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, lists)

        def shifted(request: Request, document: Any) -> Any:
            if request.url.path != "/3.0/lists":  # a member's answer (or its 404), as it was
                return document
            return {**document, "lists": [*document["lists"], document["lists"][-1]]}

        app.state.standin.tamper("/3.0/lists", shifted, method="GET")
        system = connector(http_policy(tmp_path, {"newsletter": newsletter()}), "newsletter", pool)
        try:
            outcome = await system.erase(subject(email))
        finally:
            await system.close()
    assert outcome.datasets == {"members": {"found": lists, "deleted": lists}}
    assert (outcome.found, outcome.changed) == (lists, lists)
    assert deletes(app) == [204] * lists
