"""How long a processor's silence costs: a lost callback is made up by polling when the processor
said it would be done (seconds, not the 5-minute poll), and a processor that never answers is
flagged for staff after its timeout (on the time-skipping server). The demo systems and the
OpenDSR processor over loopback (tests/fanout_stack.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import attested_request, text_of, wait_for_letter
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow


async def test_lost_callback_costs_seconds_not_minutes(postgres, settings, pool, dev_server, tmp_path):
    """A processor whose callbacks never arrive (callback_attempts=0) is polled when it said it
    would be done: the erasure completes within the test's 60 s, not after a 5-minute poll."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, callback_attempts=0) as lost, \
            build_worker(dev_server.client, lost.settings, pool), api(lost) as http:
        rid = await attested_request(http, pool, "erasure", email="grace@example.com")
        state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
        assert state["status"] == "completed", state
        marketing = next(r for r in state["results"] if r["system"] == "email_marketing")
        assert marketing["status"] == "done" and marketing["changed"] > 0, marketing
        events = {e["event_type"] for e in await pool.fetch(
            "SELECT event_type FROM audit_events WHERE request_id = $1", rid)}
        assert "processor.callback" not in events  # the poll, not a callback, settled it


async def test_processor_that_never_answers_is_flagged_after_its_timeout(postgres, settings, pool, time_skipping, tmp_path, mail_sink):
    env = time_skipping
    async with fanout_stack(postgres, settings, env.client, tmp_path, email_delay=10**7) as silent:
        async with build_worker(env.client, silent.settings, pool), api(silent) as http:
            rid = await attested_request(http, pool, "erasure", email="grace@example.com")
            handle = env.client.get_workflow_handle(workflow_id_for(rid))

            async def email_status() -> str | None:
                state = await handle.query(DataSubjectRequestWorkflow.state)
                return next((r.status for r in state.results if r.system == "email_marketing"), None)

            for _ in range(100):
                if await email_status() == "pending" and len((await handle.query(DataSubjectRequestWorkflow.state)).results) == 4:
                    break
                await asyncio.sleep(0.1)
            await env.sleep(timedelta(days=13))
            assert await email_status() == "pending"
            await env.sleep(timedelta(days=1, hours=1))
            for _ in range(100):
                if await email_status() == "needs_attention":
                    break
                await asyncio.sleep(0.1)
            assert await email_status() == "needs_attention"
            alert = await wait_for_letter(mail_sink, rid, "staff_alert")
            # The system as the policy names it after a verb (its `where`), not by its id.
            assert "in our e-mail marketing system" in text_of(alert) and "email_marketing" not in text_of(alert)
            state = await handle.query(DataSubjectRequestWorkflow.state)
            assert state.status == "in_progress"  # the response waits for staff
            await handle.terminate("test over")
