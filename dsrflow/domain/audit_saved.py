"""Anchors an operator saved outside the database, compared with the database's anchor chain.

The chain checks (audit_verify.py) cannot catch a rewrite of the anchors' own tail, or of the
whole database, done consistently: only copies kept elsewhere can. The same comparison is what
shows a restore from a backup: the anchors written since the backup are gone, and new ones take
their positions with other hashes. Which saved positions still match says which it was: after a
restore, every anchor saved before the backup matches, and the first one saved after it is the
first to differ (docs/audit.md, "After a restore").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from dsrflow.domain.audit_anchors import Anchor

# The line `dsrflow audit verify --anchor` prints for the anchor it wrote (`anchor_line`); a saved
# log may hold other lines too (its reports, "no chain changed ..."), which are not anchors.
_SAVED_LINE = re.compile(r"\banchor (\d+) over \d+ chain\(s\): ([0-9a-f]{64})\b")


def anchor_line(anchor: Anchor) -> str:
    """What to save of an anchor, outside the database: its position and hash."""
    return f"anchor {anchor.position} over {anchor.chains} chain(s): {anchor.hash}"


def read_saved(text: str) -> list[tuple[int, str]]:
    """The (position, hash) of every anchor line in `text`, in its order (a log kept across a
    restore may name a position twice, with two hashes)."""
    return [(int(m.group(1)), m.group(2)) for m in _SAVED_LINE.finditer(text)]


def _ranges(positions: Iterable[int]) -> str:
    """1, 2, 3, 5 as "1-3, 5"."""
    runs: list[list[int]] = []
    for position in sorted(set(positions)):
        if runs and position == runs[-1][1] + 1:
            runs[-1][1] = position
        else:
            runs.append([position, position])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@dataclass(frozen=True)
class SavedAnchors:
    matching: list[int]
    differing: list[int]
    missing: list[int]  # saved positions the database holds no anchor at
    first_differing_at: datetime | None = None  # when the database says its anchor there was written

    @property
    def ok(self) -> bool:
        return not self.differing and not self.missing

    def describe(self) -> str:
        # Positions, not lines: a log kept across a restore may name one twice.
        said = "saved anchors: " + "; ".join(
            f"{len(set(positions))} {what} ({_ranges(positions) or 'none'})"
            for what, positions in (("match", self.matching), ("differ", self.differing),
                                    ("not in the database", self.missing)) if positions or what == "match")
        if self.ok:
            return said
        first = min([*self.differing, *self.missing])
        written = (f" (the database's was written {self.first_differing_at.isoformat(timespec='seconds')})"
                   if self.first_differing_at and first in self.differing else "")
        return (f"{said}\nanchor {first} as saved is not in the database{written}: a restore from a backup "
                "older than it, or a rewrite (docs/audit.md, \"After a restore\")")


async def compare_saved(conn: asyncpg.Connection, saved: Sequence[tuple[int, str]]) -> SavedAnchors:
    """Each saved anchor against the database's anchor at its position."""
    rows = await conn.fetch("SELECT position, hash, anchored_at FROM audit_anchors WHERE position = ANY($1::bigint[])",
                            sorted({p for p, _ in saved}))
    held = {r["position"]: r for r in rows}
    matching = [p for p, h in saved if p in held and held[p]["hash"] == h]
    differing = [p for p, h in saved if p in held and held[p]["hash"] != h]
    missing = [p for p, _ in saved if p not in held]
    first = held[min(differing)]["anchored_at"] if differing else None
    return SavedAnchors(matching, differing, missing, first)
