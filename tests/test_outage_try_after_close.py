"""A try of a task that waited on its unreachable SaaS (TaskInput.after_outage), made after its
request closed (activities/fanout.py): it sends nothing more, and says so, unless an earlier try of
the same attempt had already committed its effect (its worker died before recording it): that one
is done, and the record says done, not "not tried again". In-process, on the session's database."""

from __future__ import annotations

import uuid

from temporalio.testing import ActivityEnvironment

from activities.fanout import FanoutActivities
from activities.task_outcomes import save_outcome
from schemas.workflow import SystemTask, TaskInput, TaskResult
from tests.support import stored_request
from workers.dsr_worker import activity_context


async def test_a_try_after_the_close_reports_an_effect_that_committed_and_sends_nothing_otherwise(pool, settings):
    rid = await stored_request(pool, settings, "outage-closed", "erasure")
    version = await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1", uuid.UUID(rid))

    def task(system: str) -> TaskInput:
        return TaskInput(request_id=rid, record=True, after_outage=True, policy_version=version,
                         task=SystemTask(system=system, action="erase", connector="sql", label=system))

    committed = TaskResult(system="crm", action="erase", status="done", found=2, changed=2, attempt=1)
    await save_outcome(pool, task("crm"), committed, committed=True)
    await pool.execute("UPDATE dsr_requests SET closed_at = now() WHERE id = $1", uuid.UUID(rid))
    fanout = FanoutActivities(activity_context(settings, pool))

    done = await ActivityEnvironment().run(fanout.run_system_action, task("crm"))
    untried = await ActivityEnvironment().run(fanout.run_system_action, task("billing"))

    assert (done.status, done.found, done.changed) == ("done", 2, 2), done
    assert untried.status == "needs_attention" and untried.message.startswith("not tried again: the request was closed")
    stored = {r["system"]: r["status"] for r in await pool.fetch(
        "SELECT system, status FROM system_tasks WHERE request_id = $1", uuid.UUID(rid))}
    assert stored == {"crm": "done", "billing": "needs_attention"}
