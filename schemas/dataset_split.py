"""What a correction, restriction or objection did per dataset of a system, as its response letter
says it (activities/letter_outcome.py `_change_lines`) and as the console's Systems table and the
evidence pack say it beside the task's Found and Changed counts (api/read_models/event_words.py
`split_words`), from the one reading here so that the three cannot differ.

An `http` system's lookup reads datasets its steps never change (a Stripe customer's invoices, read
with the customer whose name is corrected or who is marked restricted): the task's `found` counts
them all, and the letter named them all as corrected, restricted or objected to.
"""

from __future__ import annotations

from typing import NamedTuple

from schemas.workflow import dataset_changes

# The actions whose letters name per dataset what they changed and, apart, what they found and
# needed nothing.
SPLIT_ACTIONS = frozenset({"rectify", "restrict", "object"})


class Split(NamedTuple):
    """A system's datasets the action acted on (`acted`, counting `records`) and those whose
    records it found and needed to do nothing to (`unneeded`, counting `found`)."""

    acted: list[str]
    records: int
    unneeded: list[str]
    found: int


def split_datasets(action: str, datasets: dict[str, dict[str, int]] | None) -> Split | None:
    """A task's `Split` (None: another action, or a system that counts no datasets, such as a
    processor's answer). A dataset is acted on where the action changed records in it; for a
    restriction or an objection also where it set its records and found each already so (a sql
    row already restricted counts `changed: 0`: its processing is restricted, as the letter said
    before), since either is a state that holds, where a correction that changed nothing corrected
    nothing. A dataset only read (an http lookup's, counting `found` alone) needed nothing. The
    records counted are a correction's changed, and every record of a dataset restricted (objected
    to), whether set now or found already so; a dataset where nothing was found or changed is not
    named (what a correction left as an earlier erasure kept it is named apart: `records_left`)."""
    if action not in SPLIT_ACTIONS or not datasets:
        return None
    acted: list[str] = []
    unneeded: list[str] = []
    for name, counts in datasets.items():
        set_already = action != "rectify" and any(k not in ("found", "kept", "left") for k in counts)
        if dataset_changes(counts) or (set_already and counts.get("found")):
            acted.append(name)
        elif counts.get("found"):
            unneeded.append(name)
    if action == "rectify":
        records = sum(dataset_changes(datasets[name]) for name in acted)
    else:
        # Every record of a dataset restricted (objected to) is so now, those it found already so
        # as well as those it set: "(3 records)" where one of three was newly set, not "(1 record)".
        records = sum(max(datasets[name].get("found", 0), dataset_changes(datasets[name])) for name in acted)
    return Split(acted=acted, records=records,
                 unneeded=unneeded, found=sum(datasets[name]["found"] for name in unneeded))
