"""A lift held by the subject's other restriction, which then ends without ever restricting the
system, is carried out once it ended (activities/held_lifts.py, run by the worker's start sweep).

The first restriction is lifted while the second is under way with analytics in its plan: the
lift leaves analytics to it (`restriction.lift_held`). Before, when the second then ended without
restricting analytics (cancelled, denied, completed without reaching it), nothing ever lifted
analytics: the first was lifted, the second had no lift, and the subject's data stayed restricted
with no restriction in force. The fan-out's activities are called as the workflow's tasks call
them (tests/test_restriction_lift_races.py); the sweep's part is called as the sweep calls it, and
once by a real sweep on a worker killed after it lifted, before it put that on record.
"""

from __future__ import annotations

import asyncio
import html
import uuid

from activities.fanout import FanoutActivities
from activities.held_lifts import release_held_lifts
from dsrflow.domain.references import short_reference
from schemas.request_start import StartSweepInput
from schemas.workflow import StartRequest
from tests.fanout_stack import api, fanout_stack_alone
from tests.process_support import died, worker_to_kill
from tests.support import console_sign_in, fetch_rows
from tests.test_restriction_lift_races import RESTRICTED, _in_force, _restriction, _task
from workers.dsr_worker import activity_context
from workflows.request_start_sweep import RequestStartSweepWorkflow

# How the second restriction ends, as its request's workflow leaves it on record.
ENDINGS = {
    "cancelled": "UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid",
    "denied": "UPDATE dsr_requests SET status = 'denied', closed_at = now() WHERE id = $1::uuid",
    # Its analytics task failed for good; it completed with the systems it reached on record.
    "completed_without_analytics": "WITH done AS (UPDATE dsr_requests SET status = 'completed', closed_at = now() "
                                   "WHERE id = $1::uuid RETURNING id) INSERT INTO restrictions (request_id, "
                                   "subject_hash, grounds, systems, keeps_from_erasure) SELECT id, 'h', "
                                   "'{needed_for_legal_claims}', '{crm}', true FROM done",
}


async def _held(fanout: FanoutActivities, pool, settings, also: tuple[str, ...] = ()) -> tuple[str, str]:
    """The first restriction lifted while the second, planned and not yet run, holds analytics
    (and the systems `also`)."""
    first = await _in_force(fanout, pool, settings)
    second = await _restriction(pool, settings, "second")
    await _task(fanout, second, "restrict")  # its plan written, as its workflow writes it first
    lifts = [await _task(fanout, first, "lift_restriction")]
    plan = await fanout._plan(StartRequest(request_id=first, policy_version=lifts[0].policy_version))
    lifts += [lifts[0].model_copy(update={"task": t.model_copy(update={"action": "lift_restriction"})})
              for t in plan.tasks if t.system in also]
    for lift in lifts:
        lifted = await fanout._run(lift)
        assert (lifted.status, lifted.changed) == ("done", 0) and short_reference(second) in lifted.message, lifted
    return first, second


async def _restricted(stack) -> list[bool]:
    return [row["restricted"] for row in await fetch_rows(stack.databases["analytics"], RESTRICTED)]


async def _released(pool, first: str) -> list[dict]:
    rows = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                            "AND event_type = 'restriction.lift_released'", first)
    return [dict(row["data"]) for row in rows]


async def test_a_lift_held_by_a_restriction_that_ended_without_restricting_the_system_lifts_it(
        postgres, settings, dev_server, tmp_path):
    """The second restriction ends without restricting analytics (each ending in turn, the subject
    restricted and lifted afresh each time): the next sweep lifts analytics once, and the first's
    timeline says so. The e-mail marketing processor, held too, is not asked (no task of the first
    waits for its answer): its line tells staff to tell it. Before: analytics restricted for ever."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift") as (stack, pool), \
            api(stack) as http:
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        await console_sign_in(http, pool, "compliance")
        for ending, ended in ENDINGS.items():
            first, second = await _held(fanout, pool, stack.settings, also=("email_marketing",))
            assert await release_held_lifts(fanout.ctx) == 0  # the second still under way: left to it
            assert await _restricted(stack) == [True]
            await pool.execute(ended, second)
            assert await release_held_lifts(fanout.ctx) == 2, ending
            assert await _restricted(stack) == [False], ending
            assert await release_held_lifts(fanout.ctx) == 0  # once
            released = {r["system"]: r for r in await _released(pool, first)}
            assert released["analytics"]["by"] == second and released["analytics"]["status"] == "done" \
                and released["analytics"]["changed"] > 0, released
            assert released["email_marketing"] == {"system": "email_marketing", "by": second,
                                                   "status": "needs_attention"}
            # Staff are alerted once to tell the processor, by hand (a closed request's timeline is not enough).
            alerts = await pool.fetch("SELECT letter_key FROM sent_letters WHERE request_id = $1::uuid "
                                      "AND purpose = 'staff_alert'", first)
            assert [row["letter_key"].rsplit(":", 1)[-1] for row in alerts] == ["email_marketing"], alerts
            page = " ".join(html.unescape((await http.get(f"/console/requests/{first}")).text).split())
            ref = short_reference(second)
            assert (f"Website analytics (users and page events): lifted once restriction {ref} ended without "
                    "coming into force there") in page, ending
            assert f": tell it the restriction has ended: restriction {ref} ended without coming into force" in page


async def test_a_lift_held_by_a_restriction_that_restricted_the_system_before_it_was_cancelled_stays_held(
        postgres, settings, dev_server, tmp_path):
    """The second restriction restricted analytics, then was cancelled: it goes on record for what
    it reached and its own lift will lift analytics; the sweep leaves analytics restricted."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift") as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _held(fanout, pool, stack.settings)
        restricted = await fanout._run(await _task(fanout, second, "restrict"))
        assert restricted.status == "done"  # found restricted still (held): nothing to change
        await pool.execute(ENDINGS["cancelled"], second)
        assert await release_held_lifts(fanout.ctx) == 0
        assert await _restricted(stack) == [True] and await _released(pool, first) == []


async def test_a_held_lift_carried_out_by_a_sweep_killed_before_it_recorded_it_is_recorded_once(
        postgres, settings, dev_server, tmp_path):
    """A real sweep on a worker killed right after it lifted analytics, still holding the system's
    lock (failpoint restriction-acted), before the lift was on record. The next run lifts again
    (nothing left to change) and records it: one `restriction.lift_released`, analytics lifted."""
    client = dev_server.client
    async with fanout_stack_alone(postgres, settings, client, tmp_path, "heldlift") as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _held(fanout, pool, stack.settings)
        await pool.execute(ENDINGS["cancelled"], second)
        async with worker_to_kill(stack.settings, client, tmp_path,
                                  failpoints=f"restriction-acted~analytics:lift_restriction:{first}") as worker:
            sweep = await client.start_workflow(RequestStartSweepWorkflow.run, StartSweepInput(),
                                                id=f"held-lift-sweep-{uuid.uuid4().hex[:8]}",
                                                task_queue=stack.settings.task_queue)
            await died(worker, tmp_path)
        assert await _restricted(stack) == [False] and await _released(pool, first) == []
        await sweep.terminate("the test's next run is its own")
        assert await asyncio.wait_for(release_held_lifts(fanout.ctx), 10) == 1
        assert await release_held_lifts(fanout.ctx) == 0
        (released,) = await _released(pool, first)  # analytics alone held here
        assert (released["by"], released["status"], released["changed"]) == (second, "done", 0), released
        assert await _restricted(stack) == [False]


async def test_a_sweep_killed_after_alerting_staff_to_lift_by_hand_records_it_once_and_alerts_once(
        postgres, settings, dev_server, tmp_path):
    """The e-mail processor's held lift, which staff carry out: a real sweep on a worker killed right
    after the staff alert went, before the release was on record (failpoint lift-by-hand-alerted).
    The next run records it without a second alert: one alert, one `restriction.lift_released`."""
    client = dev_server.client
    async with fanout_stack_alone(postgres, settings, client, tmp_path, "heldlift") as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _held(fanout, pool, stack.settings, also=("email_marketing",))
        await pool.execute(ENDINGS["cancelled"], second)
        async with worker_to_kill(stack.settings, client, tmp_path,
                                  failpoints=f"lift-by-hand-alerted~email_marketing:{first}") as worker:
            sweep = await client.start_workflow(RequestStartSweepWorkflow.run, StartSweepInput(),
                                                id=f"held-lift-sweep-{uuid.uuid4().hex[:8]}",
                                                task_queue=stack.settings.task_queue)
            await died(worker, tmp_path)
        await sweep.terminate("the test's next run is its own")
        assert [r["system"] for r in await _released(pool, first)] == ["analytics"]  # before the kill
        assert await asyncio.wait_for(release_held_lifts(fanout.ctx), 10) == 1
        assert await release_held_lifts(fanout.ctx) == 0
        assert {r["system"]: r["status"] for r in await _released(pool, first)} == {
            "analytics": "done", "email_marketing": "needs_attention"}
        assert await pool.fetchval("SELECT count(*) FROM sent_letters WHERE request_id = $1::uuid "
                                   "AND purpose = 'staff_alert'", first) == 1
