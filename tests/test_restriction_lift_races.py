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


async def _restriction(pool, settings, label: str, email: str = EMAIL) -> str:
    """A restriction request of the subject, its identity confirmed: in progress, not yet planned."""
    rid = await stored_request(pool, settings, label, "restriction", email=email,
                               restriction_grounds=["needed_for_legal_claims"])
    await pool.execute("UPDATE dsr_requests SET status = 'in_progress' WHERE id = $1::uuid", rid)
    return rid


async def _task(fanout: FanoutActivities, rid: str, action: str, system: str = "analytics") -> TaskInput:
    """Its task at `system` as the workflow runs it (its result kept by the activity), the plan
    written first as the workflow writes it (once)."""
    plan = await fanout._plan(StartRequest(request_id=rid, policy_version=await _version(fanout, rid)))
    (task,) = [t for t in plan.tasks if t.system == system]
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


async def _waiting_for_a_lock(pool, take: str = "pg_advisory_lock_shared(") -> bool:
    """A restriction (or, `take` pg_advisory_lock, a lift) waits for the system's lock."""
    return bool(await pool.fetchval(
        """SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'
           AND strpos(query, $1) > 0""", take))


async def _first_of(pool, running: asyncio.Future, condition: Callable[[], Awaitable[bool]]) -> None:
    """Until the other action's run ended or `condition` holds, polled on the database (no fixed wait)."""
    for _ in range(200):
        if running.done() or await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the other action neither ended nor waited for the lock")


async def restricting_after(pool, restricting: list[asyncio.Future]) -> None:
    """A lift done in the system, before its record: until the restriction started meanwhile
    (`restricting`) ended or waits for the lock, seen so twice, 50 ms apart (a lock's release shows
    a moment after its holder's connection closed). Before the lock was held through the record,
    the restriction ended here, recorded first; now it waits until the lift's record."""
    seen: list[bool] = []

    async def waits_still() -> bool:
        seen.append(await _waiting_for_a_lock(pool))
        return seen[-2:] == [True, True]

    await _first_of(pool, restricting[0], waits_still)


def restricting_once_checked(pool, checked, restricting: list[asyncio.Future], run: Callable[[], Awaitable[TaskResult]]):
    """`checked` (a lift's check), then the restriction `run` started, until it waits for the lock
    (held by the lift) or ended: a restriction that starts after the lift's check."""
    async def then_restrict(*args, **kwargs):
        answer = await checked(*args, **kwargs)
        restricting.append(asyncio.ensure_future(run()))
        await _first_of(pool, restricting[0], lambda: _waiting_for_a_lock(pool))
        return answer

    return then_restrict


def _recorded_last(pool, lift: str, restricting: list[asyncio.Future]):
    """`store_task_result` that holds the lift's result back (`restricting_after`)."""
    store = fanout_module.store_task_result

    async def stored(ctx, request_id: str, result: TaskResult, **kwargs) -> TaskResult | None:
        if request_id == lift and result.action == "lift_restriction" and result.status == "done":
            await restricting_after(pool, restricting)
        return await store(ctx, request_id, result, **kwargs)

    return stored


async def test_a_restriction_that_starts_after_the_lifts_check_restricts_after_the_lift(
        postgres, settings, pool, dev_server, tmp_path, monkeypatch):
    """Interleaving 1: the lift has checked and found nothing holding analytics; a new restriction
    of the subject is then planned and its analytics task runs. It waits for the lift, then
    restricts: analytics ends restricted, each task's result says what it did, and the records say it
    in that order: the restriction's after the lift's. The lift is held between its call and its
    record until the restriction waits for the lock or has ended (`_recorded_last`): before, the lock
    ended with the call and the restriction recorded first (a 1-in-6 flake, here every time)."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        analytics = stack.databases["analytics"]
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first = await _in_force(fanout, pool, stack.settings)
        second = await _restriction(pool, stack.settings, "second")
        restricting: list[asyncio.Future[TaskResult]] = []

        async def restrict() -> TaskResult:
            return await fanout._run(await _task(fanout, second, "restrict"))

        monkeypatch.setattr(fanout_module, "lift_held_by",
                            restricting_once_checked(pool, fanout_module.lift_held_by, restricting, restrict))
        monkeypatch.setattr(fanout_module, "store_task_result", _recorded_last(pool, first, restricting))
        lifted = await fanout._run(await _task(fanout, first, "lift_restriction"))  # nothing held it
        restricted = await asyncio.wait_for(restricting[0], 10)
        assert [r["restricted"] for r in await fetch_rows(analytics, RESTRICTED)] == [True]
        assert lifted.status == restricted.status == "done" and lifted.changed > 0 and restricted.changed > 0
        done = await pool.fetch("SELECT request_id::text FROM audit_events WHERE event_type = 'task.done' "
                                "AND request_id = ANY($1::uuid[]) AND data ->> 'system' = 'analytics' ORDER BY seq",
                                [first, second])
        assert [r["request_id"] for r in done] == [first, first, second]  # restricted, lifted; restricted


async def test_a_lift_that_checks_after_a_restriction_reached_the_system_leaves_it(
        postgres, settings, pool, dev_server, tmp_path, monkeypatch):
    """Interleaving 2: the new restriction's call has restricted analytics and its task is not yet
    recorded done when the lift starts. The lift waits for the restriction's record (the lock is
    held through it), then checks: the restriction is under way with analytics in its plan, and the
    lift leaves analytics restricted and says which restriction holds it. (Before the lock was held
    through the record the lift checked here, before the record, and found the plan alike. Run here
    inside the restriction's record, awaited, as it once was, the lift now waits for its caller.)"""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        analytics = stack.databases["analytics"]
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first = await _in_force(fanout, pool, stack.settings)
        second = await _restriction(pool, stack.settings, "second")
        lift = await _task(fanout, first, "lift_restriction")
        store = fanout_module.store_task_result
        lifts: list[asyncio.Future[TaskResult]] = []

        async def lift_first(ctx, request_id: str, result: TaskResult, **kwargs) -> TaskResult | None:
            if request_id == second and not lifts:  # restricted in analytics, not yet recorded
                assert [r["restricted"] for r in await fetch_rows(analytics, RESTRICTED)] == [True]
                lifts.append(asyncio.ensure_future(fanout._run(lift)))
                await _first_of(pool, lifts[0], lambda: _waiting_for_a_lock(pool, "pg_advisory_lock("))
            return await store(ctx, request_id, result, **kwargs)

        monkeypatch.setattr(fanout_module, "store_task_result", lift_first)
        restricted = await fanout._run(await _task(fanout, second, "restrict"))
        assert restricted.status == "done" and lifts
        held = await asyncio.wait_for(lifts[0], 10)
        assert [r["restricted"] for r in await fetch_rows(analytics, RESTRICTED)] == [True]
        assert (held.status, held.changed) == ("done", 0) and short_reference(second) in held.message, held
        events = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                                  "AND event_type = 'restriction.lift_held'", first)
        assert [(e["data"]["system"], e["data"]["by"]) for e in events] == [("analytics", second)]
