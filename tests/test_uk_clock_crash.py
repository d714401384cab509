"""The UK GDPR clock's step killed in its crash window: `start_clock_at_verification`
(activities/lifecycle.py) stores a request's dates counted from verification and audits the start
in one transaction, then tells the workflow. A real worker process dies at its failpoint
`clock-started` (dsrflow/infra/failpoints.py), after the commit and before the workflow heard of it;
the next worker runs the step again: the dates are those of the first run, the start is on record
once, and the request completes due a month after verification, not after receipt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from dsrflow.domain.deadlines import compute_deadline, receipt_date_for
from policy.model import load_policy
from schemas.workflow import RequestState, workflow_id_for
from tests.process_support import died, worker_to_kill
from tests.support import api_client, staff_headers, unique_email, verification_code, wait_for_letter
from workers.dsr_worker import build_worker


async def test_a_worker_killed_once_the_clock_started_stores_its_dates_once(
        settings, dev_server, pool, mail_sink, tmp_path):
    client = dev_server.client
    own = settings.model_copy(update={"task_queue": f"crash-{uuid.uuid4().hex[:6]}"})
    received = datetime.now(UTC) - timedelta(days=10)  # so that verification moves its month
    async with (worker_to_kill(own, client, tmp_path, failpoints="clock-started") as worker,
                api_client(own, client, own.task_queue) as http):
        r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "type": "erasure", "regime": "uk_gdpr", "received_at": received.isoformat(),
            "subject": {"email": unique_email("uk-crash")}})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        assert (await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})).status_code == 200
        await died(worker, tmp_path)
        tz = load_policy(own.policy_path).policy.defaults.timezone
        moved = compute_deadline("uk_gdpr", receipt_date_for(received, tz, "uk_gdpr"),
                                 verified=receipt_date_for(datetime.now(UTC), tz, "uk_gdpr"))
        assert moved.due_date > compute_deadline("uk_gdpr", receipt_date_for(received, tz, "uk_gdpr")).due_date
        stored = await _dates(pool, rid)  # committed before the kill
        assert stored == (moved.due_date, moved.extended_due_date, moved.due_date)
        async with build_worker(client, own, pool, task_queue=own.task_queue):
            state = await client.get_workflow_handle(workflow_id_for(rid), result_type=RequestState).result()
    assert (state.status, state.due_date, state.current_due_date) == ("completed", moved.due_date, moved.due_date)
    assert await _dates(pool, rid) == stored
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = "
                               "'deadline.clock_started'", uuid.UUID(rid)) == 1


async def _dates(pool, rid: str) -> tuple:
    row = await pool.fetchrow("SELECT due_date, extended_due_date, current_due_date FROM dsr_requests WHERE id = $1",
                              rid)
    return row["due_date"], row["extended_due_date"], row["current_due_date"]
