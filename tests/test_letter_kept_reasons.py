"""What an erasure's response letter says of the data it kept, read as a DPO reads it, in every
language (Art. 17(3), 12(1)): the reasons that apply and no other, and for each item its basis,
the law where a statute requires the data kept, and what its date means.

A legal-claims hold's item said "Law: a legal claim (establishment, exercise or defence of legal
claims); we review this hold by the date given" under its basis: a claim is no law, and the line
said the basis and the date's line again. A statute's said "<statute>; minimised to what that law
requires", false of a processor's records (not asked to reduce anything), and the paragraph above
says what was done with the data by who holds it. The paragraph gave a statute's period "given
below" where only a legal-claims hold kept data, a review date where the hold had none, "some of
your data" where none was erased, and such a letter said twice that all it found was kept.
Pure rendering, as the letter activity builds each letter (tests/letters_as_sent.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from activities.citations import citation, cite
from activities.connectors.base import HeldRecord
from activities.connectors.sql_erasure import kept_summary
from dsrflow.i18n import Translator, and_list, long_date, worded, wording_of
from policy.systems import dataset_words
from tests.letters_as_sent import LANGUAGES, LOADED, as_sent, both, erasure_with_kept

BOTH = ("We could not erase the data listed below, because the law obliges us to keep it or because we need it "
        "for the establishment, exercise or defence of legal claims%(citation)s.")
BY_LAW = "We could not erase the data listed below, because the law obliges us to keep it%(citation)s."
# Under the UK GDPR, Belgian law is no legal obligation of ours (tests/test_letter_foreign_law.py).
BY_FOREIGN_LAW = "We could not erase the data listed below, because we must keep it to comply with %(law)s."
BOTH_FOREIGN = ("We could not erase the data listed below, because we must keep it to comply with %(law)s or because "
                "we need it for the establishment, exercise or defence of legal claims%(citation)s.")
FOR_CLAIMS = ("We could not erase the data listed below, because we need it for the establishment, exercise or "
              "defence of legal claims%(citation)s.")
PERIOD = "Data the law obliges us to keep is erased when its period, given below, ends."
REVIEWED = ("Data we keep for legal claims is erased as soon as the claims no longer require it; we review whether "
            "they still do by the date given below.")
UNTIL_CLAIMS_END = "Data we keep for legal claims is erased as soon as the claims no longer require it."
# What was done with what our own systems keep: a statute's records reduced, a legal claim's kept as
# they were (before, "reduced" was said of both, false of the CRM's contacts a claim kept whole).
REDUCED = ("What we keep in our own systems we have reduced to what that purpose requires, and we have restricted "
           "its processing: it is used for no other purpose.")
AS_IT_WAS = ("What we keep in our own systems for legal claims we have kept as it was, and we have restricted its "
             "processing: it is used for no other purpose.")
REDUCED_AND_AS_IT_WAS = ("What the law obliges us to keep in our own systems we have reduced to what it requires; what "
                         "we keep there for legal claims we have kept as it was. We have restricted the processing of "
                         "both: they are used for no other purpose.")
APART = "Apart from the data listed under “%(heading)s” below, we found no personal data about you in our systems."


def _kept(which: str, *, review: bool = True) -> dict[str, Any]:
    """The erasure of tests/letters_as_sent.py keeping invoices under the statute ("law"), the CRM
    under a legal-claims hold ("claims", with or without its review date), or both."""
    report = erasure_with_kept()
    billing, crm = report["report"]["results"]
    if not review:
        for kept in crm["kept_records"]:
            kept["until"] = None
    report["report"]["results"] = {"law": [billing], "claims": [crm], "both": [billing, crm]}[which]
    return report


def _said(t: Translator, message: str, regime: str = "gdpr", article: str | None = None, **words: str) -> str:
    """The sentence as `both` gives it: whitespace folded (French's no-break spaces too)."""
    cited = {"citation": cite(regime, article, " (%s)", t)} if article else {}
    said = t.gettext(message) % {**cited, **words} if cited or words else t.gettext(message)
    return " ".join(said.split())


def _field(t: Translator, label: str, value: str) -> str:
    return t.gettext("%(label)s: %(value)s") % {"label": t.gettext(label), "value": value}


def _item(text: str, first: str) -> list[str]:
    """The plain-text letter's lines of the kept item that starts `- <first>`."""
    lines = text.splitlines()
    start = lines.index(f"- {first}")
    end = lines.index("", start)
    return [line.strip() for line in lines[start:end]]


def _item_of_invoices(t: Translator, language: str, num: int = 2) -> str:
    """The first line of the invoices' kept item."""
    policy = LOADED.in_language(language)
    return t.ngettext("%(num)d record of %(dataset)s %(where)s", "%(num)d records of %(dataset)s %(where)s",
                      num) % {"num": num, "dataset": dataset_words(policy.systems, "billing", "invoices"),
                            "where": policy.systems["billing"].where}


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_legal_claims_hold_gives_its_basis_once_no_law_and_what_its_date_means(language):
    letter = await as_sent("response", "erasure", _kept("both"), language=language)
    t = worded(language, wording_of("gdpr"))
    policy = LOADED.in_language(language)
    what = t.gettext("your data %(where)s") % {"where": policy.systems["crm"].where}
    basis = t.gettext("%(citation)s: establishment, exercise or defence of legal claims") % {
        "citation": citation("gdpr", "17(3)(e)", t)}
    assert _item(letter.text, what) == [f"- {what}", _field(t, "Legal basis", basis),
                                        _field(t, "Next review by", long_date(date(2026, 6, 30), language))]
    statute = policy.statutory_holds["be_accounting"]
    # The statute's law alone: what was done with its records the paragraph above says.
    assert _field(t, "Law", statute.law) in _item(letter.text, _item_of_invoices(t, language))
    law_label = " ".join(_field(t, "Law", "").split())
    for part in both(letter):
        assert part.count(law_label) == 1, part  # the statute's; none for the claim
        assert _said(t, REVIEWED) in part


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["gdpr", "uk_gdpr", "ccpa"])
async def test_the_letter_gives_only_the_reasons_that_apply(regime, language):
    t = worded(language, wording_of(regime))
    claims = await as_sent("response", "erasure", _kept("claims"), regime=regime, language=language)
    law = await as_sent("response", "erasure", _kept("law"), regime=regime, language=language)
    both_kinds = await as_sent("response", "erasure", _kept("both"), regime=regime, language=language)
    for part in both(claims):
        assert _said(t, FOR_CLAIMS, regime, "17(3)(e)") in part and _said(t, REVIEWED) in part
        assert _said(t, PERIOD) not in part and _said(t, BOTH, regime, "17(3)") not in part
        assert _said(t, AS_IT_WAS) in part and _said(t, REDUCED) not in part
    foreign = LOADED.in_language(language).statutory_holds["be_accounting"].foreign_law
    by_law, by_law_or_claims = ((_said(t, BY_FOREIGN_LAW, law=foreign), _said(t, BOTH_FOREIGN, regime, "17(3)(e)", law=foreign))
                                if regime == "uk_gdpr" else (_said(t, BY_LAW, regime, "17(3)(b)"), _said(t, BOTH, regime, "17(3)")))
    for part in both(law):
        assert by_law in part and _said(t, PERIOD) in part
        assert _said(t, UNTIL_CLAIMS_END) not in part and _said(t, REVIEWED) not in part
        assert _said(t, REDUCED) in part and _said(t, AS_IT_WAS) not in part
    for part in both(both_kinds):
        assert by_law_or_claims in part
        assert _said(t, PERIOD) in part and _said(t, REVIEWED) in part
        assert _said(t, REDUCED_AND_AS_IT_WAS) in part and _said(t, REDUCED) not in part


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_hold_without_a_review_date_promises_none(language):
    """A legal-claims hold the evidence has no review date for (a hold since deleted)."""
    letter = await as_sent("response", "erasure", _kept("claims", review=False), language=language)
    t = worded(language, wording_of("gdpr"))
    for part in both(letter):
        assert _said(t, UNTIL_CLAIMS_END) in part
        assert _said(t, REVIEWED) not in part and t.gettext("Next review by") not in part


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_erasure_that_erased_nothing_says_so_once(language):
    """All it found kept under the hold: the opening says so; the letter said it again ("Apart from
    the data listed ..., we found no personal data") and then "We could not erase some of your data"."""
    letter = await as_sent("response", "erasure", _kept("claims"), language=language)
    t = worded(language, wording_of("gdpr"))
    heading = t.gettext("What we kept, and why")
    for part in both(letter):
        opening = t.gettext("We have not erased any of your personal data: what we hold about you we must keep, "
                            "for the reasons given under “%(heading)s” below.") % {"heading": heading}
        assert " ".join(opening.split()) in part
        assert " ".join((t.gettext(APART) % {"heading": heading}).split()) not in part
        assert _said(t, FOR_CLAIMS, "gdpr", "17(3)(e)") in part


@pytest.mark.parametrize("language", LANGUAGES)
async def test_one_laws_records_of_two_end_dates_are_one_item(language):
    """Invoices of 2025 and 2026 kept under the accounting statute (kept_summary counts them per end
    date): one item, its law once, each date with its count, in the language's dates. Before, two
    items the same but for the date and count (activities/letter_outcome.py `one_per_law`)."""
    held = [HeldRecord("invoices", "INV-1", "statutory", "be_accounting", date(2035, 12, 31)),
            HeldRecord("invoices", "INV-2", "statutory", "be_accounting", date(2035, 12, 31)),
            HeldRecord("invoices", "INV-3", "statutory", "be_accounting", date(2036, 12, 31))]
    billing = {"system": "billing", "action": "erase", "status": "done", "found": 4, "changed": 1, "kept": 3,
               "datasets": {"customers": {"found": 1, "changed": 1, "deleted": 1}, "invoices": {"found": 3, "kept": 3}},
               "kept_records": kept_summary(LOADED.policy, "billing", held, {})}
    letter = await as_sent("response", "erasure", {"report": {"results": [billing]}}, language=language)
    t = worded(language, wording_of("gdpr"))
    records = {n: t.ngettext("%(num)d record", "%(num)d records", n) % {"num": n} for n in (1, 2)}
    until = and_list([f"{long_date(date(2035, 12, 31), language)} ({records[2]})",
                      f"{long_date(date(2036, 12, 31), language)} ({records[1]})"], language)
    law = LOADED.in_language(language).statutory_holds["be_accounting"].law
    assert _item(letter.text, _item_of_invoices(t, language, 3)) == [
        f"- {_item_of_invoices(t, language, 3)}", _field(t, "Legal basis", LOADED.in_language(language).statutory_holds[
            "be_accounting"].basis), _field(t, "Law", law), _field(t, "Kept until", until)]
    for part in both(letter):
        assert part.count(" ".join(law.split())) == 1, part


@pytest.mark.parametrize("language", LANGUAGES)
async def test_one_legal_claim_kept_at_two_systems_is_one_item(language):
    """The CRM's data and the survey processor's kept whole under one legal-claims hold: one item
    naming both, its basis and review date once (activities/letter_kept_since.py `one_per_claim`).
    Before, an item per system, the same in all but the name, read as two claims. The paragraph
    above still tells the processor's (not asked to erase) from ours (restricted)."""
    report = _kept("both")
    crm = report["report"]["results"][1]
    surveys = {**crm, "system": "surveys", "kept_records": [{**k, "system": "surveys"} for k in crm["kept_records"]]}
    report["report"]["results"].append(surveys)
    letter = await as_sent("response", "erasure", report, language=language)
    t = worded(language, wording_of("gdpr"))
    policy = LOADED.in_language(language)
    both_systems = and_list([policy.systems["crm"].where, policy.systems["surveys"].where], language)
    what = t.gettext("your data %(where)s") % {"where": both_systems}
    basis = t.gettext("%(citation)s: establishment, exercise or defence of legal claims") % {
        "citation": citation("gdpr", "17(3)(e)", t)}
    assert _item(letter.text, what) == [f"- {what}", _field(t, "Legal basis", basis),
                                        _field(t, "Next review by", long_date(date(2026, 6, 30), language))]
    review = " ".join(t.gettext("Next review by").split())
    held_by = t.ngettext("The data of yours listed below that the legal-claims hold keeps is held for us %(where)s, "
                         "by a processor of ours. We have not asked it to delete that data, reduce it or restrict its "
                         "processing: it stays there as it is until the hold ends, when we will ask it to erase it.",
                         "", 1) % {"where": policy.systems["surveys"].where}
    for part in both(letter):
        assert part.count(review) == 1 and " ".join(held_by.split()) in part, part
        assert _said(t, REDUCED_AND_AS_IT_WAS) in part
