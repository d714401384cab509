"""What an erasure's holds kept that has left them by the time its response letter is written: a
legal-claims hold released while the request was still open (a processor slow to answer keeps it
open for days) has had the sweep erase what it kept in our systems, or ask the processor to; a
statute's period may have ended meanwhile. The letter gave those records under "What we kept, and
why" all the same ("We could not erase the data listed below ... it stays there as it is until the
hold ends"), and refused in part what was done. Now they are lines of what was done, each as it
stands: read from the request's deferred erasures with the letter (activities/letter_kept_closed.py
KEPT_AT_CLOSE, each kept record's `fate`).

And how the letter groups what is still kept: one item per system and law (`one_per_law`), its
end dates each with what it keeps (`kept_until_each`), and one item per legal claim, naming every
system it keeps whole (`one_per_claim`)."""

from __future__ import annotations

from datetime import date
from typing import Any

from dsrflow.i18n import N_, Translator, and_list, long_date, series
from policy.model import Policy
from policy.systems import dataset_words

# Each line's words: what it was, and where its erasure stands.
_CLAIMS_KEPT = N_("the data the legal-claims hold kept")
_ERASED_AT_RELEASE = N_("erased when the hold ended")
_ASKED_AT_RELEASE = N_("erasure asked of it when the hold ended, not yet confirmed")
# Our own system's erasure asked again by staff once it had failed (`_FATE` "asked", no processor):
# the sweep runs it, and nobody was asked or is to confirm ("asked of it ... not yet confirmed" was
# untrue of it).
_ERASING_AT_RELEASE = N_("being erased: the hold has ended")
# Its erasure failed (`_FATE`): a processor asked that refused or never confirmed, whose
# confirmation the letter must not say is on its way; our own system, which could not erase.
_UNCONFIRMED_AT_RELEASE = N_("erasure asked of it when the hold ended, not confirmed: we are following this up")
_UNERASED_AT_RELEASE = N_("not yet erased: its erasure when the hold ended failed, and we are following this up")
# A released claim's row the sweep has not reached since (`_FATE` "unreached"): it read as kept
# ("until the hold ends") of data the claim no longer kept and no run had been able to erase.
_UNREACHED_AT_RELEASE = N_("the claim has ended, but we have not yet been able to erase it: we are following this up")
_ERASED_AT_PERIOD_END = N_("erased when the period the law sets for it ended")
# A statute's period over, its erasure not yet run (the daily sweep's; a system it could not reach).
_PERIOD_ENDED = N_("being erased: the period the law sets for it has ended")
# Its erasure failed, or the sweep has not reached its system since (`_FATE` "failed"): "being
# erased" was untrue of records no run had been able to erase.
_PERIOD_ENDED_UNERASED = N_("the period the law sets for it has ended, but we have not yet been able to erase it: "
                            "we are following this up")


def _key(system: str, kept: dict[str, Any]) -> tuple[Any, ...]:
    return system, kept["dataset"], kept.get("hold_ref"), kept.get("until")


def fates_of(kept_at_close: list[dict[str, Any]] | None) -> dict[tuple[Any, ...], str]:
    """Each kept record's fate (KEPT_AT_CLOSE), by its system, dataset, hold and date."""
    return {_key(task["system"], kept): kept.get("fate") or "kept"
            for task in kept_at_close or [] for kept in task["kept"]}


def kept_since(system: str, kept_records: list[dict[str, Any]], fates: dict[tuple[Any, ...], str],
               policy: Policy, t: Translator, language: str, today: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A system's kept records still kept, and the lines of those that no longer are: erased, or
    (a legal-claims hold's at a processor) asked of the processor and not yet confirmed, or (a
    statute's) past its period on the controller's `today` and not yet erased, or (a legal-claims
    hold's in our own system, its failed erasure asked again by staff) being erased by the sweep.
    One line per kind of hold and fate: a hold's datasets together, a statute's named together."""
    still: list[dict[str, Any]] = []
    lines: dict[str, dict[str, Any]] = {}
    for kept in kept_records:
        fate, claims = fates.get(_key(system, kept), "kept"), kept["hold_kind"] == "legal_claims"
        ended = not claims and fate != "erased" and bool(kept.get("until")) and date.fromisoformat(kept["until"]) < today
        if fate != "erased" and not (fate in ("asked", "failed", "unreached") and claims) and not ended:
            still.append(kept)
            continue
        done = ((_PERIOD_ENDED_UNERASED if fate == "failed" else _PERIOD_ENDED) if ended else _ERASED_AT_PERIOD_END) \
            if not claims \
            else _ERASED_AT_RELEASE if fate == "erased" \
            else (_ASKED_AT_RELEASE if at_processor(kept, policy) else _ERASING_AT_RELEASE) if fate == "asked" \
            else _UNREACHED_AT_RELEASE if fate == "unreached" \
            else _UNCONFIRMED_AT_RELEASE if at_processor(kept, policy) else _UNERASED_AT_RELEASE
        # A processor kept whole counted nothing: no count (not "0") for it.
        line = lines.setdefault(done, {"system": policy.system_label(system), "datasets": [], "action": t.gettext(done),
                                       "records": 0, "uncounted": True})
        line["datasets"] += [] if claims or kept["dataset"] in line["datasets"] else [kept["dataset"]]
        if kept["dataset"] != "all":
            line["records"] += kept["records"]
            line["uncounted"] = False
    for done, line in lines.items():
        datasets = line.pop("datasets")
        line["category"] = and_list(sorted(dataset_words(policy.systems, system, d) for d in datasets), language) \
            if done in (_ERASED_AT_PERIOD_END, _PERIOD_ENDED, _PERIOD_ENDED_UNERASED) else t.gettext(_CLAIMS_KEPT)
    return still, list(lines.values())


def at_processor(kept: dict[str, Any], policy: Policy) -> bool:
    """Whether a kept record is in a processor's service rather than in our own database: only a
    sql system is ours to reduce and restrict (activities/connectors/sql_erasure.py `minimise`);
    a processor's (http, OpenDSR, e-mail) keeps what a hold keeps as it holds it, and is asked to
    erase it when the hold ends (activities/deferred_processors.py). A system the policy no longer
    names is a processor's if it was kept whole (dataset "all"), as only a processor's is."""
    system = policy.systems.get(kept["system"])
    return system.connector != "sql" if system else kept["dataset"] == "all"


def unrestricted(kept: dict[str, Any], policy: Policy) -> bool:
    """Whether a kept record is in a dataset of ours that has no column to mark it restricted
    (`restricted_column`): a hold keeps it (minimised under a statute) but nothing restricts it."""
    system = policy.systems.get(kept["system"])
    if system is None or system.connector != "sql":
        return False
    return any(d.name == kept["dataset"] and not d.restricted_column for d in system.datasets)


def one_per_law(kept_records: list[dict[str, Any]], policy: Policy, language: str) -> list[dict[str, Any]]:
    """A system's records kept under one statute, in any of its datasets and at any end date
    (documents of different years: `kept_summary` counts them per dataset and date), as one item:
    their count in all, their datasets named together (`words`), its latest date as `until`, and
    each date with its count (`periods`). The response letter listed an item per dataset and date,
    the same basis and law in each. Datasets that can and cannot mark records restricted stay apart
    (`kept_where` says which is which)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i, kept in enumerate(kept_records):
        one = kept["hold_kind"] == "legal_claims" or kept["dataset"] == "all" or not kept.get("until")
        key = (i,) if one else (kept["system"], kept["hold_kind"], kept["basis"], kept["law"], unrestricted(kept, policy))
        if one:
            merged[key] = kept
            continue
        item = merged.setdefault(key, {**kept, "datasets": [], "periods": [], "records": 0})
        item["records"] += kept["records"]
        item["until"] = max(item["until"], kept["until"])
        item["datasets"] += [] if kept["dataset"] in item["datasets"] else [kept["dataset"]]
        item["periods"].append((kept["until"], kept["records"], kept["dataset"]))
    for item in merged.values():
        if len(item.get("datasets") or []) > 1:
            item["words"] = and_list(sorted(dataset_words(policy.systems, item["system"], d) for d in item["datasets"]),
                                     language)
    return list(merged.values())


def kept_until_each(item: dict[str, Any], policy: Policy, t: Translator, language: str) -> str | None:
    """A merged item's "Kept until" (`one_per_law`): each date with its count, and where the item
    names several datasets, which ("invoices and payments, 31 December 2029 (2 records); customers,
    31 December 2035 (1 record)"); None for an item of one date."""
    dates = sorted({until for until, *_ in item["periods"]})
    if len(dates) < 2:
        return None
    each = []
    for until in dates:
        num = sum(n for day, n, _ in item["periods"] if day == until)
        records = t.ngettext("%(num)d record", "%(num)d records", num) % {"num": num}
        datasets = sorted({dataset_words(policy.systems, item["system_id"], d) for day, _, d in item["periods"] if day == until})
        each.append(f"{long_date(until, language)} ({records})" if len(item["datasets"]) < 2
                    else f"{and_list(datasets, language)}, {long_date(until, language)} ({records})")
    return (and_list if len(item["datasets"]) < 2 else series)(each, language)


def one_per_claim(kept: list[tuple[dict[str, Any], dict[str, Any]]], t: Translator, language: str) -> list[dict[str, Any]]:
    """The response letter's list of kept items (each a stored kept record and its letter item,
    `_kept_item`), with one legal claim's hold over several systems, each kept whole, as one item
    naming them, each by its `where` ("your data in our CRM and at our survey service provider"): it
    listed an item per system, the same basis and review date in each, as if they were separate claims. An item cut short
    (`left`: part of a system's data) keeps its own words. The paragraph above the list still
    reads the items per system (`kept_where`: which are ours, which a processor's)."""
    listed: list[dict[str, Any]] = []
    claims: dict[tuple[Any, ...], dict[str, Any]] = {}
    for raw, item in kept:
        whole = raw["hold_kind"] == "legal_claims" and raw["dataset"] == "all" and not raw.get("left")
        if not whole:
            listed.append(item)
            continue
        key = (raw.get("hold_ref"), item["basis"], item["until"])
        if key in claims:
            claims[key]["systems"].append(item["system_id"])
            claims[key]["places"].append(item["where"])
            continue
        claims[key] = merged = {**item, "systems": [item["system_id"]], "places": [item["where"]]}
        listed.append(merged)
    for merged in claims.values():
        places = merged.pop("places")
        if len(places) > 1:
            merged["what"] = t.gettext("your data %(where)s") % {"where": and_list(places, language)}
    return listed
