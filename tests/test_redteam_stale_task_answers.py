"""Red team, a member of staff with a page gone stale: a retry or a resolution of a system's task
answers the attempt its page showed, or nothing.

The workflow's `retry_task` and `resolve_task` named only the system: they answered the system's
task as it stood when they arrived. A compliance officer who opened the request while the CRM's
task needed attention (attempt 1, its API key revoked), and typed "told the provider by e-mail"
into Resolve while a colleague retried the task, whose attempt 2 failed for another reason (a
contact locked by an open ticket), recorded that failure, which nobody had read, as done by other
means. A retry pressed twice (or replayed) after the first had run and failed again started an
attempt nobody decided on. Now the console's forms send the attempt shown, REST takes it
(`attempt`), and the update's validator refuses any other with the attempt now and where it
stands (409), recording nothing. docs/security.md, "Staff against their own console".
"""

from __future__ import annotations

import uuid

import pytest
from starlette.datastructures import FormData
from temporalio import activity
from temporalio.exceptions import ApplicationError

from api.staff_actions import STAFF_ACTIONS
from devstack.policy_copies import only_systems
from policy.model import DEFAULT_POLICY
from schemas.requests import RequestType
from schemas.restrictions import LiftRestrictionInput
from schemas.staff_answers import ResolveTaskInput, RetryTaskInput
from schemas.workflow import RequestState, TaskInput, TaskResult
from tests.staff_answers import replays
from tests.support import api_client, console_sign_in, live_view, staff_headers, unique_email
from tests.test_redteam_stale_step_answers import form_fields
from tests.workflow_fakes import FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, refused, stack_fixture  # noqa: F401 (the fixture)
from tests.yaml_files import dump_yaml, read_yaml
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow as DSR

# What each attempt at the CRM meets: a failure for good, so the task needs staff at once.
FAILURES = {1: "the CRM refused the API key (revoked)", 2: "the CRM refused: contact locked by an open ticket"}


@activity.defn(name="run_system_action")
async def failing_crm(task: TaskInput) -> TaskResult:
    """The CRM's task, failing for another reason at each attempt (what activities/fanout.py makes
    of a connector's PermanentConnectorError)."""
    raise ApplicationError(FAILURES.get(task.attempt, "the CRM is down"), type="PermanentConnectorError",
                           non_retryable=True)


@pytest.fixture
def crm_only(settings, tmp_path):
    """The shipped policy with the CRM as its one system, responses sent without approval."""
    content = only_systems(read_yaml(DEFAULT_POLICY), ["crm"])
    for rule in content["retention"]:
        rule.pop("systems", None)  # the other systems a CRM rule reaches are gone
    content["approval_required_for"] = []
    path = tmp_path / f"crm-only-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(dump_yaml(content, sort_keys=False))
    return settings.model_copy(update={"policy_path": path})


def crm_task(view: dict) -> dict:
    return next(r for r in view["results"] if r["system"] == "crm")


async def _erasure_needing_staff(http, pool) -> tuple[str, dict[str, str]]:
    """An attested erasure whose CRM task needs staff at attempt 1; its id and compliance's headers."""
    compliance = await staff_headers(pool, "compliance")
    opened = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "subject": {"email": unique_email("stale-task")}, "identity_attested": True})
    assert opened.status_code == 201, opened.text
    rid = opened.json()["id"]
    await live_view(http, compliance, rid, lambda v: any(
        r["system"] == "crm" and r["status"] == "needs_attention" for r in v.get("results") or []))
    return rid, compliance


async def _second_failure(http, rid: str, compliance: dict[str, str]) -> dict:
    """The CRM's task once its attempt 2 has failed, for another reason than attempt 1."""
    second = crm_task(await live_view(http, compliance, rid, lambda v: crm_task(v)["attempt"] == 2
                                      and crm_task(v)["status"] == "needs_attention"))
    assert FAILURES[2] in second["message"], second
    return second


async def _page_form(console, rid: str, action: str) -> dict[str, str]:
    """The hidden fields of `action`'s form on the request page as it is now, the system chosen."""
    return {**form_fields((await console.get(f"/console/requests/{rid}")).text, action), "system": "crm"}


async def _events(pool, rid: str, event_type: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = $2",
                               rid, event_type)


async def test_a_resolution_typed_before_a_colleagues_retry_does_not_resolve_the_new_failure(
        crm_only, pool, dev_server, task_queue):
    """Officer A's page shows attempt 1 (the revoked key); officer B retries it from their own
    page, and attempt 2 fails with a locked contact. A's Resolve, sent now, is refused naming
    attempt 2 and its error, over the console as over REST: no resolution, no event, the task
    still needs staff. Answered by its own attempt, the resolution is taken."""
    async with build_worker(dev_server.client, crm_only, pool, task_queue=task_queue, activity_overrides=[failing_crm]), \
            api_client(crm_only, dev_server.client, task_queue) as officer_a, \
            api_client(crm_only, dev_server.client, task_queue) as officer_b, \
            api_client(crm_only, dev_server.client, task_queue) as rest:
        rid, compliance = await _erasure_needing_staff(rest, pool)
        await console_sign_in(officer_a, pool, "compliance")
        stale_form = await _page_form(officer_a, rid, "resolve-task")
        await console_sign_in(officer_b, pool, "compliance")
        retried = await officer_b.post(f"/console/requests/{rid}/retry-task",
                                       data=await _page_form(officer_b, rid, "retry-task"))
        assert retried.status_code == 303, retried.text[:2000]
        second = await _second_failure(rest, rid, compliance)

        note = "Told the provider by e-mail, ticket 88"
        late = await officer_a.post(f"/console/requests/{rid}/resolve-task", data={**stale_form, "note": note})
        assert late.status_code == 409, late.text[:2000]
        assert "attempt this was sent for (1)" in late.text and FAILURES[2] in late.text, late.text[:2000]
        by_rest = await rest.post(f"/v1/requests/{rid}/resolve-task", headers=compliance,
                                  json={"system": "crm", "note": note, "attempt": 1})
        assert by_rest.status_code == 409, by_rest.text
        assert "its attempt now is another (2, which needs attention" in by_rest.json()["detail"], by_rest.text
        assert crm_task(await live_view(rest, compliance, rid)) == second
        assert await _events(pool, rid, "task.resolved") == 0

        resolved = await rest.post(f"/v1/requests/{rid}/resolve-task", headers=compliance,
                                   json={"system": "crm", "note": "Erased by hand once the ticket closed", "attempt": 2})
        assert resolved.status_code == 200, resolved.text
        assert await _events(pool, rid, "task.resolved") == 1


async def test_a_retry_pressed_again_after_it_ran_and_failed_again_starts_nothing(
        crm_only, pool, dev_server, task_queue):
    """A Retry sent twice (a double press, a replayed form or script), the second after the
    first's attempt 2 failed again: refused, from the console's form as over REST. A console form
    that names no attempt (a page from before forms did) is refused too."""
    async with build_worker(dev_server.client, crm_only, pool, task_queue=task_queue, activity_overrides=[failing_crm]), \
            api_client(crm_only, dev_server.client, task_queue) as console, \
            api_client(crm_only, dev_server.client, task_queue) as rest:
        rid, compliance = await _erasure_needing_staff(rest, pool)
        csrf = await console_sign_in(console, pool, "compliance")
        form = await _page_form(console, rid, "retry-task")
        first = await console.post(f"/console/requests/{rid}/retry-task", data=form)
        assert first.status_code == 303, first.text[:2000]
        await _second_failure(rest, rid, compliance)

        again = await console.post(f"/console/requests/{rid}/retry-task", data=form)
        assert again.status_code == 409, again.text[:2000]
        assert "attempt this was sent for (1) has been answered since" in again.text, again.text[:2000]
        by_rest = await rest.post(f"/v1/requests/{rid}/retry-task", headers=compliance,
                                  json={"system": "crm", "attempt": 1})
        assert by_rest.status_code == 409, by_rest.text
        unsaid = await console.post(f"/console/requests/{rid}/retry-task", data={"csrf_token": csrf, "system": "crm"})
        assert unsaid.status_code == 409, unsaid.text[:2000]
        assert "does not say which attempt of the crm task" in unsaid.text, unsaid.text[:2000]
        now = crm_task(await live_view(rest, compliance, rid))
        assert (now["attempt"], now["status"]) == (2, "needs_attention"), now
        assert await _events(pool, rid, "task.retried") == 1


async def test_the_workflow_refuses_an_answer_for_an_attempt_failed_before(stack: FastStack):
    """The update's validator compares the attempt itself: nothing comes between its check and the
    answer, as a check of the caller's would leave a moment. On the time-skipping server."""
    request = await stack.open(RequestSpec(systems=[FakeSystem("crm"), FakeSystem("billing", broken="API key revoked")]))
    await request.until(lambda s: {r.system: r.status for r in s.results}.get("billing") == "needs_attention")
    await request.handle.execute_update(DSR.retry_task, RetryTaskInput(system="billing", attempt=1, actor="staff:ivy"))
    await request.until(lambda s: {r.system: (r.status, r.attempt) for r in s.results}.get("billing")
                        == ("needs_attention", 2))

    for update, body in ((DSR.resolve_task, ResolveTaskInput(system="billing", note="Told them by e-mail",
                                                             attempt=1, actor="staff:ivy")),
                         (DSR.retry_task, RetryTaskInput(system="billing", attempt=1, actor="staff:ivy"))):
        said = await refused(request.handle.execute_update(update, body))
        assert "attempt this was sent for (1)" in said and "(2, which needs attention: " in said, said
    assert [c.attempt for c in stack.fakes.system_calls if c.task.system == "billing"] == [1, 2]

    await request.handle.execute_update(DSR.resolve_task, ResolveTaskInput(
        system="billing", note="Erased by hand in the billing console", attempt=2, actor="staff:ivy"))
    final = await request.result()
    assert final.status == "completed"
    assert stack.fakes.event_types(request.id).count("task.resolved") == 1
    await replays(stack, request)


def _billing(state: RequestState) -> tuple[str, int, str] | None:
    return next(((r.status, r.attempt, r.action) for r in state.results if r.system == "billing"), None)


async def test_a_restrictions_task_form_does_not_answer_its_lifts_task(stack: FastStack):
    """A restriction's lift runs a fan-out of its own, whose attempts count from 1 again: the
    restriction's Resolve form for its billing task (attempt 1), kept open or replayed once the
    lift's billing task needs attention at its own attempt 1, answered that one. The form names
    the task's action too (as the page's hidden fields: `action.<system>`): refused, nothing
    recorded; the lift's own form is taken. The console's form, through api/staff_actions.py, on
    the time-skipping server."""
    request = await stack.open(RequestSpec(request_type=RequestType.restriction,
                                           systems=[FakeSystem("billing", broken="no restriction in this API")]))
    await request.until(lambda s: _billing(s) == ("needs_attention", 1, "restrict"))
    resolve = STAFF_ACTIONS["resolve-task"]

    def answer(action: str, note: str) -> ResolveTaskInput:
        form = FormData([("system", "billing"), ("attempt.billing", "1"), ("action.billing", action), ("note", note)])
        made = resolve.workflow_input(resolve.body_from_form(form), "compliance:hal")
        assert isinstance(made, ResolveTaskInput)
        return made

    restricts = answer("restrict", "Restricted by hand in the billing console")
    await request.handle.execute_update(DSR.resolve_task, restricts)
    await request.until(lambda s: s.status == "completed" and stack.fakes.restrictions)
    await request.handle.execute_update(DSR.lift_restriction, LiftRestrictionInput(
        reason="The claim the records were needed for was settled", actor="compliance:kim"))
    await request.until(lambda s: _billing(s) == ("needs_attention", 1, "lift_restriction"))

    said = await refused(request.handle.execute_update(DSR.resolve_task, restricts))
    assert "sent for (restrict, 1)" in said and "(lift restriction, 1, which needs attention: " in said, said
    assert stack.fakes.event_types(request.id).count("task.resolved") == 1
    assert _billing(await request.state()) == ("needs_attention", 1, "lift_restriction")

    await request.handle.execute_update(DSR.resolve_task, answer("lift_restriction", "Lifted by hand in the console"))
    await request.result()
    assert stack.fakes.event_types(request.id).count("task.resolved") == 2
    await replays(stack, request)
