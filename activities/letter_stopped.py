"""What a letter tells the subject of a system whose task ended without success after its run had
changed part of what it was asked to: its retries ran out, staff resolved it by hand, or the request
was withdrawn or cancelled while it ran. The task's record keeps the changes its http run's journal
counted (`system_tasks.partial_changed`, activities/task_results.py and migration 0049); before,
the letters said nothing of them, as if nothing had been changed there."""

from __future__ import annotations

from typing import Any

from dsrflow.i18n import Translator
from policy.model import Policy

# The request's tasks whose run changed something before the task stopped, as [[system, changes], ...]:
# an SQL expression over the request's row `r`, read with it (activities/letters.py `_deliver`), in
# the letter's one round trip rather than a second (BENCHMARKS.md, B1: a response letter per erasure).
STOPPED_RUNS = """(SELECT coalesce(jsonb_agg(jsonb_build_array(system, partial_changed) ORDER BY system, action), '[]')
                     FROM system_tasks WHERE request_id = r.id AND partial_changed > 0)"""


def stopped_runs(row: dict[str, Any], policy: Policy) -> list[tuple[str, int]]:
    """Each system (by its label) whose run changed something before its task stopped, and how many
    changes: the request's `stopped_runs` (STOPPED_RUNS, read with it)."""
    return [(policy.systems[system].label if system in policy.systems else system, changes)
            for system, changes in row.get("stopped_runs") or []]


def stopped_sentence(system: str, changes: int, t: Translator) -> str:
    """A closing letter's sentence (and a response letter's note) for one such system."""
    return t.ngettext(
        "Our automated work in %(system)s stopped before it was finished; by then it had made %(num)d change "
        "to your records there.",
        "Our automated work in %(system)s stopped before it was finished; by then it had made %(num)d changes "
        "to your records there.", changes) % {"system": system, "num": changes}


def stopped_actions(stopped: list[tuple[str, int]], t: Translator) -> list[dict[str, Any]]:
    """A response letter's lines for them, beside what the other systems did (its "What we erased" or
    "What we did" list, which said nothing had been done there)."""
    return [{"system": system, "category": t.gettext("part of your data"),
             "action": t.gettext("changed before our work there stopped"), "records": changes, "unit": "change",
             "note": stopped_sentence(system, changes, t)} for system, changes in stopped]
