"""Parts of a periodic job that must not hold one another back (the worker's start sweep, the
Inbox's check): one that fails (an alert the relay refuses for good, a request whose alert cannot
render, Temporal's visibility away for one part) is reported and the others run; `settle` then
raises the first failure, so the job is tried again as a whole (each part idempotent) and is not
recorded as a success. Before, the first failure ended the run: every part after it waited for a
run that failed the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

# How a job says one of its parts failed: (the part, the request it was at or None, the error).
Report = Callable[[str, str | None, Exception], None]


class Pieces:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.failure: Exception | None = None

    @contextmanager
    def piece(self, part: str, request_id: str | None = None) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - raised by settle, once the other pieces have run
            self.report(part, request_id, exc)
            self.failure = self.failure or exc

    def settle(self) -> None:
        if self.failure is not None:
            raise self.failure
