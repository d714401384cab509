"""What every part of the policy's model shares: unknown keys and later changes are refused, and
names that end up in SQL are plain identifiers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# A table, column or dataset name: it is quoted into SQL, so nothing but a plain identifier.
IDENT = r"^[a-z_][a-z0-9_]{0,62}$"


class StrictModel(BaseModel):
    """A policy section: a misspelt key is an error naming its path, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
