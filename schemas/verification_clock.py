"""Contracts of the UK GDPR clock that starts at identity verification (workflows/verification_clock.py,
activities/lifecycle.py `start_clock_at_verification`): the request and the instant its identity was
verified, and its dates counted from that day."""

from __future__ import annotations

from datetime import date, datetime

from schemas.contract import Contract
from schemas.workflow import Checkpoints


class VerifiedAt(Contract):
    request_id: str
    policy_version: str
    # The workflow's instant of the successful attempt (its clock, not the database's): the
    # controller-local day of it is the day the month starts.
    verified_at: datetime


class ClockStarted(Contract):
    """The request's dates counted from the day its identity was verified."""

    clock_start: date
    due_date: date
    extended_due_date: date
    due: Checkpoints
    extended: Checkpoints
