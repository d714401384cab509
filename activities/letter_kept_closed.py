"""What a closing letter (cancellation, denial) of an erasure closed unanswered says of what its
systems had kept under a hold before the close (docs/holds.md "A request closed unanswered"): what a
statute kept is still erased when its period ends, what a legal-claims hold kept is no longer erased
when the claim ends (the close calls it off). Before, the letter said neither, and named a system
whose records the hold had kept entirely as "acted on"."""

from __future__ import annotations

from typing import Any

from activities.letter_outcome import _kept_item as kept_item
from dsrflow.i18n import Translator
from policy.model import Policy

# The request's erasure tasks done with records kept, as [{system, whole, kept}, ...] (`whole`: the
# hold kept all it found there, or the system whole at a processor): an SQL expression over the
# request's row `r`, read with it in the letter's one round trip (activities/letters.py `_deliver`).
KEPT_AT_CLOSE = """(SELECT coalesce(jsonb_agg(jsonb_build_object(
                              'system', system, 'kept', kept_records,
                              'whole', kept >= found OR kept_records @> '[{"dataset": "all"}]') ORDER BY system), '[]')
                      FROM system_tasks WHERE request_id = r.id AND action = 'erase' AND status = 'done'
                       AND jsonb_array_length(kept_records) > 0)"""


def kept_at_close(row: dict[str, Any], policy: Policy, source: Policy, t: Translator,
                  acted: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The closing letter's kept records, in the response letter's terms (`kept_item`: the statute's
    law in the letter's language, its end date): `by_law`, one entry per law and end date with the
    systems and whether all of it is ours and restricted; `for_claims`, the systems a legal-claims
    hold kept in; and `acted` (system ids) without those whose records a legal-claims hold kept
    entirely, as they were: not acted on (a statute's records were reduced, which is acting on them)."""
    if row["request_type"] != "erasure":
        return {"by_law": [], "for_claims": []}, acted
    by_law: dict[tuple[str, Any], dict[str, Any]] = {}
    for_claims: list[str] = []
    for task in row.get("kept_at_close") or []:
        for kept in task["kept"]:
            item = kept_item(kept, policy, row["regime"], t, source)
            label = policy.system_label(task["system"])
            if item["reviewed"]:  # a legal-claims hold's: its date is a review, not an end
                for_claims += [] if label in for_claims else [label]
                continue
            entry = by_law.setdefault((item["law"] or item["basis"], item["until"]),
                                      {"law": item["law"] or item["basis"], "until": item["until"],
                                       "systems": [], "restricted": True})
            entry["systems"] += [] if label in entry["systems"] else [label]
            # A processor's records were neither reduced nor restricted, nor those of a dataset with no
            # column to mark them restricted: the letter does not say they were.
            entry["restricted"] = entry["restricted"] and not item["processor"] and not item["unrestricted"]
    whole = {task["system"] for task in row.get("kept_at_close") or []
             if task["whole"] and all(k["hold_kind"] == "legal_claims" for k in task["kept"])}
    return ({"by_law": sorted(by_law.values(), key=lambda e: (str(e["until"]), e["law"])), "for_claims": for_claims},
            [s for s in acted if s not in whole])
