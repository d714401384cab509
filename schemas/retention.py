"""Contracts of the retention sweep. Counts only: no subject, address or record key travels
through Temporal."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class RetentionSweepInput(BaseModel):
    """Apply the policy's retention rules (all of them, or those named) as of `as_of`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = "daily retention sweep"
    rules: list[str] | None = None  # None: every rule
    as_of: datetime | None = None  # set by the workflow from its clock


class RuleOutcome(BaseModel):
    """What one rule did in one run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str
    action: str  # erase_subject | delete_rows
    system: str
    dataset: str
    due: int = 0  # subjects (erase_subject) or rows of the rule's dataset (delete_rows) found expired
    started: int = 0  # erase_subject: erasure requests started (or found started already today)
    removed: dict[str, int] = Field(default_factory=dict)  # delete_rows: dataset -> rows erased or cleared
    held: int = 0  # left alone: a legal-claims hold covers them
    in_progress: int = 0  # erase_subject: an erasure request for the subject is already open
    unidentifiable: int = 0  # erase_subject: no usable e-mail address on the row
    already_erased: int = 0  # erase_subject: erased by this rule since their last activity
    deferred: int = 0  # beyond the rule's max_per_run: left for the next run
    error: str | None = None  # the rule could not run (names and counts only); the others did


class RetentionReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: datetime
    policy_version: str
    rules: list[RuleOutcome] = Field(default_factory=list)
