"""What a response letter says was done: each system's action and count (never a kept record
counted as erased), what was kept and why in the letter's language and its regime's law, whom
Art. 19 reached, what a copy could not include. Read from the execution report by
activities/letter_context.py `build_context`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from activities.citations import citation
from activities.letter_kept_since import (
    at_processor,
    fates_of,
    kept_since,
    kept_until_each,
    one_per_claim,
    one_per_law,
    unrestricted,
)
from activities.letter_systems import system_where
from activities.processor_exports import missing_reasons
from activities.recipients_told import (
    CutShort,
    acted_on_nothing,
    cut_short,
    erased_count,
    recipients_named,
    told_of,
)
from dsrflow.i18n import ENGLISH, N_, SOURCE_LANGUAGE, Translator, and_list
from policy.keeping import StatutoryHold
from policy.model import Policy
from policy.systems import dataset_words
from schemas.dataset_split import SPLIT_ACTIONS, split_datasets
from schemas.workflow import TaskResult

ACTION_WORDS = {"erase": N_("erased"), "rectify": N_("corrected"), "restrict": N_("restricted"),
                "object": N_("stopped processing as you objected"), "access": N_("found")}
# A system's datasets whose records an action found and needed to do nothing to (`_change_lines`),
# where the action's word would be: a correction's, a restriction's, an objection's.
NOTHING_NEEDED = {"rectify": N_("nothing to correct"), "restrict": N_("nothing to restrict"),
                  "object": N_("no processing to stop")}


# What a legal-claims hold kept is stored with the basis compliance gave the hold (the API's default
# unless they wrote their own) and a stand-in as its law (activities/connectors/sql_erasure.py): a
# claim is no law, so the letter gives the basis alone.
_CLAIMS_BASES_STORED = {"Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims", "Art. 17(3)(e) GDPR"}
# A package's line for each system: what it holds of the subject, or that it held, or a processor
# said it holds, nothing.
_INCLUDED = N_("included in your package")
_NOTHING_FOUND = N_("no personal data about you found")
_PROCESSOR_HOLDS_NOTHING = N_("the processor told us it holds no personal data about you")
# The bases the letter gives in its regime's law (activities/citations.py): a statute's basis as the
# policy words it cites the GDPR, so under any other regime the letter gives ours.
_CLAIMS_BASIS = ("17(3)(e)", N_("%(citation)s: establishment, exercise or defence of legal claims"),
                 N_("establishment, exercise or defence of legal claims"))
_OBLIGATION_BASIS = ("17(3)(b)", N_("%(citation)s: compliance with a legal obligation"),
                     N_("compliance with a legal obligation"))
# A statute that is no legal obligation of ours under the regime's law (a Belgian one under the UK
# GDPR, which takes only domestic law: `StatutoryHold.obligation_under`): the basis the privacy
# policy gives for complying with a foreign law.
_FOREIGN_BASIS = N_("%(citation)s: our legitimate interests in complying with %(law)s")


def _basis(basis: tuple[str, str, str], regime: str, t: Translator) -> str:
    """A basis of ours: its article in the regime's law, then the words; only the words outside the GDPR."""
    article, cited_message, plain = basis
    cited = citation(regime, article, t)
    return t.gettext(cited_message) % {"citation": cited} if cited else t.gettext(plain)


def _statute_of(kept: dict[str, Any], source: Policy) -> str | None:
    """The key of the statutory hold a kept record was stored under: the evidence keeps the
    statute's texts in the policy's source language, as the request's policy version words them."""
    for key, statute in source.statutory_holds.items():
        if (statute.basis, statute.law) == (kept["basis"], kept["law"]):
            return key
    return None


def _statute(kept: dict[str, Any], policy: Policy, source: Policy) -> StatutoryHold | None:
    """The statutory hold a kept record was stored under, in `policy`'s language; None for a
    legal-claims hold, or a statute the request's policy version no longer words as recorded."""
    key = _statute_of(kept, source) if kept["hold_kind"] != "legal_claims" else None
    return policy.statutory_holds.get(key) if key else None


def _foreign_law(statute: StatutoryHold | None, regime: str) -> str | None:
    """The name of the law that made us keep a record (its `statute`'s: "Belgian law"), where it is
    no legal obligation of ours under `regime`'s law; None where it is one, or the record is no
    statute's."""
    return statute.foreign_law if statute is not None and not statute.obliges_under(regime) else None


def _kept_texts(kept: dict[str, Any], policy: Policy, source: Policy, t: Translator,
                regime: str) -> tuple[str, str | None]:
    """The legal basis and law of a kept record in the letter's language: the statute's texts from
    the policy's translation, ours from the catalog; a basis compliance wrote themselves stays as
    they wrote it (like an explanation). Outside the GDPR, the statute's basis (which cites it)
    gives way to ours, in the regime's law; where its law is no obligation of ours under the
    regime's (`_foreign_law`), ours is our legitimate interests in complying with it (Art. 6(1)(f)).
    A legal-claims hold has no law: None (the letter said "Law: a legal claim (establishment,
    exercise or defence of legal claims)", the basis again)."""
    if kept["hold_kind"] == "legal_claims":
        return (_basis(_CLAIMS_BASIS, regime, t) if kept["basis"] in _CLAIMS_BASES_STORED else kept["basis"]), None
    statute = _statute(kept, policy, source)
    basis, law = (kept["basis"], kept["law"]) if statute is None else (statute.basis, statute.law)
    if (foreign := _foreign_law(statute, regime)) is not None:
        return t.gettext(_FOREIGN_BASIS) % {"citation": citation(regime, "6(1)(f)", t), "law": foreign}, law
    return (basis if regime == "gdpr" else _basis(_OBLIGATION_BASIS, regime, t)), law


def _kept_item(kept: dict[str, Any], policy: Policy, regime: str, t: Translator = ENGLISH,
               source: Policy | None = None, *, left: int | None = None) -> dict[str, Any]:
    """One kept record's lines in the letter. `policy` is in the letter's language, `source` the
    same version in its source language (what the evidence was stored in). `left`: the system's
    erasure was cut short by the hold (`cut_short`), which keeps what it holds under the
    identifiers not yet sent."""
    basis, law = _kept_texts(kept, policy, source or policy, t, regime)
    system = policy.system_label(kept["system"])
    where = system_where(policy, kept["system"], t)  # "in our CRM": after a noun, as after a verb
    if kept["dataset"] == "all" and left is not None:
        what = t.ngettext("the data held %(where)s under the other identifier by which you are known there",
                          "the data held %(where)s under the other %(num)d identifiers by which you are known there",
                          left) % {"num": left, "where": where}
    elif kept["dataset"] == "all":
        what = t.gettext("your data %(where)s") % {"where": where}
    else:  # one dataset's, or several of one law's (`one_per_law`: their `words`)
        what = t.ngettext("%(num)d record of %(dataset)s %(where)s", "%(num)d records of %(dataset)s %(where)s",
                          kept["records"]) % {"num": kept["records"], "where": where, "dataset": kept.get("words") or
                                              dataset_words(policy.systems, kept["system"], kept["dataset"])}
    # The law alone: what was done with the record (reduced and restricted in our systems, not at a
    # processor's) the paragraph above the list says (`kept_where`); "; minimised to what that law
    # requires" after each statute was false of a processor's records. A statute's records go when
    # its period ends; a legal-claims hold's date is when we review whether the claims still need
    # them, not an end date.
    return {"what": what, "label": system, "where": where, "basis": basis, "law": law, "reviewed": kept["hold_kind"] == "legal_claims",
            "foreign_law": _foreign_law(_statute(kept, policy, source or policy), regime),
            "until": date.fromisoformat(kept["until"]) if kept.get("until") else None,
            "periods": [(date.fromisoformat(until), num, dataset) for until, num, dataset in kept.get("periods") or []],
            "datasets": kept.get("datasets") or [kept["dataset"]], "system_id": kept["system"],
            "processor": system if at_processor(kept, policy) else None,
            "unrestricted": system if unrestricted(kept, policy) else None}


def kept_where(kept: list[dict[str, Any]]) -> dict[str, Any]:
    """Who holds what a response letter lists as kept (`_kept_item`), for its words on what was
    done with it (response.*.j2): whether any is in our own systems, and the processors that hold
    what a legal-claims hold kept (`held_by`) and what a statute requires kept (`kept_by`), and our
    systems that cannot mark what they keep as restricted (`unrestricted`), each named once by its
    phrase (`where`: "at our survey service provider"; a label as the sentence's subject read
    "Survey service provider, our processor, holds", "à Prestataire ..."), in the order of their
    labels; and which of the reasons to keep data apply (a statute `by_law`, a legal-claims hold
    `for_claims`, with a review date `reviewed_by`), and of the statutes those that are a legal
    obligation of ours under the request's law (`domestic`) and the names of the laws that are none
    (`foreign_laws`: we keep what they require in our legitimate interests, which the subject may
    object to)."""
    def placed(items: list[dict[str, Any]]) -> list[str]:
        return [where for _, where in sorted({(k["label"], k["where"]) for k in items})]

    def processors(legal_claims: bool) -> list[str]:
        return placed([k for k in kept if k.get("processor") and bool(k.get("reviewed")) is legal_claims])

    # Ours, by reason: a statute's records were reduced to what it needs, a legal-claims hold's kept
    # as they were (activities/connectors/sql_erasure.py `minimise`); both restricted.
    ours = [k for k in kept if not k.get("processor") and not k.get("unrestricted")]
    return {"ours": bool(ours), "ours_by_law": any(not k.get("reviewed") for k in ours),
            "ours_for_claims": any(k.get("reviewed") for k in ours),
            "held_by": processors(True), "kept_by": processors(False),
            "unrestricted": placed([k for k in kept if k.get("unrestricted")]),
            "by_law": any(not k.get("reviewed") for k in kept), "for_claims": any(k.get("reviewed") for k in kept),
            "domestic": any(not k.get("reviewed") and not k.get("foreign_law") for k in kept),
            "foreign_laws": sorted({k["foreign_law"] for k in kept if k.get("foreign_law")}),
            "reviewed_by": any(k.get("reviewed") and k.get("until") for k in kept)}


def _datasets_acted_on(result: TaskResult) -> list[str]:
    """The datasets a system's line names: for an erasure, not those whose records were all kept;
    for a copy, all it counts (a correction, restriction or objection has its own lines, which
    name only what it acted on: `_change_lines`)."""
    if result.action != "erase":
        return list(result.datasets)
    return [name for name, counts in result.datasets.items()
            if not (counts.get("kept") and counts["kept"] >= counts.get("found", 0))]


def _left(result: TaskResult) -> dict[str, int]:
    """A correction's records, per dataset, that an erasure kept under a hold and that it left as
    they were (the connectors count them as `left`: activities/connectors/base.py `left_as_kept`)."""
    if result.action != "rectify":
        return {}
    return {name: counts["left"] for name, counts in result.datasets.items() if counts.get("left")}


def _connector(policy: Policy, system: str) -> str | None:
    return policy.systems[system].connector if system in policy.systems else None


def _uncorrected(result: TaskResult, left: dict[str, int], policy: Policy, language: str) -> dict[str, Any]:
    """A system's line under "What we did not correct, and why": its label, the datasets whose
    records the correction left as kept, and how many."""
    return {"system": policy.system_label(result.system),
            "category": and_list(sorted(dataset_words(policy.systems, result.system, d) for d in left), language),
            "records": sum(left.values())}


def _records_acted_on(result: TaskResult) -> int:
    """The count the letter gives a system: what was erased for an erasure (a system whose records
    were all kept is not listed as erased), what was found for a copy, and for a system that
    counts no datasets what was changed, else what was found (already as asked). A correction's,
    restriction's or objection's counts per dataset are its lines' (`_change_lines`)."""
    if result.action == "erase":
        return erased_count(result)
    return result.changed or result.found


def _done_to(action: str, datasets: str, num: int, t: Translator) -> str | None:
    """The plain-text letter's words for what was done to a system's datasets, after its label:
    "customers and mandates erased (2 records)". The label may list its datasets in brackets
    already: "Billing (customers, invoices, payments, mandates), customers, mandates: erased" read
    as one list."""
    words = {"num": num, "datasets": datasets}
    if action == "erase":
        return t.ngettext("%(datasets)s erased (%(num)d record)", "%(datasets)s erased (%(num)d records)", num) % words
    if action == "rectify":
        return t.ngettext("%(datasets)s corrected (%(num)d record)", "%(datasets)s corrected (%(num)d records)",
                          num) % words
    if action == "restrict":
        return t.ngettext("processing of %(datasets)s restricted (%(num)d record)",
                          "processing of %(datasets)s restricted (%(num)d records)", num) % words
    if action == "object":
        return t.ngettext("processing of %(datasets)s stopped, as you objected (%(num)d record)",
                          "processing of %(datasets)s stopped, as you objected (%(num)d records)", num) % words
    if action == "access":
        return t.ngettext("%(datasets)s found (%(num)d record)", "%(datasets)s found (%(num)d records)", num) % words
    return None


def _system_action(result: TaskResult, records: int, policy: Policy, t: Translator, language: str,
                   names: list[str] | None = None, *, unneeded: bool = False) -> dict[str, Any]:
    """A system's line: its label, the datasets acted on (`names`, else `_datasets_acted_on`;
    "and"-joined, as the letter's language joins them), what was done and how many records; `done`
    is the line's words after the label in the plain-text letter (None: a system that names no
    dataset, or an action of no such words). `unneeded`: datasets whose records the action found
    and needed to do nothing to, its `NOTHING_NEEDED` words where the action's word would be."""
    names = _datasets_acted_on(result) if names is None else names
    datasets = and_list(sorted(dataset_words(policy.systems, result.system, d) for d in names), language)
    action = NOTHING_NEEDED.get(result.action) if unneeded else ACTION_WORDS.get(result.action)
    return {"system": policy.system_label(result.system),
            "category": datasets or t.gettext("all records"),
            "action": t.gettext(action) if action else result.action,
            "records": records, "note": None if unneeded else result.note,
            "done": _done_to(result.action, datasets, records, t) if datasets and not unneeded else None}


def _change_lines(result: TaskResult, policy: Policy, t: Translator, language: str) -> list[dict[str, Any]]:
    """A correction's, restriction's or objection's lines for a system: the datasets it acted on
    ("corrected", "restricted", ...) with their records; then those whose records it found and
    needed to do nothing to ("nothing to correct", "nothing to restrict", "no processing to stop")
    with the records found: an http system's lookup reads datasets its steps never change (the
    invoices of a customer whose name is corrected or who is marked restricted), and a sql row may
    already hold the value a correction asks. Which is which: schemas/dataset_split.py, which the
    console and the evidence pack read too. What a correction left as an earlier erasure kept it is
    under "What we did not correct" (`_uncorrected`). A system that counts no datasets (a
    processor's answer) keeps one line, its changes, else what it found, as already as asked."""
    split = split_datasets(result.action, result.datasets)
    if split is None:
        records = result.changed or result.found
        return [_system_action(result, records, policy, t, language)] if records else []
    lines = [_system_action(result, split.records, policy, t, language, split.acted)] if split.records else []
    if split.unneeded:
        lines.append(_system_action(result, split.found, policy, t, language, split.unneeded, unneeded=True))
    return lines


def _action_lines(result: TaskResult, policy: Policy, t: Translator, language: str) -> list[dict[str, Any]]:
    """A system's lines under what was done: none where it acted on nothing."""
    if result.action in SPLIT_ACTIONS:
        return _change_lines(result, policy, t, language)
    if not (records := _records_acted_on(result)):
        return []
    short = cut_short(result)
    return [_cut_short_action(result, short, policy, t) if short else _system_action(result, records, policy, t, language)]


def response_outcome(report: dict[str, Any], policy: Policy, package_link: str | None,
             package_expires_at: datetime | None, t: Translator = ENGLISH,
             source: Policy | None = None, *, regime: str, language: str = SOURCE_LANGUAGE,
             since: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The response letter's account of what was done, from the execution report. `policy` is in
    the letter's language (`t`'s, `language`); `source` is the same policy in its source language
    (default: `policy`). `since`: where what holds kept stands as the letter is written (the
    request's KEPT_AT_CLOSE): what has been erased, or asked of a processor, since is no longer kept."""
    results = [TaskResult.model_validate(r) for r in report.get("results", [])]
    actions = [line for r in results for line in _action_lines(r, policy, t, language)]
    package = report.get("package")
    if package:
        # A system that held nothing, or a processor that said it holds nothing, is not "included
        # in your package (0 files)": the letter says what it found or was told.
        for system, count in package.get("systems", {}).items():
            label = policy.system_label(system)
            actions.append({"system": label, "category": t.gettext("copy of your data"), "records": count,
                            "action": t.gettext(_INCLUDED if count else _NOTHING_FOUND)})
        for system, count in package.get("processor_files", {}).items():
            label = policy.system_label(system)
            actions.append({"system": label, "category": t.gettext("copy of your data, as this processor sent it"),
                            "records": count, "unit": "file",
                            "action": t.gettext(_INCLUDED if count else _PROCESSOR_HOLDS_NOTHING)})
    fates, listed = fates_of(since), []
    today = datetime.now(ZoneInfo(policy.defaults.timezone)).date()  # the controller's, as the sweep's
    for r in results:
        still, gone = kept_since(r.system, r.kept_records, fates, policy, t, language, today)
        actions += gone
        short = cut_short(r)
        listed += [({**k, "left": short.kept if short else None},
                    _kept_item(k, policy, regime, t, source, left=short.kept if short else None))
                   for k in one_per_law(still, policy, language)]
    kept = [item for _, item in listed]
    for item in kept:
        item["until_each"] = kept_until_each(item, policy, t, language)
    # A processor kept whole under a legal-claims hold (dataset "all") was asked nothing: it is
    # in what we kept, with the reason, not among the recipients told (Art. 19). One whose
    # erasure the hold cut short was told of what it erased.
    # Nor is one where a correction or restriction acted on nothing (every record left as an earlier
    # erasure kept it, or needing nothing): done (the records exist), but nothing done to tell of.
    told_to = [policy.recipients[r.recipient] for r in results
               if r.recipient and r.recipient in policy.recipients and told_of(r, _connector(policy, r.system))]
    told, by_kind = recipients_named(told_to)
    # The letter itself says the request is completed and, after the actions, whom Art. 19 reached;
    # the summary is left for what only this request says (an objection decision).
    # Systems whose data the package could not include, and why: a refusal in part (Art. 15).
    missing = missing_reasons(package.get("missing", {}), policy, t) if package else []
    # Records a correction left as an earlier erasure kept them: not corrected, a refusal in part
    # (Art. 16 and 12(4)) that the letter names with its reason.
    uncorrected = [_uncorrected(r, left, policy, language) for r in results if (left := _left(r))]
    # Whether a correction or restriction acted anywhere: lines that say "nothing to correct"
    # ("nothing to restrict") are no action, so a correction's letter opens "We have not corrected
    # any of your personal data", and neither claims in general that recipients were told.
    acted_any = any(r.action in ("rectify", "restrict") and r.status == "done"
                    and not acted_on_nothing(r, _connector(policy, r.system)) for r in results)
    return {"summary": "", "actions": actions, "kept": kept, "kept_listed": one_per_claim(listed, t, language),
            "informed": told, "missing": missing,
            "uncorrected": uncorrected, "acted_any": acted_any,
            "informed_by_kind": by_kind,
            "package_link": package_link, "package_expires_at": package_expires_at}


def _cut_short_action(result: TaskResult, short: CutShort, policy: Policy, t: Translator) -> dict[str, Any]:
    """The line of a system whose erasure a hold cut short: what it was asked to delete, in its
    identifiers, and that the rest is kept. Not the service's own note, which tells of the
    deletion of all the subject's data there."""
    system = policy.system_label(result.system)
    done, left = short.accepted, short.kept
    # The system by its phrase ("at our survey service provider"): its label as the one asked read
    # "demandé à Prestataire de services d'enquêtes" (activities/letter_systems.py).
    note = t.ngettext(
        "Before the legal-claims hold set out below was placed, we had asked for the deletion of the data held "
        "%(where)s under %(done)d of the %(total)d identifiers by which you are known there, and that was "
        "accepted. We have not asked for the deletion of the data held there under the other identifier: that "
        "data is kept under the hold.",
        "Before the legal-claims hold set out below was placed, we had asked for the deletion of the data held "
        "%(where)s under %(done)d of the %(total)d identifiers by which you are known there, and that was "
        "accepted. We have not asked for the deletion of the data held there under the other %(num)d "
        "identifiers: that data is kept under the hold.",
        left) % {"where": system_where(policy, result.system, t), "done": done, "total": short.identifiers,
                 "num": left}
    return {"system": system, "category": t.gettext("part of your data"),
            "action": t.gettext("deletion requested and accepted"), "records": done, "unit": "identifier",
            "note": note}
