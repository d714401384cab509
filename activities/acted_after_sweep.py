"""The worker's start sweep's part for a processor's signed word after a job's call-off that changes
what the task's record says (activities/acted_after_call_off.py): carried out after its cancellation,
or cancelled after a call-off that could not confirm it. The API takes such a callback and records
its event only, as it sends no mail and leaves a task's record to the worker; this part alerts staff
(of the first) and puts it on the task's record. Apart from that module because the call-off (activities/connectors)
uses it, and this one uses the task's record (activities/task_results.py), which uses connectors."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from activities.acted_after_call_off import (
    acted_message,
    alert_acted_after,
    alert_call_off_settled,
    cancelled_later_message,
)
from activities.context import ActivityContext
from activities.task_results import result_on_record, store_task_result
from dsrflow.domain.processor_answers import ACTED_AFTER_CALL_OFF
from dsrflow.infra.pieces import Pieces, Report
from schemas.workflow import TaskResult

# How far back the sweep looks at every event: past it, only at one whose alert is not on record (_RECENT).
LOOK_BACK = timedelta(days=1)


# The events of the last LOOK_BACK (older than $1: the API has just written one, and its task's own
# record may be a moment behind), each with its request's policy version, for the system's label:
# a processor that acted after cancelling its job, and one that cancelled it after a call-off that
# could not confirm it (a `processor.called_off` the API wrote, `via` callback). Older ones too
# whose alert is on record neither as sent nor as refused for good (the relay down, or no run, for
# longer than LOOK_BACK: before, they were never looked at again, the alert and the task's record
# lost); for a call-off settled, only where the "tell it by hand" alert went (`alert_call_off_settled`
# sends none otherwise). Few: each found by its partial index (migrations 0057 and 0058) rather than
# by reading the trail, its alert's record by its key.
_RECENT = """
    SELECT e.request_id::text AS request_id, e.event_type, e.data, r.policy_version
      FROM audit_events e JOIN dsr_requests r ON r.id = e.request_id
     WHERE e.event_type = 'processor.acted_after_call_off' AND e.occurred_at <= now() - $1::interval
       AND (e.occurred_at >= now() - $2::interval OR NOT EXISTS (
            SELECT FROM audit_events l WHERE l.event_key IN (
                 'letter:' || e.request_id || ':staff_alert:acted-after-call-off:' || (e.data->>'system') || ':'
                     || (e.data->>'attempt'),
                 'letter:' || e.request_id || ':staff_alert:acted-after-call-off:' || (e.data->>'system') || ':'
                     || (e.data->>'attempt') || ':refused')))
    UNION ALL
    SELECT e.request_id::text, e.event_type, e.data, r.policy_version
      FROM audit_events e JOIN dsr_requests r ON r.id = e.request_id
     WHERE e.event_type = 'processor.called_off' AND e.data ? 'via' AND e.occurred_at <= now() - $1::interval
       AND (e.occurred_at >= now() - $2::interval OR (EXISTS (
            SELECT FROM audit_events l WHERE l.event_key = 'letter:' || e.request_id
                 || ':staff_alert:call-off-by-hand:' || (e.data->>'system') || ':' || (e.data->>'attempt'))
       AND NOT EXISTS (
            SELECT FROM audit_events l WHERE l.event_key IN (
                 'letter:' || e.request_id || ':staff_alert:call-off-settled:' || (e.data->>'system') || ':'
                     || (e.data->>'attempt'),
                 'letter:' || e.request_id || ':staff_alert:call-off-settled:' || (e.data->>'system') || ':'
                     || (e.data->>'attempt') || ':refused'))))"""


async def settle_acted_after(ctx: ActivityContext, report: Report, *, older_than: timedelta) -> int:
    """The start sweep's part: alert staff of each job carried out after its cancellation (once),
    and put each such answer on its task's record where that still says otherwise for the same
    attempt (a task staff ran again is left alone). How many records were changed this time."""
    changed, pieces = 0, Pieces(report)
    for row in await ctx.pool.fetch(_RECENT, older_than, LOOK_BACK):
        request_id = row["request_id"]
        data = json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
        system, attempt = str(data["system"]), int(data["attempt"])
        acted = row["event_type"] == ACTED_AFTER_CALL_OFF
        with pieces.piece("acted_after_call_off", request_id):
            try:
                if acted:
                    await alert_acted_after(ctx, request_id, system, attempt)
                else:  # those told to tell it by hand learn it is settled (once), before its record says so
                    await alert_call_off_settled(ctx, request_id, system, attempt)
            finally:
                # Sent or not (the relay away: a later run sends it, above), the record goes on:
                # before, it waited on the alert, and with it, past LOOK_BACK, was lost.
                changed += await _put_on_record(ctx, row["policy_version"], request_id, data, acted)
    pieces.settle()
    return changed


async def _put_on_record(ctx: ActivityContext, version: str, request_id: str, data: dict[str, Any],
                         acted: bool) -> int:
    """The processor's word on its task's record, where that still says otherwise for the same
    attempt: 1 if it was put there now."""
    system, action, attempt = str(data["system"]), str(data.get("action", "erase")), int(data["attempt"])
    record = await result_on_record(ctx.pool, request_id, system, action, None)
    label = (await ctx.policy(version)).policy.system_label(system)
    message = acted_message(label) if acted else cancelled_later_message(label)
    if record is None or record.attempt != attempt or record.status == "pending" or record.message == message:
        return 0
    count = data.get("results_count") or 0
    await store_task_result(ctx, request_id, TaskResult(
        system=system, action=action, status="done" if acted else "needs_attention", attempt=attempt,
        external_id=record.external_id, found=count, changed=count, message=message))
    return 1
