"""The subject's code, its worker killed once the relay accepted the code's e-mail and before it
was recorded (`mail-accepted`, dsrflow/infra/failpoints.py). The retry sends nothing (the relay
has it) and hands the workflow the challenge it checks: that challenge must be the e-mailed code's,
or the subject types a code that never works and the request closes unverified. It is, as the
code is derived from the request and the round (activities/verification.py `_secrets`), not drawn
again by the retry: one e-mail, and its code verifies the subject."""

from __future__ import annotations

import asyncio
import uuid

from tests.process_support import died, dsrflow_process, released
from tests.support import (
    api_client,
    letters_for,
    staff_headers,
    unique_email,
    verification_code,
    wait_for_letter,
)
from workers.dsr_worker import build_worker


async def test_a_worker_killed_once_the_relay_had_the_code_leaves_the_code_the_subject_got_working(
        settings, dev_server, pool, mail_sink, tmp_path):
    client = dev_server.client
    own = settings.model_copy(update={"task_queue": f"crash-{uuid.uuid4().hex[:6]}"})
    async with api_client(own, client, own.task_queue) as http:
        # Opened with no worker running: its id names the failpoint of the worker that takes it up.
        r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "type": "erasure", "subject": {"email": unique_email("code")}})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        request = uuid.UUID(rid)
        async with dsrflow_process("worker", own, client, tmp_path, failpoints=f"mail-accepted~{rid}:verification:",
                                   module="tests.worker_process", held=True) as worker:
            released(worker)
            await died(worker, tmp_path)
        assert await pool.fetchval("SELECT count(*) FROM sent_letters WHERE request_id = $1 "
                                   "AND purpose = 'verification'", request) == 0
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))

        async with build_worker(client, own, pool, task_queue=own.task_queue):
            for _ in range(600):  # the retry, once the killed try's heartbeat is overdue, records it
                if await pool.fetchval("SELECT count(*) FROM sent_letters WHERE request_id = $1 "
                                       "AND purpose = 'verification'", request):
                    break
                await asyncio.sleep(0.1)
            verified = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
            for _ in range(300):
                if await _events(pool, request, "status.in_progress"):
                    break
                await asyncio.sleep(0.1)

    assert verified.status_code == 200, verified.text
    assert verified.json()["verified"] is True, verified.json()
    assert len(letters_for(mail_sink, rid, "verification")) == 1
    assert await _events(pool, request, "verification.succeeded") == 1
    assert await _events(pool, request, "status.in_progress") == 1
    assert await _events(pool, request, "mail.unconfirmed") == 1 and await _events(pool, request, "mail.resent") == 0


async def _events(pool, request: uuid.UUID, event_type: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = $2",
                               request, event_type)
