"""The worker's start sweep's part for a processor acting after its job's call-off
(activities/acted_after_sweep.py: alert staff, then put it on the task's record) while the mail
relay is down, and for longer than the part looks back (LOOK_BACK, a day). Before, the task's record
waited on the alert (the relay down: "called off ... before it acted" stayed on a job carried out),
and an event past LOOK_BACK was never looked at again: its alert never went, its record never came.
Now the record goes on regardless, and an event whose alert is not on record is looked at until it
is (hDY). In process: a request stored closed, its task's record and the API's event written as
they are written, the part called as the worker calls it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.acted_after_call_off import acted_message
from activities.acted_after_sweep import LOOK_BACK, settle_acted_after
from activities.task_results import store_task_result
from devstack.processes import free_port
from dsrflow.domain.audit import append_event
from dsrflow.domain.processor_answers import ACTED_AFTER_CALL_OFF, acted_after_call_off_key
from schemas.workflow import TaskResult
from tests.support import letters_for, stored_request
from workers.dsr_worker import activity_context

_SYSTEM = "email_marketing"
_CALLED_OFF = "called off: the request was closed unanswered, and the job was cancelled before it acted"
_TASK = "SELECT status, message FROM system_tasks WHERE request_id = $1::uuid AND system = $2"


async def test_a_processor_acting_after_its_call_off_is_recorded_with_the_relay_down_and_alerted_once_back(
        pool, settings, mail_sink):
    rid = await stored_request(pool, settings, "acted-after-relay-down", type_="erasure")
    await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid", rid)
    context = activity_context(settings, pool)
    await store_task_result(context, rid, TaskResult(system=_SYSTEM, action="erase", status="needs_attention",
                                                     attempt=1, external_id="job-1", message=_CALLED_OFF))
    # As the API records a signed `completed` after the cancellation; then the relay is down (or no
    # worker runs) for longer than the part looks back.
    async with pool.acquire() as conn:
        await append_event(conn, event_key=acted_after_call_off_key(rid, _SYSTEM, "job-1"), request_id=rid,
                           event_type=ACTED_AFTER_CALL_OFF, actor=f"processor:{_SYSTEM}",
                           occurred_at=datetime.now(UTC) - LOOK_BACK - timedelta(hours=1),
                           data={"system": _SYSTEM, "action": "erase", "attempt": 1, "outcome": "completed",
                                 "results_count": 2})
    failed: list[tuple[str, str | None]] = []
    down = activity_context(settings.model_copy(update={"smtp_port": free_port()}), pool)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the relay's refusal, raised once every piece ran
        await settle_acted_after(down, lambda part, request, exc: failed.append((part, request)),
                                 older_than=timedelta(0))
    assert failed == [("acted_after_call_off", rid)]
    version = await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid)
    acted = ("done", acted_message((await context.policy(version)).policy.system_label(_SYSTEM)))
    assert tuple(await pool.fetchrow(_TASK, rid, _SYSTEM)) == acted  # on record, the alert not yet sent
    assert letters_for(mail_sink, rid, "staff_alert") == []
    for _ in range(2):  # the relay back: the next run alerts staff, and the one after sends nothing more
        assert await settle_acted_after(context, _raise, older_than=timedelta(0)) == 0
    assert len(letters_for(mail_sink, rid, "staff_alert")) == 1
    assert tuple(await pool.fetchrow(_TASK, rid, _SYSTEM)) == acted


def _raise(part: str, request_id: str | None, exc: Exception) -> None:
    raise exc
