"""The evidence pack of two paths read on a real run (the demo systems, a worker, Temporal,
Postgres, the SMTP sink) as a DPO reads it: a restriction and its lift, and an erasure whose
processor asked by e-mail never answered. The pack named systems, datasets and holds by their
codes (`analytics, email_marketing`, `billing/customers`, `be_accounting`); said of the restriction
nothing of whether the subject was told before the lift (Art. 18(3)), where the lift went or whom
it told; said of the silent processor "not confirmed" and of the request, past its due date,
"not answered yet"; and did not say that Changed and Kept count a kept record twice."""

from __future__ import annotations

import asyncio
import json
import re

from temporalio import activity

from api.auth import create_token
from schemas.workflow import TaskInput, TaskRecord, TaskResult, workflow_id_for
from tests.evidence_pages import LOCAL_TIME, assert_reads_as_words, readable, section
from tests.fanout_stack import api, fanout_stack
from tests.support import eventually, staff_task_answer
from workers.dsr_worker import activity_context, build_activities, build_worker

# The policy's codes for what the pack names: none of them may reach the page's words.
CODES = ("email_marketing", "(crm)", "(billing)", "(analytics)", "be_accounting", "billing/", "statutory hold be_",
         "sql", "opendsr", "manual email", "manual_email")


def _words(page: str) -> str:
    """The page's text but its audit table (which shows the actors as recorded)."""
    return readable(page).split(" Audit trail ", 1)[0]


async def test_a_restriction_and_its_lift_say_where_they_went_and_that_the_subject_was_told_first(
        postgres, settings, pool, dev_server, tmp_path, mail_sink):
    client = dev_server.client
    async with fanout_stack(postgres, settings, client, tmp_path) as stack:
        async with build_worker(client, stack.settings, pool), api(stack) as http:
            compliance = {"Authorization": f"Bearer {await create_token(pool, 'compliance', 'Jane Peeters')}"}
            agent = {"Authorization": f"Bearer {await create_token(pool, 'agent', 'Tom Maes')}"}
            r = await http.post("/v1/requests", headers=agent, json={
                "type": "restriction", "restriction_grounds": ["needed_for_legal_claims"],
                "subject": {"email": "tracked@example.com"}, "identity_attested": True})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]

            async def resolved_by_hand(action: str, note: str) -> None:
                """OpenDSR has no restriction: compliance tells the e-mail processor by hand."""
                async def needs_staff() -> bool:
                    return bool(await pool.fetchval(
                        "SELECT true FROM system_tasks WHERE request_id = $1 AND system = 'email_marketing' "
                        "AND action = $2 AND status = 'needs_attention'", rid, action))

                await eventually(needs_staff)
                answer = await staff_task_answer(http, rid, "resolve-task", {"system": "email_marketing", "note": note},
                                                 compliance)
                assert answer.status_code == 200, answer.text

            await resolved_by_hand("restrict", "Told the e-mail processor by phone, ticket 12")

            async def in_force() -> bool:
                return bool(await pool.fetchval("SELECT true FROM restrictions WHERE request_id = $1", rid))

            await eventually(in_force)
            lift = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance,
                                   json={"reason": "The court case was settled on 3 February."})
            assert lift.status_code == 200, lift.text
            await resolved_by_hand("lift_restriction", "Told the processor of the lift by phone, ticket 13")
            await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
            page = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text
            pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()

    assert_reads_as_words(page)
    for code in CODES:
        assert code not in _words(page), code
    restriction = section(readable(page), "Decisions", "Plan")
    assert ("in the systems “Website analytics (users and page events)” and “E-mail marketing (newsletters)” (the "
            "systems that hold the "
            "subject's data). While in force it keeps the subject's records from the controller's own erasures"
            in restriction), restriction
    assert re.search(f"Lift decided {LOCAL_TIME} by Jane Peeters \\(compliance\\): “The court case was settled on 3 "
                     f"February\\.”.* The subject was told {LOCAL_TIME}, before any system was lifted \\(Art\\. 18\\(3\\) "
                     f"GDPR\\)\\. Lifted {LOCAL_TIME} in the systems? .*“E-mail marketing \\(newsletters\\)”; the recipients told of "
                     "its end: .*Google Ireland Limited", restriction), restriction
    # The lift's resolution has an event of its own in the trail (its key was once the
    # restriction's, and it was dropped as a repeat): who resolved it, when, and the note.
    results = section(readable(page), "Results per system", "Holds and kept records")
    lifted_row = results.split("E-mail marketing (newsletters) lift the restriction done", 1)[1].split(
        " restrict done", 1)[0]
    assert "no event of the audit trail names who resolved it" not in lifted_row, lifted_row
    assert re.search(f"resolved {LOCAL_TIME} by .*“Told the processor of the lift by phone, ticket 13”",
                     lifted_row), lifted_row
    # The JSON keeps the codes, with their labels beside them.
    assert pack["decisions"]["restriction"]["systems"] == ["analytics", "email_marketing"]
    assert pack["labels"]["systems"]["email_marketing"] == "E-mail marketing (newsletters)"
    assert pack["decisions"]["restriction"]["subject_told_before_lift"] is True


async def test_an_erasure_whose_processor_never_answered(postgres, settings, pool, dev_server, tmp_path, mail_sink,
                                                         monkeypatch):
    """The processor's silence until its task's completion timeout (14 days) is stood in for by its
    first poll, which answers as the task workflow does at the timeout (workflows/system_task.py);
    the request is then past its due date, as it would be after 14 silent days and more."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    client = dev_server.client
    async with fanout_stack(postgres, settings, client, tmp_path, keep_manual=("surveys",)) as stack:
        real = {a.__temporal_activity_definition.name: a for a in build_activities(activity_context(stack.settings, pool))}

        @activity.defn(name="run_system_action")
        async def asked(task: TaskInput) -> TaskResult:
            result = await real["run_system_action"](task)  # the e-mail to the processor goes out
            if task.task.system == "surveys":
                return result.model_copy(update={"poll_after_seconds": 1})
            return result

        @activity.defn(name="poll_system_action")
        async def silent(task: TaskInput) -> TaskResult:
            if task.task.system != "surveys":
                return await real["poll_system_action"](task)
            timed_out = TaskResult(
                system="surveys", action=task.task.action, status="needs_attention", attempt=task.attempt,
                message=f"no answer from the processor within {task.task.completion_timeout_days} days",
                recipient=task.task.recipient, external_id=task.external_id)
            if task.record:
                await real["record_task_result"](TaskRecord(request_id=task.request_id, result=timed_out))
            return timed_out

        async with build_worker(client, stack.settings, pool, activity_overrides=[asked, silent]), \
                api(stack) as http:
            compliance = {"Authorization": f"Bearer {await create_token(pool, 'compliance', 'Jane Peeters')}"}
            agent = {"Authorization": f"Bearer {await create_token(pool, 'agent', 'Tom Maes')}"}
            r = await http.post("/v1/requests", headers=agent, json={
                "type": "erasure", "subject": {"email": "grace@example.com"}, "identity_attested": True})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]

            async def waiting_for_staff() -> bool:
                return bool(await pool.fetchval("SELECT true FROM system_tasks WHERE request_id = $1 AND "
                                                "system = 'surveys' AND status = 'needs_attention'", rid))

            await eventually(waiting_for_staff)
            await pool.execute("UPDATE dsr_requests SET due_date = current_date - 2, current_due_date = current_date - 2"
                               " WHERE id = $1", rid)
            waiting = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text
            resolved = await http.post(f"/v1/requests/{rid}/resolve-task", headers=compliance, json={
                "system": "surveys", "note": "Phoned the survey provider: erased on 3 March"})
            assert resolved.status_code == 200, resolved.text
            await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90)
            closed = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text
            pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()

    # Waiting: overdue, and what holds the response back.
    text = readable(waiting)
    assert ("Answered on time not answered yet, and its due date has passed"
            in section(text, "Deadlines", "Decisions")), section(text, "Deadlines", "Decisions")
    results = section(text, "Results per system", "Holds and kept records")
    assert re.search(f"Survey service provider asked {LOCAL_TIME}, 0 reminder\\(s\\), never confirmed : its task has "
                     f"waited for staff since {LOCAL_TIME} \\(no answer from the processor within 14 days\\); the "
                     "response is held back until staff resolve or retry it", results), results
    assert results.count("no answer from the processor within 14 days") == 2, results  # the row once, the line once

    # Closed: late, who resolved the silent processor's task, and every code in words.
    assert_reads_as_words(closed)
    for code in CODES:
        assert code not in _words(closed), code
    text = readable(closed)
    assert "Answered on time no: closed" in section(text, "Deadlines", "Decisions")
    results = section(text, "Results per system", "Holds and kept records")
    assert re.search(f"Survey service provider asked {LOCAL_TIME}, 0 reminder\\(s\\), never confirmed : Jane Peeters "
                     f"\\(compliance\\) resolved its task by other means {LOCAL_TIME} \\(see Results\\)", results), results
    assert ("Changed and Kept overlap: Changed counts every record a system changed, including those it kept under a "
            "hold") in results
    plan = section(text, "Plan", "Results per system")
    assert "Survey service provider erase by e-mail to the processor's privacy contact" in plan, plan
    assert "Billing (customers, invoices, payments, mandates) erase directly, in its database" in plan, plan
    holds = section(text, "Holds and kept records", "Letters sent")
    assert ("Billing (customers, invoices, payments, mandates) customers 1 statutory hold: Belgian accounting and tax "
            "records (invoices, payment confirmations, mandates)") in holds, holds
    assert ("1 record(s) of customers in the system “Billing (customers, invoices, payments, mandates)”, kept under the "
            "statutory "
            "hold: Belgian accounting and tax records") in holds, holds
    labels = pack["labels"]
    assert labels["holds"]["be_accounting"].startswith("Belgian accounting and tax records")
    assert labels["datasets"]["billing"]["customers"] == "customers" and labels["systems"]["surveys"] == \
        "Survey service provider"
    assert json.dumps(pack["holds"]["kept_records"]).count("be_accounting") == 2  # the JSON keeps the codes
