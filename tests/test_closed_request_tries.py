"""A task's try that begins once its request was closed unanswered (withdrawn, cancelled, denied)
reaches no system, whatever its connector's kind: a try the workflow scheduled before it heard of
the close, an activity's retry after its worker died, a local activity run again after its
workflow task timed out. The fan-out's activity is called as the workflow's tasks call it
(tests/test_restriction_lift_races.py), its request closed in the database first as its workflow
leaves it (tests/test_held_lift_release.py ENDINGS).

Before, only an http system's run stopped (its journal, activities/connectors/http_journal.py):
a `sql` system erased the subject's rows, a processor asked by e-mail (`manual_email`) was e-mailed
with a link that its closed request had already expired, and an OpenDSR processor was submitted an
erasure job, each after the subject had withdrawn the request.
"""

from __future__ import annotations

import pytest

from activities.connectors.manual_email import confirmation_token, external_id_for
from activities.fanout import FanoutActivities
from devstack.demo.subjects import demo_subjects
from schemas.workflow import StartRequest, TaskInput
from tests.fanout_stack import fanout_stack
from tests.support import fetch_rows, letters_for, stored_request
from workers.dsr_worker import activity_context

SURVEYS_CONTACT = "privacy@surveys.example"
# Each stack's demo systems are seeded afresh: any subject in the CRM and the e-mail processor.
EMAIL = next(s.email for s in demo_subjects() if s.in_crm and s.in_email_marketing)
ENDINGS = {
    "withdrawn": "UPDATE dsr_requests SET status = 'cancelled', closed_at = now(), "
                 "details = details || '{\"withdrawn_by_subject\": true}' WHERE id = $1::uuid",
    "denied": "UPDATE dsr_requests SET status = 'denied', closed_at = now() WHERE id = $1::uuid",
}


@pytest.fixture
async def stack(postgres, settings, dev_server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",)) as running:
        yield running


async def test_a_try_that_begins_after_the_request_closed_reaches_no_system(stack, pool, mail_sink):
    """An erasure planned for every system, then closed; each system's task's try begins after the
    close: no CRM row erased, no e-mail to the survey processor, no job at the e-mail processor;
    each task needs attention, saying it was not run because the request was closed. Then the same
    tries on an erasure that completed (a staff retry after the answer) do act: the close that
    stops them is a withdrawal's or a refusal's only."""
    fanout = FanoutActivities(activity_context(stack.settings, pool))
    crm = f"SELECT count(*) AS n FROM contacts WHERE lower(email) = lower('{EMAIL}')"
    jobs = "SELECT count(*) AS n FROM dsr_requests"
    (before,) = await fetch_rows(stack.databases["crm"], crm)
    assert before["n"] > 0
    for ending, closed in ENDINGS.items():
        rid = await stored_request(pool, stack.settings, ending, "erasure", email=EMAIL)
        plan = await fanout._plan(StartRequest(request_id=rid, policy_version=str(await pool.fetchval(
            "SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid))))
        kinds = {t.system: t.connector for t in plan.tasks}
        assert {kinds["crm"], kinds["surveys"], kinds["email_marketing"]} == {"sql", "manual_email", "opendsr"}
        await pool.execute(closed, rid)
        results = {t.system: await fanout._run(TaskInput(request_id=rid, policy_version=plan.policy_version,
                                                        task=t, record=True))
                   for t in plan.tasks if t.system in ("crm", "surveys", "email_marketing")}
        assert (await fetch_rows(stack.databases["crm"], crm))[0]["n"] == before["n"], ending
        assert letters_for(mail_sink, rid, "processor_request") == [], ending
        assert (await fetch_rows(stack.databases["email_marketing"], jobs))[0]["n"] == 0, ending
        for system, result in results.items():
            assert result.status == "needs_attention" and "the request was closed before" in (result.message or ""), \
                (ending, system, result)
        stored = {r["system"]: r["status"] for r in await pool.fetch(
            "SELECT system, status FROM system_tasks WHERE request_id = $1::uuid", rid)}
        assert stored == dict.fromkeys(results, "needs_attention"), (ending, stored)

    rid = await stored_request(pool, stack.settings, "completed", "erasure", email=EMAIL)
    plan = await fanout._plan(StartRequest(request_id=rid, policy_version=str(await pool.fetchval(
        "SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid))))
    await pool.execute("UPDATE dsr_requests SET status = 'completed', closed_at = now() WHERE id = $1::uuid", rid)
    for task in plan.tasks:
        if task.system in ("crm", "surveys"):
            await fanout._run(TaskInput(request_id=rid, policy_version=plan.policy_version, task=task, record=True))
    assert (await fetch_rows(stack.databases["crm"], crm))[0]["n"] < before["n"]
    assert len(letters_for(mail_sink, rid, "processor_request")) == 1


async def test_a_processor_asked_by_e_mail_is_not_reminded_nor_first_asked_once_the_request_closed(
        stack, pool, mail_sink):
    """The survey processor's task polled after the withdrawal (a poll under way at the close, or
    the one its close asks: tests/test_closed_request_asked_tasks.py): a poll past `reminder_days`
    sends no reminder and ends the task, not answered; a task whose e-mail had not gone (the relay
    down) sends none now and needs attention, the processor never asked. Before, both e-mailed the
    processor about a withdrawn request, with a link that its close had expired."""
    fanout = FanoutActivities(activity_context(stack.settings, pool))
    asked, unsent = [await stored_request(pool, stack.settings, label, "erasure", email=EMAIL)
                     for label in ("asked", "unsent")]
    tasks = {}
    for rid in (asked, unsent):
        plan = await fanout._plan(StartRequest(request_id=rid, policy_version=str(await pool.fetchval(
            "SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid))))
        (surveys,) = [t for t in plan.tasks if t.system == "surveys"]
        tasks[rid] = TaskInput(request_id=rid, policy_version=plan.policy_version, task=surveys, record=True)
    first = await fanout._run(tasks[asked])
    assert first.status == "pending" and len(letters_for(mail_sink, asked, "processor_request")) == 1, first
    await pool.execute("UPDATE manual_tasks SET sent_at = now() - interval '10 days' WHERE request_id = $1::uuid",
                       asked)
    for rid in (asked, unsent):
        await pool.execute(ENDINGS["withdrawn"], rid)
    polled = await fanout.poll_system_action(tasks[asked].model_copy(update={"external_id": first.external_id}))
    assert polled.status == "needs_attention" and "not answered: the request was closed" in polled.message, polled
    assert letters_for(mail_sink, asked, "processor_reminder") == []
    # The unsent task's id, as its first try left it pending (the connector's own, known before sending).
    job = external_id_for(confirmation_token(fanout.ctx.secret, unsent, "surveys", "erase"))
    polled = await fanout.poll_system_action(tasks[unsent].model_copy(update={"external_id": job}))
    assert polled.status == "needs_attention" and "the request was closed before the e-mail went" in polled.message
    assert letters_for(mail_sink, unsent) == []
