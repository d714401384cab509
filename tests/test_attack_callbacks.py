"""Attacks from a processor's side that tests/test_untrusted_processors.py and
tests/test_hostile_forms.py do not make, each against the real API over HTTP (uvicorn, PostgreSQL,
Temporal, a worker): what a processor holding its own signing key can still put in a callback
(docs/security.md, "A compromised processor")."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid

import pytest

from tests.support import assert_problem, live_client
from tests.untrusted_support import (
    CALLBACK,
    PROCESSOR,
    api_over_http,
    fake_processor,
    pending_erasure,
    processor_policy,
    rfc3339,
    served,
)
from workers.dsr_worker import build_worker


@pytest.fixture
async def processor():
    fake = fake_processor()
    async with served(fake.app()) as url:
        fake.url = url
        yield fake


async def _events(pool, request_id: str) -> list[dict]:
    rows = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND actor = $2 ORDER BY seq",
                            uuid.UUID(request_id), f"processor:{PROCESSOR}")
    return [json.loads(r["data"]) if isinstance(r["data"], str) else r["data"] for r in rows]


async def test_a_signed_callback_with_a_status_outside_opendsrs_is_refused_and_records_nothing(
        settings, pool, dev_server, processor, tmp_path, lifecycle_policy, task_queue):
    """A processor signs a callback for its own pending erasure whose `request_status` is not one
    of OpenDSR's four (pending, in_progress, completed, cancelled): a word of its own, a status
    of 200 KB (inside the body cap). Before, any string was taken: it went into the append-only
    audit trail for good (and into the event's key, whose index refused a long one with a 500),
    and was signalled to the task. Now 422 naming the field, nothing recorded; the real answer
    after it is still heard."""
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
    async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
            api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
        request_id, external_id = await pending_erasure(http, pool)
        for status in ("failed", "COMPLETED", "completed ", secrets.token_hex(100_000), {"state": "completed"}):
            body, headers = processor.signed({"subject_request_id": external_id, "request_status": status,
                                              "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))})
            refused = await http.post(CALLBACK, content=body, headers=headers)
            problem = assert_problem(refused, 422)
            assert problem["errors"][0]["field"] == "request_status"
            assert len(refused.content) < 2000  # the status is not echoed back
        assert await _events(pool, request_id) == []
        assert await pool.fetchval("SELECT status FROM system_tasks WHERE request_id = $1 AND system = $2",
                                   uuid.UUID(request_id), PROCESSOR) == "pending"

        body, headers = processor.signed({"subject_request_id": external_id, "request_status": "in_progress",
                                          "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))})
        heard = await http.post(CALLBACK, content=body, headers=headers)
        assert heard.status_code == 202, heard.text
    assert await _events(pool, request_id) == [{"system": PROCESSOR, "status": "in_progress", "attempt": 1}]
