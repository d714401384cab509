"""A restriction (or rectification, lifting, objection) whose worker dies after a system committed
it, before the step reported back; and a lift whose worker dies once it put on record that another
restriction holds a system. The outcome was kept inside the system's transaction, before it
committed, as an erasure's is; the retry, which finds every row already restricted and changes
nothing, reports what the first try did. Before, it reported "0 changed": the evidence, the
request's page and the letters that list the systems a request changed (a withdrawal's, a
denial's) left out a system whose rows were restricted."""

from __future__ import annotations

import asyncio
import html

from activities.fanout import FanoutActivities
from devstack.demo.subjects import demo_subjects
from dsrflow.domain.references import short_reference
from schemas.workflow import StartRequest, TaskInput, workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.process_support import died, worker_to_kill
from tests.support import console_sign_in, fetch_rows, staff_headers, stored_request, task_result
from tests.test_restriction_lifecycle import LIFT, _restrict, _until
from workers.dsr_worker import activity_context, build_worker

# Ada's rows in the demo systems (tests/test_sql_connector.py restricts them one system at a time).
ADA_ROWS = {"crm": 4, "billing": 8, "analytics": 41}


async def test_a_restriction_survives_a_worker_killed_after_a_system_committed_it(
        postgres, settings, dev_server, pool, tmp_path):
    client = dev_server.client
    async with fanout_stack(postgres, settings, client, tmp_path) as stack, api(stack) as http:
        async with worker_to_kill(stack.settings, client, tmp_path, failpoints="task-effect-committed~billing:restrict") as worker:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "restriction", "restriction_grounds": ["needed_for_legal_claims"],
                "subject": {"email": "ada@example.com"}, "identity_attested": True})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await died(worker, tmp_path)
        async with build_worker(client, stack.settings, pool):
            results = {system: await task_result(http, pool, rid, system, lambda t: t["status"] == "done")
                       for system in ADA_ROWS}
    assert {system: result["changed"] for system, result in results.items()} == ADA_ROWS
    assert results["billing"]["found"] == 8


async def test_a_lift_held_by_another_restriction_is_reported_once_after_a_worker_killed_on_it(
        postgres, settings, dev_server, pool, mail_sink, tmp_path):
    """The worker dies right after a lift's task found analytics held by the subject's other
    restriction and put that on record, before the task's result was kept. The retry gives the
    same answer: analytics stays restricted, one `restriction.lift_held`, the task
    done with nothing changed, and the lift's record names analytics as held."""
    client = dev_server.client
    email = next(s.email for s in demo_subjects() if s.in_analytics and s.index > 900)
    restricted = f"SELECT restricted FROM users WHERE email = '{email}'"
    async with fanout_stack(postgres, settings, client, tmp_path) as stack, api(stack) as http:
        async with build_worker(client, stack.settings, pool):
            claims = await _restrict(http, pool, mail_sink, email, ["needed_for_legal_claims"])
            objection = await _restrict(http, pool, mail_sink, email, ["objection_pending"])
        # The lift's tasks of sql systems run in the workflow task that answers the call (local
        # activities): the call is answered by the next worker.
        async with worker_to_kill(stack.settings, client, tmp_path, failpoints="lift-held~analytics") as worker:
            lifting = asyncio.ensure_future(http.post(f"/v1/requests/{objection}/lift-restriction",
                                                      headers=await staff_headers(pool, "compliance"), json=LIFT))
            await died(worker, tmp_path)
        async with build_worker(client, stack.settings, pool):
            assert (await lifting).status_code == 200
            result = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(objection)).result(), 60)
    assert [row["restricted"] for row in await fetch_rows(stack.databases["analytics"], restricted)] == [True]
    (held,) = [t for t in result["results"] if t["action"] == "lift_restriction" and t["system"] == "analytics"]
    assert (held["status"], held["changed"]) == ("done", 0) and short_reference(claims) in held["message"]
    events = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1::uuid "
                              "AND event_type LIKE 'restriction.%'", objection)
    assert [e["data"]["system"] for e in events if e["event_type"] == "restriction.lift_held"].count("analytics") == 1
    (lifted,) = [e["data"] for e in events if e["event_type"] == "restriction.lifted"]
    assert "analytics" in lifted["held"]


async def test_a_lift_killed_before_giving_back_the_systems_lock_is_restricted_again_once(
        postgres, settings, dev_server, pool, mail_sink, tmp_path):
    """The worker dies right after a lift un-restricted analytics, still holding the system's lock
    (failpoint restriction-acted), before the task's result was kept (the lock is held through the
    record since hEA: a worker killed anywhere between the check and the record dies holding it).
    The lock goes with the dead worker's session (no advisory lock left once it died): a new
    restriction of the subject, started now, restricts analytics at once, after the lift. The
    lift's retry (the next worker) finds that restriction under way and leaves
    analytics to it, and its record says what happened: the task reports what the first try lifted
    and that it was restricted again, one `restriction.lift_held` (the timeline: "restricted again:
    restriction <ref> started while this lift ran"), analytics not among the lift's systems lifted."""
    client = dev_server.client
    email = [s.email for s in demo_subjects() if s.in_analytics and s.index > 900][1]
    restricted = f"SELECT restricted FROM users WHERE email = '{email}'"
    async with fanout_stack(postgres, settings, client, tmp_path) as stack, api(stack) as http:
        async with build_worker(client, stack.settings, pool):
            first = await _restrict(http, pool, mail_sink, email, ["needed_for_legal_claims"])
        async with worker_to_kill(stack.settings, client, tmp_path,
                                  failpoints=f"restriction-acted~analytics:lift_restriction:{first}") as worker:
            lifting = asyncio.ensure_future(http.post(f"/v1/requests/{first}/lift-restriction",
                                                      headers=await staff_headers(pool, "compliance"), json=LIFT))
            await died(worker, tmp_path)
        assert [row["restricted"] for row in await fetch_rows(stack.databases["analytics"], restricted)] == [False]
        assert await _until(lambda: _no_advisory_lock(pool), 5)  # its session ended, no lease to run out
        # No worker runs: the new restriction's analytics task, as its workflow would run it.
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        second = await stored_request(pool, stack.settings, "again", "restriction", email=email,
                                      restriction_grounds=["objection_pending"])
        version = await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", second)
        plan = await fanout._plan(StartRequest(request_id=second, policy_version=version))
        (task,) = [t for t in plan.tasks if t.system == "analytics"]
        again = await asyncio.wait_for(fanout._run(TaskInput(request_id=second, policy_version=plan.policy_version,
                                                             task=task, record=True)), 10)
        assert again.status == "done" and again.changed > 0
        async with build_worker(client, stack.settings, pool):
            assert (await lifting).status_code == 200
            result = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(first)).result(), 60)
        await console_sign_in(http, pool, "compliance")
        page = " ".join(html.unescape((await http.get(f"/console/requests/{first}")).text).split())
        assert (f"Website analytics (users and page events): restricted again: restriction {short_reference(second)} "
                "started while this lift ran") in page
    assert [row["restricted"] for row in await fetch_rows(stack.databases["analytics"], restricted)] == [True]
    (lift,) = [t for t in result["results"] if t["action"] == "lift_restriction" and t["system"] == "analytics"]
    assert lift["status"] == "done" and lift["changed"] > 0, lift
    assert f"restricted again by the subject's restriction {short_reference(second)}" in lift["message"]
    events = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1::uuid "
                              "AND event_type LIKE 'restriction.%'", first)
    # (crm and billing alike, where the killed workflow task's other local activities lifted too:
    # the new restriction's tasks there restrict them when they run.)
    assert [e["data"] for e in events if e["event_type"] == "restriction.lift_held"
            and e["data"]["system"] == "analytics"] == [{"system": "analytics", "by": second, "lifted_before": True}]
    (lifted,) = [e["data"] for e in events if e["event_type"] == "restriction.lifted"]
    assert "analytics" in lifted["held"]


async def _no_advisory_lock(pool) -> bool:
    return not await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
