"""Contracts of the purge of dsrflow's own copies (packages, processors' uploads): counts only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class PurgeInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = "scheduled purge"
    as_of: datetime | None = None  # set by the workflow from its clock: links expired by then


class PurgeReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    packages: int = 0
    package_bytes: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    orphans: int = 0  # stored objects no row names, left by a crash (dsrflow/stores/kept_copies.py)

    def describe(self, done: bool) -> str:
        verb = "deleted" if done else "would delete"
        uploads = f" and {self.uploads} processor upload(s) ({self.upload_bytes} bytes)" if self.uploads else ""
        orphans = f" and {self.orphans} stored object(s) no record names" if self.orphans else ""
        return f"{verb} {self.packages} package file(s) ({self.package_bytes} bytes){uploads}{orphans}"
