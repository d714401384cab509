"""Telling a processor's task that the processor answered: its workflow (workflows/system_task.py)
waits for the `processor_update` signal, polling the processor now and then meanwhile.

The API records an answer, then tells the task: a confirmation or an export on the processor's
link (api/callbacks/manual_confirm.py), a signed OpenDSR callback (api/callbacks/opendsr.py). An
API that dies between the two (or finds Temporal away) leaves the answer on record and the task
waiting for its next poll, up to six hours away. A processor that sends again tells it then; one
that does not is caught up by the worker's start sweep (activities/request_start_sweep.py), which
tells each task whose answer is on record while the task still waits (`untold_answers`). Telling a
task twice does nothing twice: the task acts on the first word it takes and has ended by the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from dsrflow.infra.temporal_client import ENGINE_CALL
from schemas.workflow import RUNS_AFTER_CLOSE, SETTLING_STATUSES, EventRecord, ProcessorUpdate, task_workflow_id

# SystemTaskWorkflow's signal, named: the core library does not import the workflows.
PROCESSOR_UPDATE = "processor_update"


async def tell_task(client: Client, workflow_id: str, update: ProcessorUpdate) -> bool:
    """Signal the task's workflow; False when it has settled already (a poll got there first, or
    staff resolved it), which the answer has nothing to add to. Temporal away raises."""
    try:
        await client.get_workflow_handle(workflow_id).signal(PROCESSOR_UPDATE, update, rpc_timeout=ENGINE_CALL)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


def callback_event_key(request_id: str, system: str, external_id: str, status: str) -> str:
    """The key of a signed OpenDSR callback's `processor.callback` event: one per job and status
    (`_UNTOLD` below finds a task's answer by it)."""
    return f"{request_id}:callback:{system}:{external_id}:{status}"


# How far each of OpenDSR's statuses is along a job; the two ends are as far as each other.
_PROGRESS = {"pending": 0, "in_progress": 1, "completed": 2, "cancelled": 2}
# The audit event of a signed callback whose status goes back on one on record (`went_back`): one
# per job, however many such callbacks come.
CALLBACK_WENT_BACK = "processor.callback_went_back"


@dataclass(frozen=True)
class OnRecord:
    """What the job's signed callbacks put on record for the task's attempt (`recorded_statuses`)."""

    statuses: set[str]
    counted: bool  # a completion's count: with the first `completed`, or after it (`count_event_key`)


def count_event_key(request_id: str, system: str, external_id: str) -> str:
    """The key of a completion's count that came after a `completed` without one: a second
    `processor.callback` event, once per job, so that the count is on record and told."""
    return f"{callback_event_key(request_id, system, external_id, 'completed')}:count"


def called_off_event_key(request_id: str, system: str, external_id: str) -> str:
    """The key of the job's `processor.called_off` event, once per job: its call-off at its request's
    close (activities/connectors/opendsr_calloff.py)."""
    return f"{request_id}:called-off:{system}:{external_id}"


# The audit event of a job its processor carried out after its call-off had cancelled it (a signed
# `completed` after a `cancelled` on record, from a callback or the call-off's retry): the processor
# acted on a request closed unanswered, against our instruction. Once per job
# (`acted_after_call_off_key`); activities/acted_after_call_off.py alerts staff and puts it on the task.
ACTED_AFTER_CALL_OFF = "processor.acted_after_call_off"


def acted_after_call_off_key(request_id: str, system: str, external_id: str) -> str:
    return f"{called_off_event_key(request_id, system, external_id)}:acted-after"


def called_off_later_key(request_id: str, system: str, external_id: str, outcome: str) -> str:
    """The key of a later `processor.called_off` event for the job, once per outcome: a retry of the
    call-off (its first try's result lost with its worker) that finds the job further along than the
    first answer on record (under way, then carried out) says so in the trail, which kept the first."""
    return f"{called_off_event_key(request_id, system, external_id)}:{outcome}"


def call_off_keys(request_id: str, system: str, external_id: str) -> list[str]:
    """Every key the job's call-off may have put on record: the first answer, a later one that found
    it further along, and its carrying out after it was cancelled."""
    return [called_off_event_key(request_id, system, external_id),
            *(called_off_later_key(request_id, system, external_id, state) for state in _PROGRESS),
            acted_after_call_off_key(request_id, system, external_id)]


async def closed_unanswered(db: asyncpg.Connection | asyncpg.Pool, request_id: str) -> bool:
    """Whether the request was closed unanswered (withdrawn, cancelled, denied, closed unverified):
    its processors' jobs are called off (activities/connectors/opendsr_calloff.py), and what they
    answer after is read against that."""
    return bool(await db.fetchval("SELECT closed_at IS NOT NULL AND status <> 'completed' FROM dsr_requests "
                                  "WHERE id = $1::uuid", request_id))


async def recorded_statuses(conn: asyncpg.Connection | asyncpg.Pool, request_id: str, system: str,
                            external_id: str, attempt: int) -> OnRecord:
    """The statuses of the job's signed callbacks on record for the task's `attempt` (their events,
    by `callback_event_key` and `count_event_key`), and whether a completion's count is. A call-off's
    outcome is one of them where it is the job's signed status (cancelled, completed, in_progress):
    a callback saying `pending` after it went on record as the job's status, unrefused."""
    keys = [callback_event_key(request_id, system, external_id, status) for status in _PROGRESS]
    rows = await conn.fetch("SELECT coalesce(data->>'status', data->>'outcome') AS status, "
                            "(data->>'attempt')::int AS attempt, data ? 'results_count' AS counted "
                            "FROM audit_events WHERE event_key = ANY($1::text[])",
                            [*keys, count_event_key(request_id, system, external_id),
                             *call_off_keys(request_id, system, external_id)])
    # (A call-off refused, unverified or unreachable says nothing of the job's status.)
    ours = [row for row in rows if row["attempt"] == attempt and row["status"] in _PROGRESS]
    return OnRecord({row["status"] for row in ours}, any(row["counted"] for row in ours))


def went_back(status: str, recorded: set[str]) -> str | None:
    """The status on record that `status` goes back on (`in_progress` after `completed`), or None.
    A processor's word that its job went back is no new fact about the job: a late delivery, or
    a processor contradicting itself, which its callbacks must not write into the trail without
    end (pending, in_progress, pending, ... each a new status).
    `cancelled` after `completed` goes back too: the job was carried out (an erasure done), which a
    later cancellation cannot undo. Before, it went on record as any callback, the trail saying the
    job was cancelled after it was done, and a task still polling for its count ended "the processor
    cancelled the request". (`completed` after `cancelled` is the other way: a processor acting after
    it cancelled, activities/acted_after_call_off.py.)"""
    ahead = [earlier for earlier in recorded if _PROGRESS.get(earlier, 0) > _PROGRESS[status]]
    if status == "cancelled" and "completed" in recorded:
        ahead.append("completed")
    return max(sorted(ahead), key=_PROGRESS.__getitem__) if ahead else None


def went_back_event_key(request_id: str, system: str, external_id: str) -> str:
    return f"{request_id}:callback-went-back:{system}:{external_id}"


# The audit event of a task told by the sweep (`told_late_event`): the evidence that the task
# learnt its processor's answer late, and how.
TOLD_LATE = "processor.answer_told_late"


@dataclass(frozen=True)
class UntoldAnswer:
    request_id: str
    system: str
    action: str
    attempt: int
    update: ProcessorUpdate
    via: Literal["link", "callback"]  # a confirmation or export on the processor's link, or a signed callback
    answered_at: datetime

    @property
    def workflow_id(self) -> str:
        return task_workflow_id(self.request_id, self.system, self.action, self.attempt)

    def telling(self, told_at: datetime) -> ProcessorUpdate:
        """The word the sweep sends the task: the API's, with the record that the sweep told it
        (which the task writes too, so that it is on record even if the sweep dies meanwhile)."""
        event = self.told_late_event(told_at)
        # The key without the request's id, which the recording step puts in front
        # (activities/lifecycle.py `record_event`): one record either way.
        key = event.pop("event_key").removeprefix(f"{self.request_id}:")
        return self.update.model_copy(update={"told_late": EventRecord(event_key=key, **event)})

    def told_late_event(self, told_at: datetime) -> dict[str, Any]:
        """`append_event`'s arguments for the record that the sweep told the task: one per task
        and attempt (two sweeps telling it at once write it once), with how the answer came and
        how long it had waited for the task."""
        return {
            "event_key": f"{self.request_id}:told-late:{self.system}:{self.action}:{self.attempt}",
            "request_id": self.request_id, "event_type": TOLD_LATE, "actor": "sweep",
            "data": {"system": self.system, "action": self.action, "attempt": self.attempt, "via": self.via,
                     "status": self.update.status, "answered_at": self.answered_at.isoformat(),
                     "minutes_untold": int((told_at - self.answered_at).total_seconds() // 60)},
        }


# Tasks of open requests still waiting ('pending' on record) whose processor's answer has been on
# record between $1 (the API tells a task within milliseconds: not one it is telling now) and $2
# ago: a confirmation or an export on the link (`manual_tasks`, which one link answers
# whatever the attempt), or a signed callback that settles the task, for the attempt it was sent
# for (its event, by `callback_event_key`; $3 the settling statuses). The first answer of a task,
# as the API told them in turn. The open statuses are those of the queue's partial index
# (migrations/0006), which finds the open requests; a restriction's lift, which runs on its closed
# request (workflows/restriction_lifecycle.py), is told too (its link takes the processor's answer:
# api/callbacks/processor_uploads.py), where before it waited for its next poll. OpenDSR has no lift
# (its task needs staff at once), so no callback answers one.
_UNTOLD = f"""
    SELECT DISTINCT ON (request_id, system, action) * FROM (
        SELECT s.request_id::text AS request_id, s.system, s.action, s.attempt, m.confirmed_at AS answered_at,
               'completed' AS status, NULL::int AS results_count, 'link' AS via
          FROM dsr_requests r
          JOIN system_tasks s ON s.request_id = r.id AND s.status = 'pending'
          JOIN manual_tasks m ON (m.request_id, m.system, m.action) = (s.request_id, s.system, s.action)
         WHERE (r.status IN ('awaiting_verification', 'in_progress', 'awaiting_approval')
                OR s.action = '{RUNS_AFTER_CLOSE}')
           AND m.confirmed_at BETWEEN now() - $2::interval AND now() - $1::interval
        UNION ALL
        SELECT s.request_id::text, s.system, s.action, s.attempt, e.occurred_at,
               e.data ->> 'status', (e.data ->> 'results_count')::int, 'callback'
          FROM dsr_requests r
          JOIN system_tasks s ON s.request_id = r.id AND s.status = 'pending' AND s.external_id IS NOT NULL
          CROSS JOIN unnest($3::text[]) AS settling
          JOIN audit_events e ON e.event_key = r.id::text || ':callback:' || s.system || ':' || s.external_id
                                               || ':' || settling
         WHERE r.status IN ('awaiting_verification', 'in_progress', 'awaiting_approval')
           AND (e.data ->> 'attempt')::int = s.attempt
           AND e.occurred_at BETWEEN now() - $2::interval AND now() - $1::interval
    ) answers
    ORDER BY request_id, system, action, answered_at"""

# How far back the sweep looks. Past it the task's own polls, at most six hours apart, have read
# the answer; a task still waiting then has a processor whose status contradicts its callback, and
# its polls, backing off, follow that processor rather than a poll every run of the sweep.
LOOK_BACK = timedelta(days=1)


async def untold_answers(pool: asyncpg.Pool, *, older_than: timedelta) -> list[UntoldAnswer]:
    """The tasks waiting for a processor's answer that is on record (`_UNTOLD`), each with the word
    the API sends it: "completed" for a link's answer, the callback's status (and count) for one."""
    rows = await pool.fetch(_UNTOLD, older_than, LOOK_BACK, sorted(SETTLING_STATUSES))
    return [UntoldAnswer(request_id=row["request_id"], system=row["system"], action=row["action"],
                         attempt=row["attempt"], via=row["via"], answered_at=row["answered_at"],
                         update=ProcessorUpdate(status=row["status"], results_count=row["results_count"]))
            for row in rows]
