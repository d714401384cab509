"""Work that runs on a request after it closed, by design: a restriction's lift (completed, or
closed part-way with the restriction in force: workflows/restriction_lifecycle.py). The guards
that keep a withdrawn, cancelled or denied request's own tasks from reaching a system must not
stop it. The SaaS's (the run's journal, the try after an outage): tests/test_held_lift_release.py.

Here the processor asked by e-mail (`manual_email`): the lift's e-mail carries a link, whose
page refused the processor's confirmation ("Link expired: the request it belongs to is closed"),
as it must for a closed request's own tasks; the lift's task then waited for its completion
timeout and staff, the processor having done what it was asked. The fan-out's activities are
called as the task's workflow calls them (tests/test_held_lift_release.py), the link answered by
the real API on loopback.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from activities.fanout import FanoutActivities
from activities.request_start_sweep import flag_ended_workflows
from dsrflow.domain.audit import append_event
from dsrflow.domain.failing_workflows import record_recoveries
from dsrflow.domain.processor_answers import untold_answers
from schemas.workflow import RUN_CONTINUES, StartRequest, TaskInput, TaskRecord, TaskResult, workflow_id_for
from tests.fanout_stack import api, fanout_stack_alone
from tests.support import eventually, fetch_rows, letters_for, staff_headers, text_of
from tests.test_held_lift_release import ENDINGS, SAAS, stripe  # noqa: F401 (the fixture)
from tests.test_restriction_lifecycle import LIFT, _restrict, _until, _view
from tests.test_restriction_lift_races import EMAIL, _in_force, _task
from workers.dsr_worker import activity_context, build_worker

_LINK = re.compile(r"http://\S+(/v1/callbacks/manual/[0-9a-f]{64})")


async def _lift_at(fanout: FanoutActivities, rid: str, system: str) -> TaskInput:
    """The lift's task at `system`, as the lift's fan-out runs it (its result kept by the activity)."""
    lift = await _task(fanout, rid, "lift_restriction")
    plan = await fanout._plan(StartRequest(request_id=rid, policy_version=lift.policy_version))
    task = next(t for t in plan.tasks if t.system == system)
    return lift.model_copy(update={"task": task.model_copy(update={"action": "lift_restriction"})})


@pytest.mark.parametrize("ended", ["completed", "cancelled"])
async def test_a_processor_asked_by_email_confirms_the_lift_of_a_closed_restriction(
        postgres, settings, dev_server, tmp_path, mail_sink, monkeypatch, ended):
    """The lift asks the survey provider by e-mail; its privacy team follows the link and confirms:
    the page takes it, the confirmation is on record, and the lift's task, polling, is done. A link
    of the restriction's own task on the closed request still records nothing."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "liftmail",
                                  keep_manual=("surveys",)) as (stack, pool), api(stack) as http:
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        rid = await _in_force(fanout, pool, stack.settings)  # completed
        lift = await _lift_at(fanout, rid, "surveys")
        # The restriction's own task at the processor, asked before the close (once its request was
        # closed unanswered, a try of it would send nothing: tests/test_closed_request_tries.py).
        restrict = lift.task.model_copy(update={"action": "restrict"})
        own = await fanout._run(lift.model_copy(update={"task": restrict}))
        assert own.status == "pending", own
        if ended != "completed":
            await pool.execute(ENDINGS[ended], rid)
        asked = await fanout._run(lift)
        assert asked.status == "pending" and asked.external_id, asked
        def lift_mails() -> list:
            return [m for m in letters_for(mail_sink, rid, "processor_request")
                    if "end of a restriction of processing" in m["Subject"]]

        async def lift_asked() -> bool:
            return bool(lift_mails())

        await eventually(lift_asked, timeout=10)
        (mail,) = lift_mails()
        (link,) = {m.group(1) for m in _LINK.finditer(text_of(mail))}

        page = await http.get(link)
        assert page.status_code == 200 and '<form method="post">' in page.text, html.unescape(page.text)
        confirmed = await http.post(link, data={"note": "Restriction lifted in our panel."})
        assert confirmed.status_code == 200 and "confirmation recorded" in confirmed.text, confirmed.text
        assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid AND "
                                   "event_type = 'processor.confirmed'", rid) == 1
        # An API that died before telling the task: the worker's start sweep tells it (here it has
        # no workflow to tell), as it tells an open request's.
        assert [(a.system, a.action) for a in await untold_answers(pool, older_than=timedelta(0))
                if a.request_id == rid] == [("surveys", "lift_restriction")]
        # The task's poll (its workflow is told at once, and polls as well) reads the answer.
        polled = await fanout.poll_system_action(lift.model_copy(update={"external_id": asked.external_id}))
        assert polled.status == "done", polled
        assert await pool.fetchval("SELECT status FROM system_tasks WHERE request_id = $1::uuid AND "
                                   "system = 'surveys' AND action = 'lift_restriction'", rid) == "done"
        again = await http.post(link, data={"note": "twice"})
        assert again.status_code == 200 and "Already confirmed" in again.text
        assert len(letters_for(mail_sink, rid, "processor_request")) == 2  # the restriction's, the lift's

        # The restriction's own task's link records nothing on the closed request (nor once the
        # lift has), as any closed request's.
        (own_link,) = {m.group(1) for mail in letters_for(mail_sink, rid, "processor_request")
                       for m in _LINK.finditer(text_of(mail))} - {link}
        refused = await http.post(own_link, data={"note": "late"})
        assert refused.status_code == 403 and "the request it belongs to is closed" in refused.text, refused.text


async def test_a_saas_lift_longer_than_a_slice_ends(postgres, settings, dev_server, tmp_path, stripe):  # noqa: F811
    """A lift at a SaaS whose run needs more than one attempt's slice (here a slice per request:
    Stripe's reads of the subject, then a change for each of their three customers) carries on
    from its journal at the next attempt, as any long run does, and its task's end takes the
    journal. The journal kept nothing of a closed request's run, so each attempt began again from
    the first read: the lift never reached a change, and its task went on slicing for ever."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "longlift",
                                  extra_systems=SAAS) as (stack, pool):
        short = stack.settings.model_copy(update={"http_run_slice_seconds": 0.001})
        fanout = FanoutActivities(activity_context(short, pool))
        data = stripe.app.state.data
        customers = [stripe.customer, *(data.customers[data.add_customer(EMAIL, "Lieve Wouters")] for _ in range(2))]
        for customer in customers:
            customer["metadata"]["dsr_restricted"] = "true"
        # Cancelled after it restricted the subject (a completed one's lift takes the same path).
        rid = await _in_force(fanout, pool, stack.settings)
        await pool.execute(ENDINGS["cancelled"], rid)
        lift = await _lift_at(fanout, rid, "billing_stripe")
        slices = 0
        while True:
            slices += 1
            assert slices <= 12, f"still lifting after {slices - 1} slices: {stripe.changes} changes sent"
            try:
                lifted = await fanout._run(lift)
                break
            except ApplicationError as error:
                assert error.type == RUN_CONTINUES, error
        assert (lifted.status, lifted.changed) == ("done", 3), lifted
        assert stripe.changes == 3 and not any(c["metadata"].get("dsr_restricted") == "true" for c in customers)
        assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1::uuid", rid) == 0


async def test_a_restriction_in_force_whose_workflow_was_terminated_is_flagged_resumed_and_lifted(
        postgres, settings, dev_server, tmp_path, mail_sink):
    """A completed restriction's workflow keeps it until compliance lifts it (months, maybe). An
    operator terminates it: the start sweep flags it, compliance resumes it, and the lift then
    reaches the systems. Before, the sweep and the resume took the closed request for one with
    nothing left to run: no flag, no alert, resume refused ("the request is closed"), and the
    lift answered 409 for good, the data restricted with nobody told; and a stretch of failures
    of its workflow never ended on its timeline."""
    client = dev_server.client
    async with fanout_stack_alone(postgres, settings, client, tmp_path, "liftresume") as (stack, pool), \
            build_worker(client, stack.settings, pool), api(stack) as http:
        compliance = await staff_headers(pool, "compliance")
        rid = await _restrict(http, pool, mail_sink, "tracked@example.com", ["needed_for_legal_claims"])
        handle = client.get_workflow_handle(workflow_id_for(rid))
        await handle.terminate("by mistake")
        refused = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
        assert refused.status_code == 409, refused.text

        ctx = activity_context(stack.settings, pool)

        async def flagged() -> bool:  # the server's list of ended runs catches up within a second or so
            return await flag_ended_workflows(ctx, client, older_than=timedelta(0)) == 1

        assert await _until(flagged, 20)
        stopped = (await _view(http, pool, rid))["stopped"]
        assert "after the request closed, with its restriction still in force" in stopped["message"], stopped
        alerts = letters_for(mail_sink, rid, "staff_alert")
        assert len(alerts) == 2  # the restriction task's, the flag's
        # What stopped with it is the restriction's lift, not a deadline (it has none left to run on).
        told = " ".join(text_of(next(m for m in alerts if "workflow" in text_of(m))).split())
        assert "the restriction it put in place is still in force" in told and "deadline" not in told, told
        resumed = await http.post(f"/v1/requests/{rid}/resume", headers=compliance,
                                  json={"reason": "Terminated by mistake during maintenance"})
        assert resumed.status_code == 200, resumed.text

        assert (await _view(http, pool, rid))["stopped"] is None
        # A stretch of failures of its workflow (as the start sweep records one) ends on its
        # timeline once the workflow carries on, as an open request's does.
        async with pool.acquire() as conn:
            await append_event(conn, event_key=f"{rid}:workflow-failing:test", request_id=rid,
                               event_type="request.workflow_failing", actor="sweep",
                               data={"since": datetime.now(UTC).isoformat(), "attempts": 3, "unheld_key": None})
        assert rid in await record_recoveries(pool, client, set(), datetime.now(UTC))
        lifted = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
        assert lifted.status_code == 200, lifted.text

        async def lifted_in_analytics() -> bool:
            analytics = "SELECT restricted FROM users WHERE email = 'tracked@example.com'"
            return [row["restricted"] for row in await fetch_rows(stack.databases["analytics"], analytics)] == [False]

        assert await _until(lifted_in_analytics, 20)
        await handle.terminate("the test ends here: the e-mail processor's lift waits for staff")


async def test_a_saas_lift_staff_resolved_meanwhile_sends_nothing_more(postgres, settings, dev_server, tmp_path,
                                                                       stripe):  # noqa: F811
    """Staff resolve the lift's task at Stripe (they cleared the mark in its dashboard) while a try
    of it is under way (here: about to begin, as a try after an outage would): the try stops at its
    first change, answering with their resolution, as on an open request, and leaves no journal.
    It read the closed request as the only reason to stop, which a lift does not heed, so it never
    saw the resolution: it went on sending, and its journal rows outlived the result."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "liftresolved",
                                  extra_systems=SAAS) as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        rid = await _in_force(fanout, pool, stack.settings)
        await pool.execute(ENDINGS["cancelled"], rid)
        lift = await _lift_at(fanout, rid, "billing_stripe")
        await fanout.record_task_result(TaskRecord(request_id=rid, result=TaskResult(
            system="billing_stripe", action="lift_restriction", status="done",
            message="resolved by staff: cleared in Stripe's dashboard")))
        answered = await fanout._run(lift)
        assert (answered.status, answered.message) == ("done", "resolved by staff: cleared in Stripe's dashboard")
        assert stripe.changes == 0
        assert await pool.fetchval("SELECT count(*) FROM http_run_journal WHERE request_id = $1::uuid", rid) == 0
