"""An access request whose worker dies after the package is on record but before the workflow heard
of it: the retry finds the package built and reports it as the first attempt recorded it. Before,
it reported no systems, and the response letter left out every "a copy of your data" line."""

from __future__ import annotations

import asyncio
import uuid

from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.process_support import died, worker_to_kill
from tests.support import attested_request, comparable_letter, wait_for_letter
from workers.dsr_worker import build_worker


async def test_a_worker_killed_after_the_package_was_recorded_answers_as_a_clean_run(
        postgres, settings, dev_server, pool, mail_sink, tmp_path):
    client = dev_server.client
    (tmp_path / "clean").mkdir()
    (tmp_path / "crash").mkdir()
    async with fanout_stack(postgres, settings, client, tmp_path / "clean") as clean, api(clean) as http:
        async with build_worker(client, clean.settings, pool):
            clean_id = await attested_request(http, pool, "access")
            clean_state = await client.get_workflow_handle(workflow_id_for(clean_id)).result()
            await wait_for_letter(mail_sink, clean_id, "response")
    async with fanout_stack(postgres, settings, client, tmp_path / "crash") as crash, api(crash) as http:
        async with worker_to_kill(crash.settings, client, tmp_path, failpoints="package-built") as worker:
            crash_id = await attested_request(http, pool, "access")
            await died(worker, tmp_path)
        async with build_worker(client, crash.settings, pool):
            crash_state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(crash_id)).result(), 120)
            await wait_for_letter(mail_sink, crash_id, "response")

    assert crash_state["status"] == clean_state["status"] == "completed"
    systems = clean_state["package"]["systems"]
    assert systems and crash_state["package"]["systems"] == systems
    letter = comparable_letter(mail_sink, crash_id)
    assert letter == comparable_letter(mail_sink, clean_id)
    assert "copy of your data" in letter.lower()
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = "
                               "'package.built'", uuid.UUID(crash_id)) == 1
