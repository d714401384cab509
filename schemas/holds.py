"""Contracts of legal holds and deferred erasure (no personal data: subjects are keyed hashes)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class SweepInput(BaseModel):
    """Erase what became due: everything due today, or one subject's records after a hold on
    them was released."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_hash: str | None = None
    reason: str = "daily sweep"
    as_of: datetime | None = None  # set by the workflow from its clock: what is due by then


class SweepReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    erased: int = 0
    still_held: int = 0
    systems: dict[str, int] = Field(default_factory=dict)
    # Processors asked to erase (activities/deferred_processors.py), by where their erasure stands.
    processors_confirmed: int = 0
    processors_waiting: int = 0
    processors_failed: int = 0
    # Systems that could not erase in this run, and why ("failed: ..." rows staff now answer for,
    # "not reached, ..." rows tried again next run): the others went on (activities/deferred.py).
    unable: dict[str, str] = Field(default_factory=dict)


class KeptRecords(BaseModel):
    """What a hold kept in one dataset, for the plan, the evidence and the response letter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str
    dataset: str
    records: int
    hold_kind: str  # statutory | legal_claims
    basis: str
    law: str
    until: date | None  # None: until the legal-claims hold is released
