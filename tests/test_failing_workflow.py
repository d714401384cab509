"""A request whose workflow code fails at every try (a bug, or code deployed without
`workflow.patched`): staff are told that, not that no worker is running.

The worker here runs a stand-in of the request workflow, under its name, whose code raises: the
workflow task fails, Temporal tries it again and again, and neither a query nor an update is ever
answered. Before, an action answered "no worker is running, or every one is busy: try again in a
moment", and the request page asked whether a worker was running: both sent staff to look for a
missing worker that was there, and trying again never helped.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio import workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from schemas.workflow import workflow_id_for
from tests.support import api_client, assert_problem, console_sign_in, staff_headers, unique_email


@workflow.defn(name="DataSubjectRequestWorkflow")
class BrokenRequestWorkflow:
    @workflow.run
    async def run(self, _request: Any) -> None:
        raise RuntimeError("a bug deployed in the request workflow's code")


async def _failing(client, request_id: str) -> int:
    """Wait until the workflow's task has failed and been tried again; its attempt count."""
    handle = client.get_workflow_handle(workflow_id_for(request_id))
    for _ in range(100):
        attempt = (await handle.describe()).raw_description.pending_workflow_task.attempt
        if attempt > 1:
            return attempt
        await asyncio.sleep(0.1)
    raise AssertionError("the workflow task never failed")


async def test_an_action_on_a_request_whose_workflow_code_fails_names_that_cause(settings, pool, dev_server,
                                                                                 task_queue):
    async with (api_client(settings, dev_server.client, task_queue) as http,
                Worker(dev_server.client, task_queue=task_queue, workflows=[BrokenRequestWorkflow],
                       workflow_runner=UnsandboxedWorkflowRunner())):
        compliance = await staff_headers(pool, "compliance")
        opened = await http.post("/v1/requests", headers=compliance, json={
            "type": "access", "subject": {"email": unique_email("failing")}})
        assert opened.status_code == 201, opened.text
        rid = opened.json()["id"]
        await _failing(dev_server.client, rid)
        reason = {"reason": "Nine systems and many years of records"}

        refused = await asyncio.wait_for(http.post(f"/v1/requests/{rid}/extend", headers=compliance, json=reason), 30)
        problem = assert_problem(refused, 503)
        assert problem["title"] == "Workflow failing", problem
        assert "fails each time it tries to carry on (an error in the worker's code" in problem["detail"]
        assert "attempts so far" in problem["detail"] and "nothing was done" in problem["detail"]
        assert "no worker is running" not in problem["detail"]

        await console_sign_in(http, pool, "compliance")
        page = await asyncio.wait_for(http.get(f"/console/requests/{rid}"), 30)
        assert page.status_code == 200
        banner = page.text.split('id="unanswered">', 1)[1].split("</p>", 1)[0]
        assert "fails each time it" in banner and "an error in the worker's code, not in this request" in banner
        assert "is a worker running?" not in banner
        # Nothing was done: the extension never reached the workflow, and nothing was recorded.
        events = await pool.fetch("SELECT event_type FROM audit_events WHERE request_id = $1", uuid.UUID(rid))
        assert "deadline.extended" not in [e["event_type"] for e in events]
        await dev_server.client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")
