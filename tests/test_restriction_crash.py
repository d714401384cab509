"""A restriction (or rectification, lifting, objection) whose worker dies after a system committed
it, before the step reported back. The outcome was kept inside the system's transaction, before it
committed, as an erasure's is; the retry, which finds every row already restricted and changes
nothing, reports what the first try did. Before, it reported "0 changed": the evidence, the
request's page and the letters that list the systems a request changed (a withdrawal's, a
denial's) left out a system whose rows were restricted."""

from __future__ import annotations

from tests.fanout_stack import api, fanout_stack
from tests.process_support import died, worker_to_kill
from tests.support import staff_headers, task_result
from workers.dsr_worker import build_worker

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
