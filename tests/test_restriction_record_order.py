"""What acted last on a system's restriction is recorded last, for the lifts outside a task: a held
lift the start sweep carries out (activities/held_lifts.py) and a close's un-restriction of records
a released hold kept (activities/called_off_marks.py `lift_at_close`). Each holds the system's
restriction lock until its record (activities/restriction_lock.py); a restriction of the subject
that starts after the lift's check waits for it, then restricts and records. Before (hEA), the lock
ended with the lift's call and the restriction, no longer held back, recorded first: the trail, read
in order, said lifted last of a system left restricted. Forced here every time: the lift's record
is held back until the restriction waits for the lock or has ended (tests/test_restriction_lift_races.py
`restricting_after`, which shows the same for a task's lift).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.testing import ActivityEnvironment

import activities.held_lifts as held_lifts
from activities import called_off_marks
from activities.fanout import FanoutActivities
from activities.held_lifts import release_held_lifts
from activities.lifecycle import LifecycleActivities
from tests.fanout_stack import fanout_stack_alone
from tests.support import fetch_rows
from tests.test_called_off_at_close import _released_while_open
from tests.test_deferred_closed_unanswered import EMAIL as ADA
from tests.test_deferred_closed_unanswered import RESTRICTED as ADA_RESTRICTED
from tests.test_deferred_closed_unanswered import stack  # noqa: F401
from tests.test_held_lift_release import ENDINGS, _held, _restricted
from tests.test_restriction_lift_races import _restriction, _task, restricting_after, restricting_once_checked
from workers.dsr_worker import activity_context

# The lift's record (first) and the restriction's task (second) at `system`, in record order.
ORDER = """SELECT event_type FROM audit_events WHERE data ->> 'system' = $3 AND
           (request_id = $1::uuid AND event_type = $4 OR request_id = $2::uuid AND event_type = 'task.done')
           ORDER BY seq"""


def _restricting_meanwhile(monkeypatch, pool, module, fanout: FanoutActivities, rid: str,
                           system: str) -> list[asyncio.Future]:
    """`module`'s check, then restriction `rid`'s task at `system` started; `module`'s record held
    back until that task waits for the lock or ended: the task's run, once started."""
    restricting: list[asyncio.Future] = []
    append_event = module.append_event

    async def restrict() -> Any:
        return await fanout._run(await _task(fanout, rid, "restrict", system=system))

    async def recorded(*args: Any, **kwargs: Any) -> None:
        await restricting_after(pool, restricting)
        await append_event(*args, **kwargs)

    monkeypatch.setattr(module, "restricted_elsewhere", restricting_once_checked(
        pool, module.restricted_elsewhere, restricting, restrict))
    monkeypatch.setattr(module, "append_event", recorded)
    return restricting


async def test_a_restriction_that_starts_after_a_held_lifts_check_is_recorded_after_the_lift(
        postgres, settings, dev_server, tmp_path, monkeypatch):
    """The sweep has checked that nothing holds analytics any more; a third restriction of the
    subject is then planned and its analytics task runs: analytics ends restricted, and
    `restriction.lift_released` is recorded before the restriction's task."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift") as (running, pool):
        fanout = FanoutActivities(activity_context(running.settings, pool))
        first, second = await _held(fanout, pool, running.settings)
        await pool.execute(ENDINGS["cancelled"], second)
        third = await _restriction(pool, running.settings, "third")
        restricting = _restricting_meanwhile(monkeypatch, pool, held_lifts, fanout, third, "analytics")
        assert await release_held_lifts(fanout.ctx) == 1
        assert (await asyncio.wait_for(restricting[0], 10)).changed > 0
        assert await _restricted(running) == [True]
        order = await pool.fetch(ORDER, first, third, "analytics", "restriction.lift_released")
        assert [r["event_type"] for r in order] == ["restriction.lift_released", "task.done"]


async def test_a_restriction_that_starts_after_the_closes_check_is_recorded_after_the_unrestriction(
        stack, monkeypatch):  # noqa: F811
    """The close of Ada's withdrawn erasure has checked that no restriction of hers holds the CRM;
    one is then planned and its CRM task runs: her contacts end restricted, and
    `erasure.called_off_unrestricted` is recorded before the restriction's task."""
    stack, pool = stack
    rid, contacts, close = await _released_while_open(stack, pool)
    fanout = FanoutActivities(activity_context(stack.settings, pool))
    again = await _restriction(pool, stack.settings, "again", email=ADA)
    restricting = _restricting_meanwhile(monkeypatch, pool, called_off_marks, fanout, again, "crm")
    await ActivityEnvironment().run(LifecycleActivities(fanout.ctx).transition, close)
    assert (await asyncio.wait_for(restricting[0], 10)).changed > 0
    assert dict((await fetch_rows(stack.databases["crm"], ADA_RESTRICTED))[0]) == {"marked": contacts, "n": contacts}
    order = await pool.fetch(ORDER, rid, again, "crm", "erasure.called_off_unrestricted")
    assert [r["event_type"] for r in order] == ["erasure.called_off_unrestricted", "task.done"]
