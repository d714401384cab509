"""A portability request withdrawn while its package waits for an OpenDSR processor's export, whose
processor then carries the cancelled job out (activities/connectors/opendsr_calloff.py, via
activities/packages.py `_called_off`). A portability job is OpenDSR's access (its id says so), but
its task's record is stored under "portability": before, the call-off's acted-after event said
`access`, so the worker's start sweep (activities/acted_after_sweep.py) found no task to put it on,
and a task whose record the retry lost kept "called off ... cancelled before it acted".

In process: the package step (ActivityEnvironment) on a stored request, the processor stand-in of
tests/test_access_called_off.py over loopback (signed answers), the start sweep's part called as
the worker calls it."""

from __future__ import annotations

import datetime as dt
import json

from temporalio.testing import ActivityEnvironment

from activities.acted_after_call_off import acted_message
from activities.acted_after_sweep import settle_acted_after
from activities.connectors.opendsr import subject_request_id
from activities.packages import PackageActivities
from schemas.workflow import Plan, SystemTask
from tests.support import letters_for, stored_request
from tests.test_access_called_off import access_processor
from tests.untrusted_support import PROCESSOR
from workers.dsr_worker import activity_context

_CALLED_OFF = ("called off: the request was closed unanswered, and the job was cancelled at Forged processor "
               "before it acted")
_TASK = "SELECT action, status, message FROM system_tasks WHERE request_id = $1::uuid AND system = $2"


def _piece_failed(part: str, request_id: str | None, exc: Exception) -> None:
    raise exc


async def test_a_portability_job_carried_out_after_its_call_off_is_put_on_its_task(
        settings, pool, tmp_path, lifecycle_policy, mail_sink):
    """Called off (a signed 202), then carried out: the retry's event names the portability task,
    and where the retry's own record was lost (its worker killed after the event), the start sweep
    puts "carried out ... after it was called off" on that task, once; staff are alerted once."""
    async with access_processor(settings, tmp_path, lifecycle_policy) as (processor, ours):
        context = activity_context(ours, pool)
        build = PackageActivities(context).build_package
        rid = await stored_request(pool, ours, "portability-acted-after", type_="portability")
        version = await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid)
        plan = Plan(request_id=rid, policy_version=version, request_type="portability", tasks=[
            SystemTask(system=PROCESSOR, action="access", connector="opendsr", label="Forged processor")])
        job = subject_request_id(rid, PROCESSOR, "access")
        processor.jobs[job] = "pending"  # asked before the close
        await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid", rid)

        assert (await ActivityEnvironment().run(build, plan)).stopped
        assert tuple(await pool.fetchrow(_TASK, rid, PROCESSOR)) == ("portability", "needs_attention", _CALLED_OFF)
        processor.jobs[job] = "completed"  # the processor acts all the same
        assert (await ActivityEnvironment().run(build, plan)).stopped  # a retry of the step reads it
        (data,) = [json.loads(d) if isinstance(d, str) else d for d in await pool.fetchval(
            "SELECT array_agg(data) FROM audit_events WHERE request_id = $1::uuid "
            "AND event_type = 'processor.acted_after_call_off'", rid)]
        assert (data["action"], data["outcome"]) == ("portability", "completed")
        acted = ("portability", "done", acted_message("Forged processor"))
        assert tuple(await pool.fetchrow(_TASK, rid, PROCESSOR)) == acted

        # The retry's record lost (its worker killed between the event and the record): the sweep's part.
        await pool.execute("UPDATE system_tasks SET status = 'needs_attention', message = $3 "
                           "WHERE request_id = $1::uuid AND system = $2", rid, PROCESSOR, _CALLED_OFF)
        assert await settle_acted_after(context, _piece_failed, older_than=dt.timedelta(0)) >= 1
        assert tuple(await pool.fetchrow(_TASK, rid, PROCESSOR)) == acted
        assert len(letters_for(mail_sink, rid, "staff_alert")) == 1
