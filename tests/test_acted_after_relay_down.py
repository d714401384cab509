"""The worker's start sweep's part for a processor acting after its job's call-off
(activities/acted_after_sweep.py: alert staff, then put it on the task's record) while the mail
relay is down, and for longer than the part looks back (LOOK_BACK, a day). Before, the task's record
waited on the alert (the relay down: "called off ... before it acted" stayed on a job carried out),
and an event past LOOK_BACK was never looked at again: its alert never went, its record never came.
Now the record goes on regardless, and an event whose alert is not on record is looked at until it
is (hDY). And the part killed once the relay took its alert (a process of its own): the next run
sends nothing again and writes the record. In process otherwise: a request stored closed, its task's
record and the API's event written as they are written, the part called as the worker calls it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.acted_after_call_off import acted_message, cancelled_later_message
from activities.acted_after_sweep import LOOK_BACK, settle_acted_after
from activities.task_results import store_task_result
from devstack.processes import free_port
from dsrflow.domain.audit import append_event
from dsrflow.domain.processor_answers import ACTED_AFTER_CALL_OFF, acted_after_call_off_key, called_off_later_key
from schemas.request_start import StartSweepInput
from schemas.workflow import TaskResult
from tests.process_support import activity_killed_at
from tests.support import letters_for, stored_request
from workers.dsr_worker import activity_context

_SYSTEM = "email_marketing"
_CALLED_OFF = "called off: the request was closed unanswered, and the job was cancelled before it acted"
_TASK = "SELECT status, message FROM system_tasks WHERE request_id = $1::uuid AND system = $2"


async def _carried_out_after_call_off(pool, settings, label: str, ago: timedelta) -> tuple[str, tuple[str, str]]:
    """A request closed unanswered whose task's record says its job was called off, and the API's
    event of the processor carrying it out after all, `ago`: its id, and the task's record to come."""
    rid = await stored_request(pool, settings, label, type_="erasure")
    await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid", rid)
    context = activity_context(settings, pool)
    await store_task_result(context, rid, TaskResult(system=_SYSTEM, action="erase", status="needs_attention",
                                                     attempt=1, external_id="job-1", message=_CALLED_OFF))
    async with pool.acquire() as conn:  # as the API records a signed `completed` after the cancellation
        await append_event(conn, event_key=acted_after_call_off_key(rid, _SYSTEM, "job-1"), request_id=rid,
                           event_type=ACTED_AFTER_CALL_OFF, actor=f"processor:{_SYSTEM}",
                           occurred_at=datetime.now(UTC) - ago,
                           data={"system": _SYSTEM, "action": "erase", "attempt": 1, "outcome": "completed",
                                 "results_count": 2})
    version = await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid)
    return rid, ("done", acted_message((await context.policy(version)).policy.system_label(_SYSTEM)))


async def test_a_processor_acting_after_its_call_off_is_recorded_with_the_relay_down_and_alerted_once_back(
        pool, settings, mail_sink):
    # The relay down (or no worker) for longer than the part looks back.
    rid, acted = await _carried_out_after_call_off(pool, settings, "acted-after-relay-down",
                                                   LOOK_BACK + timedelta(hours=1))
    failed: list[tuple[str, str | None]] = []
    down = activity_context(settings.model_copy(update={"smtp_port": free_port()}), pool)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the relay's refusal, raised once every piece ran
        await settle_acted_after(down, lambda part, request, exc: failed.append((part, request)),
                                 older_than=timedelta(0))
    assert failed == [("acted_after_call_off", rid)]
    assert tuple(await pool.fetchrow(_TASK, rid, _SYSTEM)) == acted  # on record, the alert not yet sent
    assert letters_for(mail_sink, rid, "staff_alert") == []
    context = activity_context(settings, pool)
    for _ in range(2):  # the relay back: the next run alerts staff, and the one after sends nothing more
        assert await settle_acted_after(context, _raise, older_than=timedelta(0)) == 0
    assert len(letters_for(mail_sink, rid, "staff_alert")) == 1
    assert tuple(await pool.fetchrow(_TASK, rid, _SYSTEM)) == acted


async def test_a_call_off_settled_past_the_look_back_is_told_to_those_told_to_tell_it_by_hand(
        pool, settings, mail_sink):
    """The processor's signed `cancelled` after a call-off it refused (staff told to tell it by hand),
    recorded by the API longer ago than the part looks back, no run since: the next run tells staff
    it is settled, once, and puts it on the task's record. Before, it was never looked at."""
    rid = await stored_request(pool, settings, "call-off-settled-late", type_="erasure")
    await pool.execute("UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid", rid)
    context = activity_context(settings, pool)
    await store_task_result(context, rid, TaskResult(system=_SYSTEM, action="erase", status="needs_attention",
                                                     attempt=1, external_id="job-1", message="not called off"))
    async with pool.acquire() as conn:
        # The "tell it by hand" alert on record as sent (its letter's key), then the API's event.
        await append_event(conn, event_key=f"letter:{rid}:staff_alert:call-off-by-hand:{_SYSTEM}:1", request_id=rid,
                           event_type="letter.sent", actor="system", data={"purpose": "staff_alert"})
        await append_event(conn, event_key=called_off_later_key(rid, _SYSTEM, "job-1", "cancelled"), request_id=rid,
                           event_type="processor.called_off", actor=f"processor:{_SYSTEM}",
                           occurred_at=datetime.now(UTC) - LOOK_BACK - timedelta(hours=1),
                           data={"system": _SYSTEM, "action": "erase", "attempt": 1, "outcome": "cancelled",
                                 "via": "callback"})
    for _ in range(2):
        await settle_acted_after(context, _raise, older_than=timedelta(0))
    (alert,) = letters_for(mail_sink, rid, "staff_alert")
    version = await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid)
    assert tuple(await pool.fetchrow(_TASK, rid, _SYSTEM)) == (
        "needs_attention", cancelled_later_message((await context.policy(version)).policy.system_label(_SYSTEM)))


class ActedAfterPart:
    """The start sweep's part alone, as a step of its own for `activity_killed_at` (the whole sweep
    needs the workflow engine's client, which a bare process has not)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    async def run(self, sweep: StartSweepInput) -> int:
        return await settle_acted_after(self.ctx, _raise, older_than=timedelta(0))


async def test_a_part_killed_once_the_relay_took_the_alert_records_it_once(pool, settings, mail_sink):
    """Killed once the relay accepted the alert, before the outbox or the task's record say so
    (failpoint mail-accepted): the next run sends nothing again and puts it on the task's record."""
    rid, acted = await _carried_out_after_call_off(pool, settings, "acted-after-killed", timedelta(0))
    await activity_killed_at(settings, f"mail-accepted~{rid}:staff_alert:acted-after-call-off",
                             "tests.test_acted_after_relay_down:ActedAfterPart.run", StartSweepInput())
    assert len(letters_for(mail_sink, rid, "staff_alert")) == 1
    assert tuple(await pool.fetchrow(_TASK, rid, _SYSTEM)) == ("needs_attention", _CALLED_OFF)
    assert await settle_acted_after(activity_context(settings, pool), _raise, older_than=timedelta(0)) >= 1
    assert tuple(await pool.fetchrow(_TASK, rid, _SYSTEM)) == acted
    assert len(letters_for(mail_sink, rid, "staff_alert")) == 1
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid AND event_type = "
                               "'letter.sent' AND data->>'purpose' = 'staff_alert'", rid) == 1


def _raise(part: str, request_id: str | None, exc: Exception) -> None:
    raise exc
