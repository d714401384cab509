"""One decision per refusal under a real kill: a worker dies right after an appeal's claim on its
refusal committed (activities/appeal_claims.py, failpoint `appeal-claimed`), before its workflow
heard of it, once for the appeal that wins the claim and once for the one that loses it. The retry
reads each claim back: the first appeal is decided (one `in_progress`, waiting for compliance), the
second is closed naming it, with one closing record and one letter."""

from __future__ import annotations

import uuid

from dsrflow.domain.references import short_reference
from schemas.workflow import workflow_id_for
from tests.process_support import died, worker_to_kill
from tests.refused_requests import appeals_held, public_appeal, stored_refusal
from tests.support import api_client, letters_for, live_view, staff_headers, text_of, unique_email, wait_for_letter
from workers.dsr_worker import build_worker


async def _events(pool, rid: str) -> list[str]:
    return [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 ORDER BY seq", uuid.UUID(rid))]


async def test_a_worker_killed_after_either_appeals_claim_committed_decides_the_refusal_once(
        settings, lifecycle_policy, dev_server, pool, mail_sink, tmp_path):
    client = dev_server.client
    own = appeals_held(settings, lifecycle_policy, tmp_path).model_copy(
        update={"task_queue": f"crash-{uuid.uuid4().hex[:6]}"})
    email = unique_email("appeal-claim-kill")
    refused = await stored_refusal(pool, own, email, "vcdpa", type="erasure")
    async with api_client(own, client, own.task_queue) as http:
        async with build_worker(client, own, pool, task_queue=own.task_queue):
            first, first_code = await public_appeal(http, mail_sink, email, refused)
            second, second_code = await public_appeal(http, mail_sink, email, refused)
        compliance = await staff_headers(pool, "compliance")

        async with worker_to_kill(own, client, tmp_path, failpoints=f"appeal-claimed~{first}") as worker:
            r = await http.post(f"/v1/public/requests/{first}/verify", json={"code": first_code})
            assert r.status_code == 200, r.text
            await died(worker, tmp_path)
        assert (await _events(pool, first)).count("status.in_progress") == 1  # the claim, committed

        async with worker_to_kill(own, client, tmp_path, failpoints=f"appeal-claimed~{second}") as worker:
            r = await http.post(f"/v1/public/requests/{second}/verify", json={"code": second_code})
            assert r.status_code == 200, r.text
            await died(worker, tmp_path)
        assert (await _events(pool, second)).count("status.cancelled") == 1  # lost, and on record

        async with build_worker(client, own, pool, task_queue=own.task_queue):
            decided = await live_view(http, compliance, first, lambda v: v["status"] == "awaiting_approval")
            closed = await live_view(http, compliance, second, lambda v: v["status"] == "cancelled")
            letter = await wait_for_letter(mail_sink, second, "cancellation")
            await client.get_workflow_handle(workflow_id_for(second)).result()

    assert decided["status"] == "awaiting_approval" and closed["status"] == "cancelled"
    first_events, second_events = await _events(pool, first), await _events(pool, second)
    assert first_events.count("status.in_progress") == 1 and "status.cancelled" not in first_events
    assert second_events.count("status.cancelled") == 1 and "status.in_progress" not in second_events
    assert second_events.count("mail.resent") == 0
    data = await pool.fetchval("SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'status.cancelled'",
                               uuid.UUID(second))
    assert (data["decided_as"], data["decided"]) == (first, False), data
    assert len(letters_for(mail_sink, second, "cancellation")) == 1
    assert letters_for(mail_sink, first, "cancellation") == []
    assert short_reference(first) in " ".join(text_of(letter).split())  # names the appeal decided
