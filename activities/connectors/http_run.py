"""What one action of the `http` connector (activities/connectors/http.py) has found and done so
far: the records read, by dataset and by step, the counts of its effects, the keys it erased, what
a hold keeps, and which records it may act on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from activities.connectors.http_journal import Journal
from activities.connectors.http_quota import QuotaExhausted

MIB = 1024 * 1024


@dataclass
class Budget:
    """What one action may read from the service (HttpConfig.max_read_mib, max_records): a
    service answering pages without end, or pages of millions of records, stops there instead
    of filling the worker's memory."""

    max_bytes: int
    max_records: int
    read: int = 0
    kept: int = 0

    def over(self, *, read: int = 0, kept: int = 0) -> str | None:
        """Take `read` bytes and `kept` records; what is exceeded, in words, if anything."""
        self.read += read
        self.kept += kept
        if self.read > self.max_bytes:
            return f"more than {self.max_bytes // MIB} MiB of answers (max_read_mib)"
        if self.kept > self.max_records:
            return f"more than {self.max_records} records (max_records)"
        return None


@dataclass
class Run:
    """What one action has found and done so far."""

    context: dict[str, Any]
    budget: Budget
    found: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    by_step: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    step_dataset: dict[str, str | None] = field(default_factory=dict)
    effects: dict[str, dict[str, int]] = field(default_factory=dict)
    erased: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    collected: dict[str, list[Any]] = field(default_factory=dict)
    held: dict[str, dict[str, tuple[date, str]]] = field(default_factory=dict)
    waiting: QuotaExhausted | None = None
    sent: int = 0  # requests that changed something, for the failpoint after each
    # The records an erasure may touch, by dataset (ErasureContext.only): a released hold's.
    only: Mapping[str, frozenset[str]] | None = None
    # The records a correction leaves as they are, by dataset: those an erasure kept under a hold.
    leave: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # What the run did in earlier attempts, and where this one records what it does (a task's action).
    journal: Journal | None = None
    # The evidence of the changes planned (http.py `_intent`), kept by the first change that goes:
    # after its journal write, which finds out whether the task has ended, and before its request.
    evidence: Callable[[], Awaitable[None]] | None = None
    # A task's erasure, which reads again after its changes (http_rounds.py): the requests of the
    # changes that leave their record in place (a held customer minimised), made once in the run.
    handled: set[str] | None = None
    # The journal's name of a read after the changes ("" for the run's first pass), and what the
    # changes of such a read counted, by dataset: records that appeared while the run went on.
    round: str = ""
    appeared: dict[str, list[Any]] | None = None
    # Such a read's: the keys of the records the run found before it, by dataset. A request for a
    # whole dataset (delete by e-mail) counts only the records not among them: a search that lags
    # behind the deletes (HubSpot's is eventually consistent) lists those again, and the answer
    # (204) says nothing of which records were there.
    listed_before: Mapping[str, frozenset[str]] | None = None
    # Records the reads after the changes found and changed, in all; and those of the last of
    # them, when records kept appearing up to it (the task then needs staff).
    checked: int | None = None
    still_appearing: int = 0

    def erasures(self) -> dict[str, list[tuple[str, str]]]:
        return {dataset: keys for dataset, keys in self.erased.items() if keys}

    def planning(self) -> Run:
        """A run that goes on from what this one read, for planning its effects."""
        return Run(context=dict(self.context), budget=self.budget, found=self.found, by_step=self.by_step,
                    step_dataset=self.step_dataset, held=self.held, only=self.only, leave=self.leave,
                    handled=self.handled)

    def count(self, dataset: str, effect: str, n: int = 1) -> None:
        counts = self.effects.setdefault(dataset, {})
        counts[effect] = counts.get(effect, 0) + n
