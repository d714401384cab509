"""The verification code's attempt limit holds against guesses fired together. Attempts that
arrive while a new code is being issued pass the update's validator (there is no count to judge
yet) and wait inside the handler: the limit must be enforced there too, one attempt at a time."""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowUpdateFailedError

from dsrflow.crypto.hashing import code_hash
from dsrflow.crypto.keys import load_secret_key
from schemas.verification import VerifyAttempt, VerifyResult
from schemas.workflow import ResendInput, workflow_id_for
from tests.support import api_client, letters_for, unique_email, verification_code, wait_for_letter
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow

GUESSES = 40
MAX_ATTEMPTS = 5  # the policy's verification.max_attempts


async def _guess(handle, attempt: VerifyAttempt) -> VerifyResult | None:
    try:
        return await handle.execute_update(DataSubjectRequestWorkflow.verify, attempt)
    except WorkflowUpdateFailedError:
        return None  # refused by the validator: the limit was already reached when it arrived


async def _second_code(mail_sink, rid: str) -> str:
    for _ in range(300):
        letters = letters_for(mail_sink, rid, "verification")
        if len(letters) >= 2:
            return verification_code(letters[-1])
        await asyncio.sleep(0.1)
    raise AssertionError("no second verification letter")


async def test_concurrent_guesses_cannot_exceed_the_attempt_limit(settings, pool, dev_server, mail_sink, task_queue):
    client = dev_server.client
    async with api_client(settings, client, task_queue) as http:
        async with build_worker(client, settings, pool, task_queue=task_queue):
            rid = (await http.post("/v1/public/requests", json={"type": "access", "email": unique_email("race")})).json()["id"]
            await wait_for_letter(mail_sink, rid, "verification")
            handle = client.get_workflow_handle(workflow_id_for(rid))
            while not (await handle.query(DataSubjectRequestWorkflow.state)).verification.round:
                await asyncio.sleep(0.05)  # the letter is out a moment before the workflow has its code
        secret = load_secret_key(settings)
        # With no worker running, staff ask for a new code and a volley of guesses follows: the
        # server hands them over together once a worker is back, the guesses while the new code
        # is being issued.
        resend = asyncio.create_task(handle.execute_update(
            DataSubjectRequestWorkflow.resend_verification, ResendInput(actor="staff:tests")))
        await asyncio.sleep(0.5)
        volley = [asyncio.create_task(_guess(handle, VerifyAttempt(code_hash=code_hash(secret, rid, f"{n:06d}"))))
                  for n in range(GUESSES)]
        await asyncio.sleep(1)
        async with build_worker(client, settings, pool, task_queue=task_queue):
            await resend
            results = await asyncio.gather(*volley)
            code = await _second_code(mail_sink, rid)

            # A guess or two may land before the resend and count against the first code.
            failed = dict(await pool.fetch(
                "SELECT split_part(event_key, ':', 3) AS round, count(*) FROM audit_events "
                "WHERE request_id = $1 AND event_type = 'verification.failed' GROUP BY 1", rid))
            # Not one guess more than the limit was compared with either code. How the volley
            # splits between the two depends on when the resend lands, so each is bounded.
            assert failed.get("2", 0) <= MAX_ATTEMPTS and failed.get("1", 0) <= MAX_ATTEMPTS, failed
            assert not any(r.verified for r in results if r is not None)
            if failed.get("2", 0) == MAX_ATTEMPTS:
                # The right code, once the volley is over, finds the new code locked.
                after = await http.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
                assert after.status_code == 409 and "locked" in after.json()["detail"], after.text
                assert await pool.fetchval("SELECT verified_at FROM dsr_requests WHERE id = $1", rid) is None
