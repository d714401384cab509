"""Contracts of the scheduled audit anchor: positions and hashes only, nothing personal."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AnchorInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = "scheduled anchor"


class AnchorReport(BaseModel):
    """The anchor written (None: no chain changed). Returned by the workflow, so the anchor chain's
    progress is also recorded outside the database, in the workflow's history."""
    model_config = ConfigDict(extra="forbid")

    position: int | None = None
    hash: str | None = None
    chains: int = 0
