"""A legal-claims hold released while the erasure it kept records of was still open, whose
release's sweep did not erase them (the CRM unreachable then, the workflow engine away, or a task's
try that kept them after the release), then the erasure withdrawn: the close calls them off and,
nothing keeping them so any more, un-restricts them there and then (activities/called_off_marks.py
`lift_at_close`). Before, only the next daily sweep did: the release's sweep had run already, and
nothing else sweeps the subject. The fixtures are those of tests/test_deferred_closed_unanswered.py.
"""

from __future__ import annotations

import asyncio

from temporalio.testing import ActivityEnvironment

from activities import called_off_marks
from activities.lifecycle import LifecycleActivities
from dsrflow.stores.holds_store import release_hold
from schemas.requests import RequestStatus
from schemas.workflow import Transition
from tests.process_support import transition_killed_at
from tests.support import fetch_rows
from tests.test_deferred_closed_unanswered import (  # noqa: F401
    RESTRICTED,
    UNRESTRICTED,
    _kept_part_way,
    stack,
)
from workers.dsr_worker import activity_context


async def _released_while_open(stack, pool) -> tuple[str, int, Transition]:  # noqa: F811
    """Ada's erasure kept part-way under the hold, the hold then released with nothing swept:
    its id, how many CRM contacts of hers are restricted, and her withdrawal's close."""
    rid, hold = await _kept_part_way(stack, pool)
    async with pool.acquire() as conn:
        await release_hold(conn, hold["id"], "compliance:test", reason="The claim was settled out of court")
    (crm,) = await fetch_rows(stack.databases["crm"], RESTRICTED)
    assert crm["marked"] == crm["n"] > 0
    return rid, crm["n"], Transition(request_id=rid, status=RequestStatus.cancelled, event_key="closed",
                                     actor="subject", data={"withdrawn": True})


async def test_a_hold_released_before_the_close_is_unrestricted_at_the_close(stack):  # noqa: F811
    stack, pool = stack
    rid, contacts, close = await _released_while_open(stack, pool)
    step = LifecycleActivities(activity_context(stack.settings, pool)).transition
    await ActivityEnvironment().run(step, close)
    assert dict((await fetch_rows(stack.databases["crm"], RESTRICTED))[0]) == {"marked": 0, "n": contacts}
    assert len(await pool.fetch(UNRESTRICTED, rid)) == 1
    await ActivityEnvironment().run(step, close)  # the step again (a retry): nothing more
    assert len(await pool.fetch(UNRESTRICTED, rid)) == 1


async def test_a_close_killed_before_it_unrestricted_does_so_when_retried(stack):  # noqa: F811
    """Killed once the close is on record (failpoint status-recorded): called off, still
    restricted; the step's retry un-restricts them, once."""
    stack, pool = stack
    rid, contacts, close = await _released_while_open(stack, pool)
    await transition_killed_at(stack.settings, "status-recorded", close)
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1::uuid "
                               "AND system = 'crm' AND called_off_at IS NULL", rid) == 0
    assert (await fetch_rows(stack.databases["crm"], RESTRICTED))[0]["marked"] == contacts
    assert await pool.fetch(UNRESTRICTED, rid) == []
    await ActivityEnvironment().run(LifecycleActivities(activity_context(stack.settings, pool)).transition, close)
    assert dict((await fetch_rows(stack.databases["crm"], RESTRICTED))[0]) == {"marked": 0, "n": contacts}
    assert len(await pool.fetch(UNRESTRICTED, rid)) == 1


async def _kept(pool, rid: str) -> int:
    """How many of the request's CRM records the hold kept (rows, one per dataset and record)."""
    return await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1::uuid AND system = 'crm'", rid)


async def _unrestricted_not_recorded(stack, pool, rid: str, contacts: int) -> None:  # noqa: F811
    """The CRM un-restricted Ada's contacts; neither the rows nor the trail say so yet."""
    assert dict((await fetch_rows(stack.databases["crm"], RESTRICTED))[0]) == {"marked": 0, "n": contacts}
    assert await pool.fetch(UNRESTRICTED, rid) == []
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1::uuid "
                               "AND system = 'crm' AND unrestricted_at IS NOT NULL", rid) == 0


async def test_a_close_killed_between_the_unrestriction_and_its_record_records_it_once_when_retried(
        stack):  # noqa: F811
    """Killed once the CRM committed the un-restriction, before its record (failpoint
    called-off-unrestricted, in the close's step): the step's retry un-restricts again, which
    changes nothing, and records it once (hDY)."""
    stack, pool = stack
    rid, contacts, close = await _released_while_open(stack, pool)
    await transition_killed_at(stack.settings, "called-off-unrestricted~crm", close)
    await _unrestricted_not_recorded(stack, pool, rid, contacts)
    step = LifecycleActivities(activity_context(stack.settings, pool)).transition
    for _ in range(2):  # retried, and retried again: one record
        await ActivityEnvironment().run(step, close)
    assert [dict(r["data"]) for r in await pool.fetch(UNRESTRICTED, rid)] == [{"system": "crm", "records": await _kept(pool, rid)}]


async def _closed_with_slow(fanout, pool, monkeypatch, slow: str):
    """A request released while open, closed with the close's bound at 0.5 s and `slow` (a function
    of activities/called_off_marks.py) taking 1 s: (its id, the CRM's contacts, the activities'
    context)."""
    rid, contacts, close = await _released_while_open(fanout, pool)
    original = getattr(called_off_marks, slow)

    async def slowly(*args, **kwargs):
        await asyncio.sleep(1)  # past the bound
        return await original(*args, **kwargs)

    monkeypatch.setattr(called_off_marks, "AT_CLOSE_WITHIN", 0.5)
    monkeypatch.setattr(called_off_marks, slow, slowly)
    context = activity_context(fanout.settings, pool)
    await ActivityEnvironment().run(LifecycleActivities(context).transition, close)
    return rid, contacts, context


async def test_a_close_whose_time_runs_out_while_it_records_still_records_what_the_crm_did(
        stack, monkeypatch):  # noqa: F811
    """The close's bound (AT_CLOSE_WITHIN) running out once the CRM un-restricted, while the record
    is written: the record goes on (hDY). Before, the bound was over both: the record was cancelled,
    and the rows, the trail and the deferred panel said the records were restricted, which they no
    longer were, until the next daily sweep."""
    stack, pool = stack
    rid, contacts, context = await _closed_with_slow(stack, pool, monkeypatch, "append_event")
    assert dict((await fetch_rows(stack.databases["crm"], RESTRICTED))[0]) == {"marked": 0, "n": contacts}
    assert [dict(r["data"]) for r in await pool.fetch(UNRESTRICTED, rid)] == [{"system": "crm", "records": await _kept(pool, rid)}]
    monkeypatch.undo()
    assert await called_off_marks.lift_called_off_marks(context, None, rid) == (0, {})  # the sweep: nothing left


async def test_a_close_whose_time_runs_out_before_the_crm_answers_leaves_it_to_the_sweep(
        stack, monkeypatch):  # noqa: F811
    """The CRM slow to answer (here: the check under its lock) past the close's bound: the close
    goes on, nothing un-restricted nor recorded; the daily sweep's pass (`lift_called_off_marks`)
    un-restricts and records it once."""
    stack, pool = stack
    rid, contacts, context = await _closed_with_slow(stack, pool, monkeypatch, "restricted_elsewhere")
    assert (await fetch_rows(stack.databases["crm"], RESTRICTED))[0]["marked"] == contacts
    assert await pool.fetch(UNRESTRICTED, rid) == []
    monkeypatch.undo()
    assert await called_off_marks.lift_called_off_marks(context, None, rid) == (await _kept(pool, rid), {})
    assert await called_off_marks.lift_called_off_marks(context, None, rid) == (0, {})
    assert [dict(r["data"]) for r in await pool.fetch(UNRESTRICTED, rid)] == [{"system": "crm", "records": await _kept(pool, rid)}]
