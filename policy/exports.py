"""What a processor without an API may send us as its export of a data subject's data (the upload
on its signed link's page, api/callbacks/processor_uploads.py): how much, of which kinds, and for how long the
link accepts it."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from policy.strict import StrictModel

# The kinds a subject can open without special software, and a ZIP of them. Anything else (HTML,
# scripts, executables, office macros) could harm whoever opens the package, so it is refused.
ExportKind = Literal["json", "csv", "pdf", "text", "zip"]


class ProcessorExports(StrictModel):
    max_file_mb: int = Field(25, ge=1, le=1024)
    max_total_mb: int = Field(100, ge=1, le=4096)
    kinds: tuple[ExportKind, ...] = ("json", "csv", "pdf", "text", "zip")
    # Days after our last e-mail (request or reminder) that the link still accepts an upload; it
    # stops at once when the request closes.
    link_days: int = Field(30, ge=1, le=120)

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if self.max_total_mb < self.max_file_mb:
            raise ValueError("max_total_mb must be at least max_file_mb")
        if not self.kinds:
            raise ValueError("kinds: name at least one kind of file")
        return self

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    @property
    def max_total_bytes(self) -> int:
        return self.max_total_mb * 1024 * 1024
