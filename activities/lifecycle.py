"""Activities of a request's life: registration with deadlines, the UK GDPR clock restarted at
identity verification, status changes, events and the extension."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from activities.called_off_marks import lift_at_close
from activities.context import ActivityContext
from dsrflow.domain.audit import append_event
from dsrflow.domain.deadlines import Deadline, compute_deadline, receipt_date_for
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.metrics import verification_event
from dsrflow.infra.writes import Write
from dsrflow.stores.kept_copies import purge_subject_copies
from dsrflow.stores.requests_store import get_request, set_status
from policy.model import Policy
from schemas.requests import RequestType
from schemas.steps import TroubleRecord
from schemas.verification_clock import ClockStarted, VerifiedAt
from schemas.vocabulary import Regime
from schemas.workflow import (
    Checkpoints,
    EventRecord,
    ExtensionRecord,
    RequestFacts,
    StartRequest,
    Transition,
)


def deadline_checkpoints(due: date, timezone: str, warning_days: tuple[int, ...]) -> Checkpoints:
    """Warnings at the start of the day N days before `due`, overdue when `due` ends, all in the
    controller's timezone and returned as UTC instants for the workflow's timers."""
    tz = ZoneInfo(timezone)

    def start_of(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)

    return Checkpoints(
        due_date=due,
        warnings=[(days, start_of(due - timedelta(days=days))) for days in sorted(warning_days, reverse=True)],
        overdue_at=start_of(due + timedelta(days=1)),
        timezone=timezone,
    )


def _deadline(row: dict[str, Any], policy: Policy, verified: date | None = None) -> Deadline:
    """The request's deadlines, counted from receipt (and, under the UK GDPR, from `verified`,
    the day its identity was verified, if later): each day the earlier of the controller's and the
    law's place's (`receipt_date_for`). An appeal or complaint counts from its own receipt (`row`'s)."""
    return compute_deadline(
        row["regime"], receipt_date_for(row["received_at"], policy.defaults.timezone, row["regime"]),
        # The controller's calendar, never the subject's country (Reg. 1182/71 Art. 2(1)): the
        # subject's country is only a fact about them, and any valid code may arrive.
        establishment=policy.defaults.country if row["regime"] == "gdpr" else None,
        verified=verified,
        # An appeal has its own statutory period (dsrflow/domain/appeals.py); a UK complaint, the
        # target of the request's policy version (remedies.uk_gdpr.appeal.answer_days).
        appeal=_is_appeal(row),
        target_days=policy.complaint_days(row["regime"]),
    )


def _is_appeal(row: dict[str, Any]) -> bool:
    return bool((row["details"] or {}).get("appeal_of"))


class LifecycleActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    async def _row(self, conn: asyncpg.Connection | asyncpg.Pool, request_id: str) -> dict[str, Any]:
        row = await get_request(conn, request_id)
        if row is None:
            raise LookupError(f"request {request_id} not found")
        return row

    @activity.defn(name="prepare_request")
    async def prepare_request(self, start: StartRequest) -> RequestFacts:
        """Compute the statutory deadlines and record that the request was received."""
        async with self.ctx.pool.acquire() as conn:
            row = await self._row(conn, start.request_id)
            policy = (await self.ctx.policy(start.policy_version)).policy
            tz = policy.defaults.timezone
            deadline = _deadline(row, policy)
            current = row["current_due_date"] or deadline.due_date
            await append_event(
                conn, event_key=f"{start.request_id}:received", request_id=start.request_id,
                event_type="request.received", actor="workflow",
                data={**deadline.as_json_dict(), "policy_version": start.policy_version},
                along=[Write("""UPDATE dsr_requests SET due_date = $2, extended_due_date = $3,
                                    acknowledge_by = $4, current_due_date = $5, updated_at = now()
                                WHERE id = $1""",
                             (start.request_id, deadline.due_date, deadline.extended_due_date,
                              deadline.acknowledge_by, current))],
            )
        warnings = policy.deadline_warnings_days
        return RequestFacts(
            request_id=start.request_id,
            request_type=RequestType(row["request_type"]),
            regime=row["regime"],
            country=row["country"],
            received_at=row["received_at"],
            attested=row["attested_by"] is not None,
            attested_by=row["attested_by"],
            due_date=deadline.due_date,
            extended_due_date=deadline.extended_due_date,
            acknowledge_by=deadline.acknowledge_by,
            due=deadline_checkpoints(deadline.due_date, tz, warnings),
            extended=deadline_checkpoints(deadline.extended_due_date, tz, warnings),
            verification_max_attempts=policy.verification.max_attempts,
            verification_max_codes=policy.verification.max_codes,
            reminder_after_days=policy.verification.reminder_after_days,
            expires_after_days=policy.verification.expires_after_days,
            # Retention erasures are attested by the system, not by staff: no approval.
            approval_required=policy.approval_required(
                RequestType(row["request_type"]), row["attested_by"] is not None and row["origin"] == "staff",
                appeal=_is_appeal(row)),
            progress_days=policy.complaint_progress_days(row["regime"]) if _is_appeal(row) else None,
            appeal_of=(row["details"] or {}).get("appeal_of"),
            simplified_confirmation=bool((row["details"] or {}).get("simplified_confirmation")),
        )

    @activity.defn(name="start_clock_at_verification")
    async def start_clock_at_verification(self, verified: VerifiedAt) -> ClockStarted | None:
        """UK GDPR: the month to answer starts on the day the identity was verified by code (the
        earlier of London's and the controller's) (DESIGN.md, Deadlines; the ICO's guidance on the right of access). The due date and
        extended due date counted from that day replace those counted from receipt, with the current
        one (the extended date if staff extended already), and the start is audited once
        (`deadline.clock_started`: the days and both dates). None where the clock does not move: any
        other regime (GDPR Art. 12(3) runs from receipt whatever verification takes) and a UK
        complaint to us (DPA 2018 s. 164A counts from its receipt). A retry computes the same dates
        from the same two days and writes them again; the event is keyed by the request."""
        async with self.ctx.pool.acquire() as conn:
            row = await self._row(conn, verified.request_id)
            if row["regime"] != Regime.uk_gdpr or _is_appeal(row):
                return None
            policy = (await self.ctx.policy(verified.policy_version)).policy
            tz = policy.defaults.timezone
            # As receipt is counted: the earlier of London's day and the controller's.
            day = receipt_date_for(verified.verified_at, tz, row["regime"])
            at_receipt, deadline = _deadline(row, policy), _deadline(row, policy, verified=day)
            await append_event(
                conn, event_key=f"{verified.request_id}:clock-started", request_id=verified.request_id,
                event_type="deadline.clock_started", actor="workflow",
                data={"received_on": at_receipt.clock_start.isoformat(), "verified_on": day.isoformat(),
                      "clock_start": deadline.clock_start.isoformat(),
                      "from": at_receipt.due_date.isoformat(), "to": deadline.due_date.isoformat(),
                      "extended_from": at_receipt.extended_due_date.isoformat(),
                      "extended_to": deadline.extended_due_date.isoformat()},
                along=[Write("""UPDATE dsr_requests SET due_date = $2, extended_due_date = $3,
                                    current_due_date = CASE WHEN extended THEN $3::date ELSE $2::date END,
                                    updated_at = now()
                                WHERE id = $1""",
                             (verified.request_id, deadline.due_date, deadline.extended_due_date))],
            )
        failpoint("clock-started", verified.request_id)  # the dates on record, and the workflow not yet told
        warnings = policy.deadline_warnings_days
        return ClockStarted(clock_start=deadline.clock_start, due_date=deadline.due_date,
                            extended_due_date=deadline.extended_due_date,
                            due=deadline_checkpoints(deadline.due_date, tz, warnings),
                            extended=deadline_checkpoints(deadline.extended_due_date, tz, warnings))

    @activity.defn(name="transition")
    async def transition(self, change: Transition) -> None:
        async with self.ctx.pool.acquire() as conn:
            await set_status(
                conn, change.request_id, change.status, event_key=f"{change.request_id}:{change.event_key}",
                actor=change.actor, data=change.data,
            )
            # The close committed (its trigger took the journals of runs under way), the workflow not yet told.
            failpoint("status-recorded", f"{change.request_id}:{change.status.value}")
            if change.status == "completed" and (await self._row(conn, change.request_id))["request_type"] == "erasure":
                # Our own copies of the subject's data (packages, processors' uploads) go with it.
                # Here rather than in the workflow: running requests replay unchanged, and a retry
                # finds the files already gone (dsrflow/stores/kept_copies.py).
                await purge_subject_copies(conn, self.ctx.storage, change.request_id)
        if change.status.is_closed and change.status != "completed":
            # What it called off of a hold already released is kept by nothing now: unrestricted
            # here, not at the next daily sweep. A retry after a kill above lifts them then.
            await lift_at_close(self.ctx, change.request_id)

    @activity.defn(name="record_event")
    async def record_event(self, event: EventRecord) -> None:
        async with self.ctx.pool.acquire() as conn:
            if event.event_type == "verification.succeeded":
                await conn.execute(
                    "UPDATE dsr_requests SET verified_at = coalesce(verified_at, now()) WHERE id = $1",
                    event.request_id,
                )
            await append_event(
                conn, event_key=f"{event.request_id}:{event.event_key}", request_id=event.request_id,
                event_type=event.event_type, actor=event.actor, data=event.data,
            )
        failpoint("event-recorded", event.event_key)  # on record, and the workflow not yet told
        verification_event(event.event_type)

    @activity.defn(name="apply_extension")
    async def apply_extension(self, record: ExtensionRecord) -> None:
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            row = await self._row(conn, record.request_id)
            await conn.execute(
                """UPDATE dsr_requests SET extended = true, current_due_date = extended_due_date,
                       updated_at = now() WHERE id = $1""",
                record.request_id,
            )
            await append_event(
                conn, event_key=f"{record.request_id}:extended", request_id=record.request_id,
                event_type="deadline.extended", actor=record.actor,
                data={"from": row["due_date"].isoformat(), "to": row["extended_due_date"].isoformat(),
                      "reason": record.reason},
            )

    @activity.defn(name="record_step_trouble")
    async def record_step_trouble(self, record: TroubleRecord) -> None:
        """Open a failing step's trouble (the request then needs attention), or close it."""
        trouble = record.trouble
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            if record.resolution is None:
                await conn.execute(
                    """INSERT INTO step_troubles (request_id, trouble_key, step, message, transient, since)
                       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
                    record.request_id, trouble.key, trouble.step, trouble.message, trouble.transient, trouble.since)
            else:
                await conn.execute(
                    """UPDATE step_troubles SET resolved_at = coalesce(resolved_at, now()), resolution = $3
                       WHERE request_id = $1 AND trouble_key = $2""",
                    record.request_id, trouble.key, record.resolution)
            await append_event(
                conn, event_key=f"{record.request_id}:trouble:{trouble.key}:{'closed' if record.resolution else 'opened'}",
                request_id=record.request_id, event_type="step.resolved" if record.resolution else "step.failed",
                actor=record.actor,
                data={"step": trouble.step, "message": trouble.message, "transient": trouble.transient,
                      **({"about": trouble.about} if trouble.about else {}),
                      **({"resolution": record.resolution} if record.resolution else {})},
            )
