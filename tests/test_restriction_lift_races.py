"""A lift of one restriction racing a new restriction of the same subject in the same system must
leave the system restricted (activities/restriction_lock.py). Each interleaving is forced in
process: the fan-out's activities are called as the workflow's tasks call them (no workflow, no
worker), and the test steps in between at the exact place, through the activity module's own
names. Before, both ended with the analytics data of a subject under a restriction in force
unrestricted:

1. the lift checks (nothing holds analytics), the new restriction restricts it and records its
   task done, then the lift un-restricts it;
2. the new restriction restricts analytics, the lift checks (its task not yet recorded done: nothing
   holds it) and un-restricts it, then the restriction records its task done.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import activities.fanout as fanout_module
from activities.fanout import FanoutActivities
from devstack.demo.subjects import demo_subjects
from dsrflow.domain.references import short_reference
from schemas.workflow import StartRequest, TaskInput, TaskResult
from tests.fanout_stack import fanout_stack
from tests.support import fetch_rows, stored_request
from workers.dsr_worker import activity_context

# A subject in analytics no other module restricts (the crash tests take those above 900).
EMAIL = next(s.email for s in demo_subjects() if s.in_analytics and 800 < s.index <= 900)
RESTRICTED = f"SELECT restricted FROM users WHERE email = '{EMAIL}'"


async def _restriction(pool, settings, label: str) -> str:
    """A restriction request of the subject, its identity confirmed: in progress, not yet planned."""
    rid = await stored_request(pool, settings, label, "restriction", email=EMAIL,
                               restriction_grounds=["needed_for_legal_claims"])
    await pool.execute("UPDATE dsr_requests SET status = 'in_progress' WHERE id = $1::uuid", rid)
    return rid


async def _task(fanout: FanoutActivities, rid: str, action: str) -> TaskInput:
    """Its analytics task as the workflow runs it (its result kept by the activity), the plan written
    first as the workflow writes it (once)."""
    plan = await fanout._plan(StartRequest(request_id=rid, policy_version=await _version(fanout, rid)))
    (task,) = [t for t in plan.tasks if t.system == "analytics"]
    return TaskInput(request_id=rid, policy_version=plan.policy_version,
                     task=task.model_copy(update={"action": action}), record=True)


async def _version(fanout: FanoutActivities, rid: str) -> str:
    return str(await fanout.ctx.pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid))


async def _in_force(fanout: FanoutActivities, pool, settings) -> str:
    """The subject's first restriction: analytics restricted, on record, its lift now due."""
    rid = await _restriction(pool, settings, "first")
    result = await fanout._run(await _task(fanout, rid, "restrict"))
    assert result.status == "done" and result.changed > 0, result
    await pool.execute("""INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure,
                                                    lift_requested_at, lift_effective_on)
                          VALUES ($1, 'h', '{needed_for_legal_claims}', '{analytics}', true, now(), now())""",
                       uuid.UUID(rid))
    await pool.execute("UPDATE dsr_requests SET status = 'completed', closed_at = now() WHERE id = $1::uuid", rid)
    return rid


async def _waiting_for_a_lock(pool) -> bool:
    """A restriction's call waits for the system's lock (held by the lift)."""
    return bool(await pool.fetchval(
        """SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'
           AND query LIKE '%pg_advisory_lock_shared%'"""))


async def _first_of(pool, restricting: asyncio.Future, condition: Callable[[], Awaitable[bool]]) -> None:
    """Until the restriction's run ended or `condition` holds, polled on the database (no fixed wait)."""
    for _ in range(200):
        if restricting.done() or await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the restriction neither ended nor waited for the lift")


async def test_a_restriction_that_starts_after_the_lifts_check_restricts_after_the_lift(
        postgres, settings, pool, dev_server, tmp_path, monkeypatch):
    """Interleaving 1: the lift has checked and found nothing holding analytics; a new restriction
    of the subject is then planned and its analytics task runs. It waits for the lift's call, then
    restricts: analytics ends restricted, each task's result says what it did."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        analytics = stack.databases["analytics"]
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first = await _in_force(fanout, pool, stack.settings)
        second = await _restriction(pool, stack.settings, "second")
        checked = fanout_module.lift_held_by
        restricting: list[asyncio.Future[TaskResult]] = []

        async def then_restrict(*args, **kwargs) -> str | None:
            answer = await checked(*args, **kwargs)
            assert answer is None  # nothing holds analytics yet
            restricting.append(asyncio.ensure_future(fanout._run(await _task(fanout, second, "restrict"))))
            await _first_of(pool, restricting[0], lambda: _waiting_for_a_lock(pool))
            return answer

        monkeypatch.setattr(fanout_module, "lift_held_by", then_restrict)
        lifted = await fanout._run(await _task(fanout, first, "lift_restriction"))
        restricted = await asyncio.wait_for(restricting[0], 10)
        assert [r["restricted"] for r in await fetch_rows(analytics, RESTRICTED)] == [True]
        assert lifted.status == restricted.status == "done" and lifted.changed > 0 and restricted.changed > 0
        done = await pool.fetch("SELECT request_id::text FROM audit_events WHERE event_type = 'task.done' "
                                "AND request_id = ANY($1::uuid[]) AND data ->> 'system' = 'analytics' ORDER BY seq",
                                [first, second])
        # restricted and lifted (first), restricted (second). Not asserted in that order: the lift's
        # lock ends with its call, before its result is recorded, so the waiting restriction may
        # record first (seen once in six clean-clone runs); the effects' order is the system's state,
        # asserted above. Holding the lock to the record is left (the closing note of 2026-12-07).
        assert sorted(r["request_id"] for r in done) == sorted([first, first, second])


async def test_a_lift_that_checks_after_a_restriction_reached_the_system_leaves_it(
        postgres, settings, pool, dev_server, tmp_path, monkeypatch):
    """Interleaving 2: the new restriction's call has restricted analytics and its task is not yet
    recorded done when the lift checks. The restriction is under way with analytics in its plan:
    the lift leaves analytics restricted and says which restriction holds it."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        analytics = stack.databases["analytics"]
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first = await _in_force(fanout, pool, stack.settings)
        second = await _restriction(pool, stack.settings, "second")
        lift = await _task(fanout, first, "lift_restriction")
        store = fanout_module.store_task_result
        lifts: list[TaskResult] = []

        async def lift_first(ctx, request_id: str, result: TaskResult, **kwargs) -> TaskResult | None:
            if request_id == second and not lifts:  # restricted in analytics, not yet recorded
                assert [r["restricted"] for r in await fetch_rows(analytics, RESTRICTED)] == [True]
                lifts.append(await fanout._run(lift))
            return await store(ctx, request_id, result, **kwargs)

        monkeypatch.setattr(fanout_module, "store_task_result", lift_first)
        restricted = await fanout._run(await _task(fanout, second, "restrict"))
        assert restricted.status == "done" and lifts
        assert [r["restricted"] for r in await fetch_rows(analytics, RESTRICTED)] == [True]
        (held,) = lifts
        assert (held.status, held.changed) == ("done", 0) and short_reference(second) in held.message, held
        events = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                                  "AND event_type = 'restriction.lift_held'", first)
        assert [(e["data"]["system"], e["data"]["by"]) for e in events] == [("analytics", second)]
