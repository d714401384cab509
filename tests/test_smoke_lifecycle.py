from __future__ import annotations

from tests.support import api_client, staff_headers, wait_for_letter
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow


async def test_attested_erasure_completes(settings, pool, dev_server, mail_sink, task_queue):
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue):
        async with api_client(settings, dev_server.client, task_queue) as http:
            headers = await staff_headers(pool)
            r = await http.post("/v1/requests", headers=headers, json={
                "type": "erasure", "subject": {"email": "ada@example.com"}, "identity_attested": True})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await wait_for_letter(mail_sink, rid, "response")
            handle = dev_server.client.get_workflow_handle_for(DataSubjectRequestWorkflow.run, f"dsr-{rid}")
            state = await handle.result()
            assert state.status == "completed"
