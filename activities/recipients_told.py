"""Whom a response letter names as told of what was done (Art. 19 GDPR: the recipients to whom the
data was disclosed are told of each erasure, rectification and restriction carried out), by one
rule that the letter (activities/letter_outcome.py `response_outcome`), the evidence pack
(api/read_models/evidence.py `recipients_told`) and the restriction's letters share: a system's
recipient is told where its task is done and acted on the subject's data there; not where a hold
kept all it holds (it was asked nothing, unless the hold cut its erasure short), nor where nothing
was acted on (nothing to correct or restrict, every record left as an earlier erasure kept it, or
nothing to apply in the system at all)."""

from __future__ import annotations

from dataclasses import dataclass

from policy.disclosure import Recipient
from schemas.dataset_split import SPLIT_ACTIONS, split_datasets
from schemas.workflow import TaskResult, records_left

ART19_ACTIONS = frozenset({"erase", "rectify", "restrict"})
# The connectors through which we change a system ourselves: such a task that counts no datasets
# had nothing to apply there (a correction naming no field the system has: "no field in this system
# for: city"). A processor's confirmation (opendsr, manual_email) counts none and did what it was
# asked to.
REACHED_DIRECTLY = frozenset({"sql", "http"})


def acted_on_nothing(result: TaskResult, connector: str | None) -> bool:
    """A correction, restriction or objection whose system (reached through `connector`) acted on
    none of the subject's records: a correction that changed none (it left each as an earlier
    erasure kept it, schemas/workflow.py `records_left`, or found it with nothing to correct), a
    restriction or objection whose every dataset needed nothing (an http lookup read them and no
    step set them: schemas/dataset_split.py), or one with nothing to apply in the system at all."""
    if result.action not in SPLIT_ACTIONS:
        return False
    if not result.datasets:
        return not result.changed and connector in REACHED_DIRECTLY
    if result.action == "rectify":
        return not result.changed
    split = split_datasets(result.action, result.datasets)
    return split is not None and not split.acted


def erased_count(result: TaskResult) -> int:
    """The records an erasure erased. `changed` also counts the kept records a hold minimised and
    marked restricted (activities/connectors/sql.py: per dataset, `changed` is those plus what was
    deleted or anonymised); they were kept, not erased, and the letter lists them as kept."""
    minimised = sum(max(counts.get("changed", 0) - counts.get("deleted", 0) - counts.get("anonymised", 0), 0)
                    for counts in result.datasets.values() if counts.get("kept") and "changed" in counts)
    return max(result.changed - minimised, 0)


def kept_whole(result: TaskResult) -> bool:
    """Whether the system kept all it holds under a hold (its "all" record): asked nothing."""
    return any(k.get("dataset") == "all" and k.get("system", result.system) == result.system
               for k in result.kept_records)


@dataclass(frozen=True)
class CutShort:
    """An erasure a legal-claims hold cut short (`cut_short`): of the `identifiers` by which the
    service knows the subject, it had accepted the deletion of the data under `accepted` before the
    hold; the hold keeps the data under the other `kept`. The letter says so, and the evidence pack
    and the console's request page say what the letter says (api/read_models/evidence.py)."""

    identifiers: int
    accepted: int
    kept: int


def cut_short(result: TaskResult) -> CutShort | None:
    """Whether a legal-claims hold, placed while a deletion service's quota held the erasure back,
    kept the rest of a system after part of it was erased: the identifiers the service had accepted
    by then were asked to delete what it holds under them (activities/fanout.py `_erase`). Read from
    the task's counts alone: a task recorded before it counted them (found and changed 0) reads as
    kept whole, as it was told then."""
    if result.action == "erase" and kept_whole(result) and erased_count(result) > 0:
        return CutShort(identifiers=result.found, accepted=result.changed, kept=result.found - result.changed)
    return None




def untold_because(result: TaskResult, connector: str | None) -> str | None:
    """Why the letter does not name `result`'s system's recipient as told (reached through
    `connector`), None where it does: `held_nothing` (the system held nothing of the subject),
    `not_done` (its task did not complete), `kept_whole` (a hold kept all it holds: asked nothing),
    `acted_on_nothing`. The evidence pack gives the reason beside the letter's rule."""
    if result.status == "not_found":
        # A correction recorded `not_found` before 2026-12-07 whose records an erasure kept acted on nothing.
        return "acted_on_nothing" if records_left(result.action, result.datasets) else "held_nothing"
    if result.status != "done":
        return "not_done"
    if cut_short(result) is None and kept_whole(result):
        return "kept_whole"
    return "acted_on_nothing" if acted_on_nothing(result, connector) else None


def told_of(result: TaskResult, connector: str | None) -> bool:
    """Whether the letter names `result`'s system's recipient as told (reached through `connector`)."""
    return result.action in ART19_ACTIONS and untold_because(result, connector) is None


def recipients_named(recipients: list[Recipient]) -> tuple[list[str], bool]:
    """The recipients a letter says were told (Art. 19): each by who it is where the policy knows
    it, else by the kind of service it gives (as the package's summary names recipients), and
    whether any is named by its kind (the letter then offers to say who, on request)."""
    return (sorted({recipient.identity or recipient.name for recipient in recipients}),
            any(recipient.identity is None for recipient in recipients))
