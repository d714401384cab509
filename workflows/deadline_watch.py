"""The deadline watch beside a request's workflow: staff warnings before the current due date
and the overdue flag when it passes, recomputed when the deadline is extended.

Deterministic like the workflow that owns it: its timers and activities are the workflow's own
commands, in the order the workflow has always issued them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.vocabulary import warning_alert_kind
    from schemas.workflow import Checkpoints
    from workflows.dsr_steps import RequestClosed, record_event, send_letter


class WatchedRequest(Protocol):
    """What the watch reads of its request's workflow."""

    request_id: str

    @property
    def closed(self) -> bool: ...

    @property
    def extended(self) -> bool: ...

    @property
    def status(self) -> RequestStatus: ...

    def current_checkpoints(self) -> Checkpoints: ...


class DeadlineWatch:
    def __init__(self) -> None:
        self.warnings_sent: set[tuple[bool, int]] = set()  # (extended?, days before due)
        self.overdue = False

    async def run(self, request: WatchedRequest) -> None:
        """Warn staff before the current due date and flag it when it passes."""
        try:
            await self._watch(request)
        except RequestClosed:
            pass  # closed while one of its alerts waited for staff

    async def _watch(self, request: WatchedRequest) -> None:
        while not request.closed:
            checkpoints = request.current_checkpoints()
            pending = [
                (days, at) for days, at in checkpoints.warnings
                if (request.extended, days) not in self.warnings_sent
            ]
            if pending:
                days, at = min(pending, key=lambda p: p[1])
            elif not self.overdue:
                days, at = 0, checkpoints.overdue_at
            else:
                await workflow.wait_condition(lambda: request.closed)
                return
            extended_now = request.extended
            delay = at - workflow.now()

            def moved(extended_now: bool = extended_now) -> bool:
                return request.closed or request.extended != extended_now

            if delay > timedelta(0):
                try:
                    await workflow.wait_condition(moved, timeout=delay)
                    continue  # closed, or the due date moved: recompute
                except TimeoutError:
                    pass
            await self._deadline_event(request, days, checkpoints)

    async def _deadline_event(self, request: WatchedRequest, days: int, checkpoints: Checkpoints) -> None:
        kind = warning_alert_kind(days)
        if days:
            self.warnings_sent.add((request.extended, days))
        else:
            self.overdue = True
        key = f"{kind}:{checkpoints.due_date.isoformat()}"
        await record_event(request.request_id, f"deadline.{kind}", key,
                           {"due_date": checkpoints.due_date.isoformat(), "status": request.status.value})
        await send_letter(
            request.request_id, "staff_alert", key=key, to_staff=True,
            params={"kind": kind, "days_left": days,
                    "detail": f"status {request.status.value}, due {checkpoints.due_date.isoformat()}"},
        )

    def days_sent(self) -> list[int]:
        return sorted({days for _, days in self.warnings_sent})
