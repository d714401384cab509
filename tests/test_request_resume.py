"""Resuming a request whose workflow ended while it was open (dsrflow/domain/request_resume.py):
over REST on the whole stack, and the point it resumes from for every way a run ends."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import ActivityFailureInfo, ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import (
    ActivityTaskScheduledEventAttributes,
    ChildWorkflowExecutionCompletedEventAttributes,
    HistoryEvent,
    StartChildWorkflowExecutionInitiatedEventAttributes,
    WorkflowExecutionFailedEventAttributes,
)
from temporalio.client import WorkflowExecutionStatus

from activities.request_start_sweep import flag_ended_workflows
from api.console.view import describe_event
from devstack.processes import free_port
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.request_resume import ResumeRefused, ended_trouble_key, resume_point
from dsrflow.domain.request_start import start_request_workflow
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from schemas.workflow import task_workflow_id, workflow_id_for
from tests.conftest import database_pool
from tests.fanout_stack import api, fanout_stack_alone
from tests.process_support import answering, died, dsrflow_process
from tests.support import (
    letters_for,
    live_client,
    staff_headers,
    text_of,
    unique_email,
    verification_code,
    wait_for_letter,
)
from workers.dsr_worker import activity_context, build_worker
from workflows.dsr import DataSubjectRequestWorkflow

SURVEYS_CONTACT = "privacy@surveys.example"
_LINK = re.compile(r"(http://\S+/v1/callbacks/manual/[0-9a-f]{64})")


async def _event_types(handle) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") async for e in handle.fetch_history_events()]


async def _until(check, timeout: float = 60) -> None:
    for _ in range(int(timeout * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{check.__name__} never came true")


async def test_a_terminated_erasure_is_flagged_then_resumed_by_compliance_and_completes_with_each_letter_once(
        postgres, settings, dev_server, mail_sink, tmp_path, monkeypatch):
    """An operator terminates an erasure's workflow while a processor reached by e-mail has its
    task (a child workflow, terminated with it). Every staff action is refused, the sweep flags
    the request, an agent may not resume it, compliance does with a reason: the request carries
    on from where it stopped (the processor's task starts again, its e-mail is not sent twice),
    the processor's confirmation by the link it had reaches it, and it completes with one acknowledgement and one response."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    client = dev_server.client
    async with fanout_stack_alone(postgres, settings, client, tmp_path, "resume", keep_manual=("surveys",)) as (
            stack, pool), build_worker(client, stack.settings, pool), api(stack) as http:
        compliance, agent = await staff_headers(pool, "compliance"), await staff_headers(pool, "agent")
        opened = await http.post("/v1/requests", headers=agent, json={
            "type": "erasure", "subject": {"email": "grace@example.com"}, "identity_attested": True})
        rid = opened.json()["id"]
        handle = client.get_workflow_handle(workflow_id_for(rid))
        link = _LINK.search(text_of(await wait_for_letter(mail_sink, rid, "processor_request", 60))).group(1)

        async def surveys_waits() -> bool:
            state = await handle.query(DataSubjectRequestWorkflow.state)
            return any(r.system == "surveys" and r.status == "pending" for r in state.results)

        await _until(surveys_waits)
        await handle.terminate("by mistake")
        terminated_at = (await handle.describe()).close_time
        refused = await http.post(f"/v1/requests/{rid}/resolve-task", headers=compliance,
                                  json={"system": "surveys", "note": "Told the provider by phone"})
        assert refused.status_code == 409, refused.text

        ctx = activity_context(stack.settings, pool)

        async def flagged() -> bool:  # the server's list of ended runs catches up within a second or so
            return await flag_ended_workflows(ctx, client, older_than=timedelta(0)) == 1

        await _until(flagged, 20)
        trouble = await pool.fetchrow("SELECT * FROM step_troubles WHERE request_id = $1", uuid.UUID(rid))
        assert trouble["step"] == "workflow" and trouble["resolved_at"] is None
        listed = await http.get("/v1/requests", headers=agent, params={"needs_attention": "true"})
        assert rid in {r["id"] for r in listed.json()["items"]}, listed.text

        as_agent = await http.post(f"/v1/requests/{rid}/resume", headers=agent, json={"reason": "relay fixed"})
        blank = await http.post(f"/v1/requests/{rid}/resume", headers=compliance, json={"reason": ""})
        resumed = await http.post(f"/v1/requests/{rid}/resume", headers=compliance,
                                  json={"reason": "Terminated by mistake during maintenance"})
        again = await http.post(f"/v1/requests/{rid}/resume", headers=compliance, json={"reason": "twice"})
        assert as_agent.status_code == 403 and blank.status_code == 422
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["ended"] == "terminated"
        assert again.status_code == 409 and "running" in again.json()["detail"]

        await _until(surveys_waits)  # its task started again, and waits for the processor as before
        task = client.get_workflow_handle(task_workflow_id(rid, "surveys", "erase", 1))

        async def task_runs_again() -> bool:  # the state says pending before the child's new run starts
            described = await task.describe()
            return described.status == WorkflowExecutionStatus.RUNNING and described.start_time > terminated_at

        await _until(task_runs_again, 20)
        # The processor confirms through the link of the one e-mail it had before the termination.
        confirmed = await http.post(link.removeprefix(stack.api_url), data={"note": "Deleted from our panel."})
        assert confirmed.status_code == 200 and "confirmation recorded" in confirmed.text
        try:
            state = await asyncio.wait_for(handle.result(), 60)
        except TimeoutError as stuck:  # a rare hang once in CI: what each run waited on
            raise AssertionError(f"still open; request: {await _event_types(handle)}, "
                                 f"task: {await _event_types(task)}") from stuck
        events = await pool.fetch("SELECT event_type, data, actor FROM audit_events WHERE request_id = $1 "
                                  "ORDER BY chain_pos", uuid.UUID(rid))
        trouble = await pool.fetchrow("SELECT * FROM step_troubles WHERE request_id = $1", uuid.UUID(rid))
        # A later sweep flags nothing: the ended run was resumed.
        assert await flag_ended_workflows(ctx, client, older_than=timedelta(0)) == 0
    assert state["status"] == "completed"
    for purpose in ("acknowledgement", "processor_request", "response"):
        assert len(letters_for(mail_sink, rid, purpose)) == 1, purpose
    assert len(letters_for(mail_sink, rid, "staff_alert")) == 1  # the flag's, once
    assert trouble["resolved_at"] is not None and trouble["resolution"].startswith("resumed by ")
    kinds = [e["event_type"] for e in events]
    assert kinds.count("request.workflow_ended") == 1 and kinds.count("request.resumed") == 1
    # When it ended, as Temporal recorded it: the event's own time is when the sweep found it.
    ended_event = events[kinds.index("request.workflow_ended")]
    assert ended_event["data"] == {"ended": "terminated", "closed": False,
                                  "ended_at": terminated_at.isoformat()}
    assert kinds.index("request.workflow_ended") < kinds.index("request.resumed") < kinds.index("status.completed")
    resumed_event = events[kinds.index("request.resumed")]
    assert describe_event(resumed_event) == ("Resumed: its workflow carries on from where it stopped "
                                             "(it had been terminated: Terminated by mistake during maintenance)")


@pytest.mark.parametrize("killed_at", ["resume-recorded", "resume-reset"])
async def test_an_api_killed_while_resuming_leaves_one_resume_and_its_flag_settled_when_staff_repeat_it(
        postgres, settings, dev_server, mail_sink, task_queue, tmp_path, killed_at):
    """The API dies after auditing the resume and before asking Temporal for the reset (the request
    is still stopped), or after the reset and before settling the sweep's flag (it runs, still
    flagged). Compliance presses again (another API): the first resumes it, the second answers
    that it is running; either way the trail holds one `request.resumed` and the flag is settled.
    Its own database: the resume reads only its own request."""
    client = dev_server.client
    port = free_port()
    async with database_pool(postgres, "resume_crash") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url, "task_queue": task_queue,
                                           "api_port": port, "public_url": f"http://127.0.0.1:{port}"})
        row, _ = await create_request(pool, NewRequest(type="erasure", subject={"email": "ada@example.com"}),
                                      loaded_policy=load_policy(ours.policy_path), secret=load_secret_key(ours),
                                      actor="test", idempotency_key=None)
        rid = str(row["id"])
        handle = client.get_workflow_handle(workflow_id_for(rid))
        resumes = "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = 'request.resumed'"
        flag = "SELECT resolution FROM step_troubles WHERE request_id = $1"
        async with build_worker(client, ours, pool, task_queue=task_queue), \
                live_client(base_url=ours.public_url, timeout=30) as http:
            await start_request_workflow(client, row, 60, task_queue=task_queue, task_timeout=10)
            await wait_for_letter(mail_sink, rid, "verification", 30)
            await handle.terminate("by mistake")
            await pool.execute("INSERT INTO step_troubles (request_id, trouble_key, step, message, transient) "
                               "VALUES ($1, $2, 'workflow', 'stopped', false)",
                               row["id"], ended_trouble_key((await handle.describe()).run_id))
            compliance = await staff_headers(pool, "compliance")
            body = {"reason": "Terminated by mistake"}
            async with dsrflow_process("api", ours, client, tmp_path, failpoints=killed_at) as first:
                await answering(http, first, tmp_path)
                with pytest.raises(httpx.TransportError):
                    await http.post(f"/v1/requests/{rid}/resume", headers=compliance, json=body)
                await died(first, tmp_path, role="api")
            between = (await handle.describe()).status, await pool.fetchval(resumes, row["id"])
            assert await pool.fetchval(flag, row["id"]) is None  # still flagged
            async with dsrflow_process("api", ours, client, tmp_path, failpoints="") as second:
                await answering(http, second, tmp_path)
                again = await http.post(f"/v1/requests/{rid}/resume", headers=compliance, json=body)
            running = (await handle.describe()).status
            state = await handle.query(DataSubjectRequestWorkflow.state)
            after = await pool.fetchval(resumes, row["id"]), await pool.fetchval(flag, row["id"])
            await handle.terminate("test over")
    if killed_at == "resume-recorded":
        assert between == (WorkflowExecutionStatus.TERMINATED, 1)
        assert again.status_code == 200, again.text
        assert after[0] == 1 and after[1].startswith("resumed by ")
    else:
        assert between == (WorkflowExecutionStatus.RUNNING, 1)
        assert again.status_code == 409 and "running" in again.json()["detail"]
        assert after == (1, "its workflow runs again")
    assert running == WorkflowExecutionStatus.RUNNING and state.status == "awaiting_verification"
    assert len(letters_for(mail_sink, rid, "acknowledgement")) == 1


async def test_while_stopped_the_subject_is_told_their_request_is_paused_and_staff_what_brings_it_back(
        http, pool, dev_server, mail_sink):
    """The subject types their code (in Dutch) while their request's workflow is stopped: the page
    says the request is paused on our side, kept, its deadline running, and to try again later; a
    new code is refused the same way. Staff are told it stopped and who resumes it, not that it
    "finished"."""
    form = await http.get("/portal?lang=nl")
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    opened = await http.post("/portal/requests", data={"submission": submission, "type": "erasure",
                                                       "email": unique_email("paused"), "country": "nl"})
    rid = opened.headers["location"].split("/")[3]
    code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    await dev_server.client.get_workflow_handle(workflow_id_for(rid)).terminate("by mistake")

    typed = await http.post(f"/portal/requests/{rid}/verify?lang=nl", data={"code": code})
    over_api = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
    resend = await http.post(f"/portal/requests/{rid}/resend?lang=nl")
    staff = await http.post(f"/v1/requests/{rid}/resend-verification", headers=await staff_headers(pool, "agent"))
    for page in (typed, resend):
        assert page.status_code == 503
        assert "uw verzoek staat even stil" in page.text and "Probeer het later opnieuw" in page.text
        # No button that could not work until it is resumed: neither the code form nor a new code.
        assert 'name="code"' not in page.text and f"/portal/requests/{rid}/resend" not in page.text
    # A subject's client over the JSON API is told to wait, not which staff endpoint resumes it.
    assert over_api.status_code == 503 and over_api.headers["retry-after"] == "900", over_api.text
    assert over_api.json()["stopped"] is True and "try again later" in over_api.json()["detail"]
    assert "/v1/requests" not in over_api.text and "compliance" not in over_api.text
    assert staff.status_code == 409 and "has stopped while the request is open" in staff.json()["detail"]
    assert "resume" in staff.json()["detail"]


# The point a run resumes from, on histories written out event by event.

def _event(event_id: int, kind: int, **attributes) -> HistoryEvent:
    return HistoryEvent(event_id=event_id, event_type=kind, **attributes)


_TASK_DONE = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


def _child(event_id: int, by_task: int) -> HistoryEvent:
    return _event(event_id, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
                  start_child_workflow_execution_initiated_event_attributes=(
                      StartChildWorkflowExecutionInitiatedEventAttributes(workflow_task_completed_event_id=by_task)))


def test_a_terminated_run_resumes_from_its_last_task_unless_a_child_was_still_running():
    history = [_event(4, _TASK_DONE), _child(5, 4), _child(6, 4), _event(9, _TASK_DONE),
               _event(10, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
                      child_workflow_execution_completed_event_attributes=(
                          ChildWorkflowExecutionCompletedEventAttributes(initiated_event_id=5))),
               _event(13, _TASK_DONE), _event(14, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED)]
    assert resume_point(history) == 4  # child 6 never ended: it was terminated with the run
    history[2] = _event(6, EventType.EVENT_TYPE_TIMER_STARTED)  # no child left running
    assert resume_point(history) == 13


def test_a_run_failed_by_an_activity_resumes_from_the_task_that_scheduled_it():
    scheduled = _event(7, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
                       activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
                           workflow_task_completed_event_id=6))
    failure = Failure(message="activity error", activity_failure_info=ActivityFailureInfo(scheduled_event_id=7),
                      cause=Failure(message="relay refused", application_failure_info=ApplicationFailureInfo()))
    wrapped = Failure(message="step failed", application_failure_info=ApplicationFailureInfo(), cause=failure)
    history = [_event(4, _TASK_DONE), _event(6, _TASK_DONE), scheduled, _event(12, _TASK_DONE),
               _event(13, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
                      workflow_execution_failed_event_attributes=WorkflowExecutionFailedEventAttributes(failure=wrapped))]
    assert resume_point(history) == 6
    # Failed by the workflow's own code (no activity in the cause): its last task runs again.
    history[-1] = _event(13, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
                         workflow_execution_failed_event_attributes=WorkflowExecutionFailedEventAttributes(
                             failure=Failure(message="bug", application_failure_info=ApplicationFailureInfo())))
    assert resume_point(history) == 12


def test_a_run_ended_inside_its_first_task_starts_over_and_one_no_worker_took_is_not_resumed():
    started = [_event(1, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
               _event(2, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)]
    ended = _event(4, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED)
    assert resume_point([*started, _event(3, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED), ended]) == 3
    try:
        resume_point([*started, ended])
    except ResumeRefused as refused:
        assert refused.status == 409 and "before any worker took it up" in str(refused)
    else:
        raise AssertionError("resumed a run no worker ever took up")
