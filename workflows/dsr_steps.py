"""The activity calls a request's workflow and its helpers (identity verification, deadline watch)
make: each one step of the request's life, recorded in Postgres and the audit trail."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.workflow import EventRecord, LetterJob, Transition

ACTIVITY = dict(
    start_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
)


async def send_letter(
    request_id: str, purpose: str, *, key: str = "1", params: dict | None = None, to_staff: bool = False
) -> None:
    await workflow.execute_activity(
        "send_letter",
        LetterJob(request_id=request_id, purpose=purpose, key=key, params=params or {}, to_staff=to_staff),
        **ACTIVITY,
    )


async def record_event(request_id: str, event_type: str, key: str, data: dict, actor: str = "workflow") -> None:
    await workflow.execute_activity(
        "record_event",
        EventRecord(request_id=request_id, event_type=event_type, event_key=key, actor=actor, data=data),
        **ACTIVITY,
    )


async def record_transition(
    request_id: str, status: RequestStatus, event: str, data: dict, actor: str = "workflow"
) -> None:
    await workflow.execute_activity(
        "transition",
        Transition(request_id=request_id, status=status, event_key=f"status:{event}", actor=actor, data=data),
        **ACTIVITY,
    )
