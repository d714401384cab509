"""An access request withdrawn while its package waits for an OpenDSR processor's export: the package
is not built, and the job is called off there, as an erasure's is at the close (the same DELETE and
outcomes: activities/connectors/opendsr_calloff.py `call_off_access`, activities/packages.py
`_called_off`). Before, the package step polled the job to its end, read the subject's data into a
package for a request the subject had withdrawn, and the job was never called off.

The package step runs in process (ActivityEnvironment) on a stored request, against a processor
stand-in over loopback whose status and call-off answers are signed; one run is killed (a process
of its own, SIGKILL at a failpoint) right after the processor's 202, before anything is on record."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.testing import ActivityEnvironment

from activities.connectors.opendsr import subject_request_id
from activities.packages import PackageActivities
from dsrflow.settings import Settings
from schemas.workflow import Plan, SystemTask
from tests.fanout_stack import served
from tests.process_support import activity_killed_at
from tests.processor_identity import processor_identity
from tests.support import stored_request
from tests.untrusted_support import PROCESSOR, FakeProcessor, processor_policy
from workers.dsr_worker import activity_context

_CALLED_OFF = ("called off: the request was closed unanswered, and the job was cancelled at Forged processor "
               "before it acted")


@dataclass
class AccessProcessor(FakeProcessor):
    """Jobs kept as asked (`jobs`: id -> status), pending until called off: a DELETE cancels a
    pending one (signed 202) and refuses any other (400); a job it never had is 404."""

    jobs: dict[str, str] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def submit(request: Request) -> Response:
            job = (await request.json())["subject_request_id"]
            self.jobs.setdefault(job, "pending")
            return JSONResponse({"subject_request_id": job, "controller_id": "c"}, status_code=201)

        async def job(request: Request) -> Response:
            rid = request.path_params["rid"]
            if rid not in self.jobs:
                return JSONResponse({"error": {"code": 404, "message": "no such request"}}, status_code=404)
            if request.method == "DELETE":
                self.deletes.append(rid)
                if self.jobs[rid] != "pending":
                    return JSONResponse({"error": {"code": 400, "message": "not pending"}}, status_code=400)
                self.jobs[rid] = "cancelled"
                body, headers = self.signed({"subject_request_id": rid, "controller_id": "c",
                                             "received_time": "2026-12-07T12:00:00Z", "api_version": "2.0"})
                return Response(body, status_code=202, headers=headers)
            body, headers = self.signed({"subject_request_id": rid, "request_status": self.jobs[rid],
                                         "controller_id": "c"})
            return Response(body, headers=headers)

        app = super().app()
        app.router.routes[:0] = [Route("/opendsr/requests", submit, methods=["POST"]),
                                 Route("/opendsr/requests/{rid}", job, methods=["GET", "DELETE"])]
        return app


@contextlib.asynccontextmanager
async def access_processor(settings, tmp_path, lifecycle_policy) -> AsyncIterator[tuple[AccessProcessor, Settings]]:
    """The OpenDSR processor served on loopback, and settings whose policy has it as PROCESSOR,
    polled every 50 ms."""
    key_pem, cert_pem = processor_identity()
    processor = AccessProcessor(key_pem, cert_pem)
    async with served(processor.app()) as url:
        processor.url = url
        policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{url}/opendsr",
                                                               "poll_interval_seconds": 0.05})
        yield processor, settings.model_copy(update={"policy_path": policy})


async def _access(pool, ours, label: str) -> tuple[Plan, str]:
    """A stored access request whose plan reads the processor alone: (its plan, its job's id)."""
    rid = await stored_request(pool, ours, label, type_="access")
    version = await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid)
    plan = Plan(request_id=rid, policy_version=version, request_type="access", tasks=[
        SystemTask(system=PROCESSOR, action="access", connector="opendsr", label="Forged processor")])
    return plan, subject_request_id(rid, PROCESSOR, "access")


async def _close(pool, rid: str) -> None:
    await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid", rid)


async def _on_record(pool, rid: str) -> tuple[list, list, int]:
    """The request's access task records, its call-off events' outcomes, and its packages."""
    tasks = [tuple(r) for r in await pool.fetch(
        "SELECT status, message FROM system_tasks WHERE request_id = $1::uuid AND system = $2", rid, PROCESSOR)]
    outcomes = [r["o"] for r in await pool.fetch(
        "SELECT data->>'outcome' AS o FROM audit_events WHERE request_id = $1::uuid "
        "AND event_type = 'processor.called_off' ORDER BY seq", rid)]
    return tasks, outcomes, await pool.fetchval("SELECT count(*) FROM packages WHERE request_id = $1::uuid", rid)


async def test_a_withdrawn_access_request_calls_its_processors_job_off(settings, pool, tmp_path, lifecycle_policy):
    """Withdrawn while the package polls the pending job: the step stops at its next poll, the job
    is cancelled at the processor (the subject's export is never read), the processor's task says
    so, one event, no package. A step killed right after the processor's 202 leaves nothing on
    record; the next try (the request closed) asks nothing new, reads the job cancelled, and records
    it once. A request closed before its job was asked has nothing called off."""
    async with access_processor(settings, tmp_path, lifecycle_policy) as (processor, ours):
        build = PackageActivities(activity_context(ours, pool)).build_package

        plan, job = await _access(pool, ours, "access-withdrawn")
        building = asyncio.create_task(ActivityEnvironment().run(build, plan))
        for _ in range(200):
            if job in processor.jobs or building.done():
                break
            await asyncio.sleep(0.05)
        assert processor.jobs == {job: "pending"}, building
        await _close(pool, plan.request_id)
        info = await asyncio.wait_for(building, 30)
        assert (info.stopped, info.records) == (True, 0)
        assert (processor.jobs[job], processor.deletes) == ("cancelled", [job])
        assert await _on_record(pool, plan.request_id) == ([("needs_attention", _CALLED_OFF)], ["cancelled"], 0)

        never, never_job = await _access(pool, ours, "access-closed-first")
        await _close(pool, never.request_id)
        assert (await ActivityEnvironment().run(build, never)).stopped
        assert never_job not in processor.jobs and never_job not in processor.deletes
        assert await _on_record(pool, never.request_id) == ([], [], 0)

        killed, killed_job = await _access(pool, ours, "access-killed")
        processor.jobs[killed_job] = "pending"  # asked by a try that died before the close
        await _close(pool, killed.request_id)
        await activity_killed_at(ours, f"opendsr-called-off~{killed_job}", "activities.packages:PackageActivities.build_package",
                                 killed)
        assert processor.jobs[killed_job] == "cancelled"
        assert await _on_record(pool, killed.request_id) == ([], [], 0)
        for _ in range(2):  # the next try, and one after it whose answer was lost
            assert (await ActivityEnvironment().run(build, killed)).stopped
        assert processor.deletes.count(killed_job) == 3  # each try asks again: the DELETE is idempotent
        assert await _on_record(pool, killed.request_id) == ([("needs_attention", _CALLED_OFF)], ["cancelled"], 0)
