"""A processor that carried out a job after its call-off had cancelled it: the subject withdrew the
request (or it was cancelled or denied), the processor answered our DELETE that the job was
cancelled, and later said, signed, that it had carried it out (a `completed` callback, or the status
a retry of the call-off read). That is a processor acting against our instruction on a request the
subject withdrew: compliance must see it, and the controller may have to tell the subject.

Before, `completed` after `cancelled` was taken as "equally far along" (dsrflow/domain/
processor_answers.py `went_back`): the callback went on record as any other, nobody was told, and the
task kept "called off ... cancelled before it acted". Now one `processor.acted_after_call_off`
event (once per job: `acted_after_call_off_key`) goes in the trail, the timeline and the evidence
pack, staff are alerted once (`acted_after_call_off` facts, keyed per system and attempt), and the
task's record says the processor acted (`acted_message`).

Who writes what: the call-off's retry (activities/connectors/opendsr_calloff.py) runs in a worker
and does all three, its task's record through the workflow. The API, which takes the callback and
sends no mail, records the event only; the worker's start sweep (`settle_acted_after`, every few
minutes: activities/acted_after_sweep.py) alerts staff and puts it on the task's record, after the
task's own last record (the call-off's, which a callback may beat by a moment), and does nothing twice.

The other way round, a signed `cancelled` after a call-off that could not confirm the cancellation
(refused while pending, its answers not taken, the processor unreachable: every poll after its 202
failed, say) is the job stopped after all: `note_cancelled_later` puts that in the trail as the
call-off's outcome at the end, and the same sweep on the task's record (`cancelled_later_message`),
where it said the processor "may still act".
"""

from __future__ import annotations

import asyncpg

from activities.context import ActivityContext
from activities.letters import letter_key_of
from activities.sweep_alerts import sweep_alert
from dsrflow.domain.audit import append_event
from dsrflow.domain.processor_answers import (
    ACTED_AFTER_CALL_OFF,
    acted_after_call_off_key,
    call_off_keys,
    called_off_later_key,
    closed_unanswered,
)
from schemas.workflow import PROCESSOR_CANCELLED, LetterJob, TaskRecord, TaskResult


def acted_message(label: str) -> str:
    """The task's record once its processor acted after the call-off (never "called off before it acted")."""
    return (f"carried out by {label} after it was called off: the request was closed unanswered and {label} had "
            "cancelled the job, then acted on it all the same; staff are alerted, as the subject may have to be told")


async def record_acted_after(conn: asyncpg.Connection, *, request_id: str, system: str, action: str,
                             external_id: str, attempt: int, count: int | None, actor: str) -> None:
    """The event, once per job; `outcome` completed, so that the job's statuses on record have it."""
    await append_event(conn, event_key=acted_after_call_off_key(request_id, system, external_id),
                       event_type=ACTED_AFTER_CALL_OFF, actor=actor, request_id=request_id,
                       data={"system": system, "action": action, "attempt": attempt, "outcome": "completed",
                             **({"results_count": count} if count is not None else {})})


async def note_acted_after(conn: asyncpg.Connection, *, request_id: str, system: str, action: str,
                           external_id: str, attempt: int, count: int | None, recorded: set[str]) -> bool:
    """A signed `completed` callback (api/callbacks/opendsr.py), on record: whether it is a job
    carried out after it was cancelled (`cancelled` among its statuses on record for the attempt)
    on a request closed unanswered, recorded as such. A job the processor cancelled by itself on an
    open request is not one: nobody called it off."""
    if "cancelled" not in recorded or not await closed_unanswered(conn, request_id):
        return False
    await record_acted_after(conn, request_id=request_id, system=system, action=action, external_id=external_id,
                             attempt=attempt, count=count, actor=f"processor:{system}")
    return True


# A call-off's outcomes that leave the job unconfirmed (activities/connectors/opendsr_calloff.py):
# refused while pending, its answers not taken, the processor not reached. Staff were told to tell it
# by hand, and the task says it may still act.
UNCONFIRMED = frozenset({"refused", "unverified", "unreachable"})


def cancelled_later_message(label: str) -> str:
    """The task's record once the processor's signed callback says the job is cancelled after a
    call-off left it unconfirmed (no longer "it may still act: tell it by hand"): settled, so that
    staff reading the page do not write to a processor about a job it has already cancelled."""
    return (f"called off: the request was closed unanswered, and {label} has since cancelled the job, its signed "
            "callback says (the call-off's own answer had not confirmed it); it did not carry it out. Settled: "
            "nobody need tell it by hand any more")


async def note_cancelled_later(conn: asyncpg.Connection, *, request_id: str, system: str, action: str,
                               external_id: str, attempt: int) -> bool:
    """A signed `cancelled` callback (api/callbacks/opendsr.py), on record: where the job's call-off
    left it unconfirmed (UNCONFIRMED, no cancellation on record), the call-off's outcome that is true
    at the end, `cancelled`, as one more `processor.called_off` (`called_off_later_key`, `via`
    callback: the worker's start sweep puts it on the task's record). Whether it was recorded."""
    outcomes = {row["outcome"] for row in await conn.fetch(
        "SELECT data->>'outcome' AS outcome FROM audit_events WHERE event_key = ANY($1::text[])",
        call_off_keys(request_id, system, external_id))}
    if not outcomes & UNCONFIRMED or "cancelled" in outcomes or not await closed_unanswered(conn, request_id):
        return False
    await append_event(conn, event_key=called_off_later_key(request_id, system, external_id, "cancelled"),
                       event_type="processor.called_off", actor=f"processor:{system}", request_id=request_id,
                       data={"system": system, "action": action, "attempt": attempt, "outcome": "cancelled",
                             "via": "callback"})
    return True


async def alert_acted_after(ctx: ActivityContext, request_id: str, system: str, attempt: int) -> None:
    """Staff are told once (the alert's key): the processor broke the instruction, and the closing
    letter told the subject the job was being called off."""
    await sweep_alert(ctx, LetterJob(
        request_id=request_id, purpose="staff_alert", key=f"acted-after-call-off:{system}:{attempt}", to_staff=True,
        params={"kind": "needs_attention", "days_left": None,
                "facts": {"what": "acted_after_call_off", "system": system}}))


async def alert_call_off_settled(ctx: ActivityContext, request_id: str, system: str, attempt: int) -> bool:
    """Staff who had the call-off's "tell it by hand" alert (opendsr_calloff.py `_alert`, keyed per
    system and attempt) are told, once (this alert's own key), that the processor has since cancelled
    the job: before, only the request's page said so, and someone could still write to a processor
    about a job it had cancelled. Nobody is told where that alert never went (a call-off outcome
    that alerted nobody, or its alert refused for good). Whether it went (or had gone)."""
    first = letter_key_of(request_id, "staff_alert", f"call-off-by-hand:{system}:{attempt}")
    if not await ctx.pool.fetchval("SELECT EXISTS (SELECT FROM audit_events WHERE event_key = $1)",
                                   f"letter:{first}"):
        return False
    return await sweep_alert(ctx, LetterJob(
        request_id=request_id, purpose="staff_alert", key=f"call-off-settled:{system}:{attempt}", to_staff=True,
        params={"kind": "needs_attention", "days_left": None,
                "facts": {"what": "call_off_settled", "system": system}})) is not None


# The task's record when its processor's signed callback says the job is cancelled and its request
# was closed unanswered, where the workflow words it PROCESSOR_CANCELLED: it did not call the job off
# itself (its poll's answer, which says so, is not on record: every poll after the processor's 202
# failed, or the callback came first), and "the processor cancelled the request" read as the
# processor's own doing. Known: the job is cancelled there, and the request had closed; not whether
# our DELETE reached it before.
CANCELLED_AFTER_CLOSE = "cancelled at the processor, its signed callback says, after the request was closed unanswered"


async def cancelled_as_known(pool: asyncpg.Pool, record: TaskRecord) -> TaskResult:
    """The result the workflow records (activities/fanout.py `record_task_result`), worded as above
    on a request closed unanswered; any other as it is (no read)."""
    result = record.result
    if result.message != PROCESSOR_CANCELLED or not await closed_unanswered(pool, record.request_id):
        return result
    return result.model_copy(update={"message": CANCELLED_AFTER_CLOSE})
