"""A legal-claims hold released while the erasure it kept records of was still open, whose
release's sweep did not erase them (the CRM unreachable then, the workflow engine away, or a task's
try that kept them after the release), then the erasure withdrawn: the close calls them off and,
nothing keeping them so any more, un-restricts them there and then (activities/called_off_marks.py
`lift_at_close`). Before, only the next daily sweep did: the release's sweep had run already, and
nothing else sweeps the subject. The fixtures are those of tests/test_deferred_closed_unanswered.py.
"""

from __future__ import annotations

from temporalio.testing import ActivityEnvironment

from activities.lifecycle import LifecycleActivities
from dsrflow.stores.holds_store import release_hold
from schemas.requests import RequestStatus
from schemas.workflow import Transition
from tests.process_support import transition_killed_at
from tests.support import fetch_rows
from tests.test_deferred_closed_unanswered import RESTRICTED, UNRESTRICTED, _kept_part_way, stack  # noqa: F401
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
