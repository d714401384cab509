"""What a closing letter (cancellation, denial) of an erasure closed unanswered says of what its
systems had kept under a hold before the close (docs/holds.md "A request closed unanswered"): what a
statute kept is still erased when its period ends, what a legal-claims hold kept is no longer erased
when the claim ends (the close calls it off). Before, the letter said neither, and named a system
whose records the hold had kept entirely as "acted on".

The letter says what is true when it is written, read from each kept record's deferred erasure
(`fate`): a hold released while the request was open has had its records erased, or asked of the
processor, already; a statute's period may have ended since; a hold released since the close leaves
them as they are. Before, the letter said "we will not erase it when the claim ends" of data erased
days before, and gave each statute end date a sentence of its own, the same but for the date."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from activities.letter_outcome import _kept_item as kept_item
from dsrflow.i18n import Translator
from policy.model import Policy

# Where a kept record's deferred erasure stands when the letter is written: `erased` (all its rows
# done: by the sweep, a processor's confirmation or staff's record), `failed` (the processor refused
# or never confirmed, or our own system could not erase: staff alerted, the sweep no longer tries
# until staff ask again; before, it read as `asked`, and the letter said the erasure was awaited;
# also a statute's row the sweep has not reached since its period ended, `unreached_since`: it tries
# again each day until the system's completion_timeout_days, then fails it, and the letter said "we
# are deleting them" of records no run had been able to delete), `asked` (a processor asked and not
# yet confirmed, or a failed erasure asked again by staff: of a processor, or of our own system,
# whose erasure the sweep runs again, at once on the press, else on its next run: `kept_at_close`
# tells the two apart), `unreached` (a released legal-claims hold's row the sweep
# has not reached since, `unreached_since`, nobody asked yet: before, it read as `released`, or as
# kept in the response, of data the claim no longer kept and no run had been able to erase),
# `released` (its legal-claims hold released, nothing erased: called off, or to be by the sweep
# before it erases), else `kept` (no row found: as kept).
_FATE = """(SELECT CASE WHEN bool_and(d.done_at IS NOT NULL) THEN 'erased'
                        WHEN bool_or(d.done_at IS NULL AND (d.failed_at IS NOT NULL OR (d.hold_kind = 'statutory'
                                                            AND d.unreached_since IS NOT NULL))) THEN 'failed'
                        WHEN bool_or(d.done_at IS NULL AND d.unreached_since IS NOT NULL AND d.submitted_at IS NULL
                                     AND d.called_off_at IS NULL) THEN 'unreached'
                        WHEN bool_or(d.done_at IS NULL AND (d.submitted_at IS NOT NULL
                                                            OR d.retried_at IS NOT NULL)) THEN 'asked'
                        WHEN bool_or(h.released_at IS NOT NULL) THEN 'released' ELSE 'kept' END
              FROM deferred_erasures d
              LEFT JOIN legal_holds h ON d.hold_kind = 'legal_claims' AND h.id::text = d.hold_ref
             WHERE d.request_id = r.id AND d.system = t.system AND d.dataset = k->>'dataset'
               AND d.hold_ref = k->>'hold_ref' AND (d.hold_kind = 'legal_claims') = (k->>'hold_kind' = 'legal_claims')
               AND (d.hold_kind = 'legal_claims' OR d.erase_after = (k->>'until')::date + 1))"""

# The request's erasure tasks done with records kept, as [{system, whole, kept}, ...] (`whole`: the
# hold kept all it found there, or the system whole at a processor; each kept record with its
# `fate`): an SQL expression over the request's row `r`, read with it in the letter's one round trip
# (activities/letters.py `_deliver`).
KEPT_AT_CLOSE = f"""(SELECT coalesce(jsonb_agg(jsonb_build_object(
                              'system', t.system,
                              'kept', (SELECT jsonb_agg(k || jsonb_build_object('fate', {_FATE}))
                                         FROM jsonb_array_elements(t.kept_records) k),
                              'whole', t.kept >= t.found OR t.kept_records @> '[{{"dataset": "all"}}]')
                              ORDER BY t.system), '[]')
                      FROM system_tasks t WHERE t.request_id = r.id AND t.action = 'erase' AND t.status = 'done'
                       AND jsonb_array_length(t.kept_records) > 0)"""

# What a legal-claims hold kept, by where it stands (`_FATE`): the letter's sentence for each. A
# failed erasure is `unconfirmed` at a processor (asked; it refused or never confirmed: the letter
# says what is known and that we follow it up, not that confirmation is on its way) and `unerased`
# in our own systems (never asked of anyone: "we have asked for it to be erased" was untrue). One
# asked again by staff (`asked`) is `erasing` in our own systems: no outside party was asked, and
# no confirmation awaited; the sweep erases it (before: "we have asked for that data to be erased
# ... waiting for confirmation").
CLAIMS_FATES = ("kept", "released", "asked", "erasing", "unconfirmed", "unerased", "erased")


def _by_law(entries: dict[str, dict[str, Any]], item: dict[str, Any], where: str, fate: str, today: date) -> None:
    """One statute's kept record into its law's entry: one statement per law, whatever its end
    dates (documents of different years), with the dates still to come, those past and erased, and
    those past whose erasure has not yet run (`due`: the daily sweep's), and those past whose erasure
    failed or whose system the sweep has not reached (`unerased`: not "we are deleting them")."""
    law = item["law"] or item["basis"]
    # `foreign`: the name of a law that is no obligation of ours under the request's ("Belgian law"
    # under the UK GDPR): the letter says we kept them to comply with it, not that "the law requires"
    # it, before the paragraph that says only UK law can; `foreign_law` is for that paragraph.
    entry = entries.setdefault(law, {"law": law, "systems": [], "until": [], "deleted": [], "due": [], "unerased": [],
                                     "restricted": True, "foreign": item["foreign_law"],
                                     "foreign_law": item["foreign_law"]})
    entry["systems"] += [] if where in entry["systems"] else [where]  # each as a letter names it after "in"
    past = item["until"] is not None and item["until"] < today
    failed = fate in ("unconfirmed", "unerased")  # `failed`, as kept_at_close names it
    dates: list[date] = entry["deleted" if fate == "erased" else ("unerased" if failed else "due") if past else "until"]
    dates += [] if item["until"] is None or item["until"] in dates else [item["until"]]
    # A processor's records were neither reduced nor restricted, nor those of a dataset with no
    # column to mark them restricted: the letter does not say they were.
    entry["restricted"] = entry["restricted"] and not item["processor"] and not item["unrestricted"]


def kept_at_close(row: dict[str, Any], policy: Policy, source: Policy, t: Translator,
                  acted: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The closing letter's kept records, in the response letter's terms (`kept_item`: the statute's
    law in the letter's language, its end dates): `by_law`, one entry per law with its systems, its
    end dates still to come (`until`) and those past, their records deleted (`deleted`) or not yet
    (`due`) or failed (`unerased`), whether all
    of it is ours and restricted, and the name of a law that is no obligation of ours under the
    request's (`foreign_law`: the UK GDPR's letter gives our basis and the objection); `for_claims`,
    the systems a legal-claims hold kept in, per fate (CLAIMS_FATES); and `acted` (system ids)
    without those whose records a legal-claims hold kept entirely, as they were: not acted on (a
    statute's records were reduced, which is acting on them)."""
    claims: dict[str, list[str]] = {fate: [] for fate in CLAIMS_FATES}
    if row["request_type"] != "erasure":
        return {"by_law": [], "for_claims": claims}, acted
    by_law: dict[str, dict[str, Any]] = {}
    today = datetime.now(ZoneInfo(policy.defaults.timezone)).date()  # the controller's, as the sweep's
    for task in row.get("kept_at_close") or []:
        for kept in task["kept"]:
            item = kept_item(kept, policy, row["regime"], t, source)
            # Named after a verb ("We had kept your personal data in our CRM"), not by its bare label.
            where, fate = item["where"], kept.get("fate") or "kept"
            if fate == "failed":
                fate = "unconfirmed" if item["processor"] else "unerased"
            elif fate == "asked" and not item["processor"]:  # asked again by staff: the sweep erases it
                fate = "erasing"
            elif fate == "unreached":  # never asked of anyone, processor or not: not yet erased
                fate = "unerased"
            if item["reviewed"]:  # a legal-claims hold's: its date is a review, not an end
                claims[fate] += [] if where in claims[fate] else [where]
            else:
                _by_law(by_law, item, where, fate, today)
    for entry in by_law.values():
        for dates in (entry["until"], entry["deleted"], entry["due"], entry["unerased"]):
            dates.sort()
        # Nothing left to object to once a foreign law's records are all deleted.
        entry["foreign_law"] = entry["foreign_law"] if entry["until"] else None
    whole = {task["system"] for task in row.get("kept_at_close") or []
             if task["whole"] and all(k["hold_kind"] == "legal_claims" for k in task["kept"])}
    laws = sorted(by_law.values(), key=lambda e: (str(min(e["until"] + e["deleted"] + e["due"] + e["unerased"], default="")), e["law"]))
    return {"by_law": laws, "for_claims": claims}, [s for s in acted if s not in whole]
