"""The base of every model that crosses a workflow boundary (workflow inputs, activity arguments
and results): unknown fields are refused and values never change once made, so a payload replays
exactly as it was recorded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
