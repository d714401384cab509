"""A system named after a verb reads right in every language: the policy's `systems.<name>.where`
("in our CRM", "at our survey service provider", "bei unserem Anbieter von Umfragediensten"), not
its label after a bare preposition ("in Survey service provider", "dans Prestataire de services
d'enquêtes", "in Abrechnung (...)"); a policy that gives none gets our phrase around the label; a
bad one stops the load naming its path (activities/letter_systems.py, policy/systems.py
`check_where`). In process: the letters as the letter activity builds them, no stack."""

from __future__ import annotations

import copy
import html
import re
from typing import Any

import pytest

from activities.letter_systems import system_where
from dsrflow.i18n import and_list, translations
from policy.files import read_mapping
from policy.languages import inline_translation_files
from policy.model import DEFAULT_POLICY, PolicyError, parse_policy
from schemas.vocabulary import Regime
from tests.letter_cases import LETTER_CASES, _render_case, applies
from tests.letters_as_sent import LANGUAGES, LOADED, as_sent, both, erasure_with_kept

# Every preposition a translation put before a label ("in", "dans", "bij", "bei", "chez", "at").
_BARE = r"\b(?:in|im|at|dans|chez|bij|bei)\s+"


def _folded(text: str) -> str:
    """As `both` gives a letter: whitespace folded (French's no-break spaces too)."""
    return " ".join(text.split())


def _kept_at_billing_and_surveys() -> dict[str, Any]:
    """An erasure that kept invoices in our billing system (a statute) and all the survey
    processor's data (a legal claim): a letter naming both after "in"."""
    report = erasure_with_kept()
    billing, crm = report["report"]["results"]
    surveys = {**crm, "system": "surveys", "kept_records": [{**k, "system": "surveys"} for k in crm["kept_records"]]}
    report["report"]["results"] = [billing, surveys]
    return report


@pytest.mark.parametrize("language", LANGUAGES)
async def test_letters_name_a_processor_and_our_own_system_each_as_it_reads(language):
    """The response names what it kept at the processor and in our billing system by their phrases,
    and a withdrawal's letter our CRM where its work stopped; no label follows a bare preposition."""
    policy, t = LOADED.in_language(language), translations(language)
    response = await as_sent("response", "erasure", _kept_at_billing_and_surveys(), language=language)
    closing = await as_sent("cancellation", "erasure", {"reason": "Withdrawn", "withdrawn": True, "acted_in": [],
                                                         "asked_in": []},
                            language=language, stopped_runs=[["crm", 1, "needs_attention"]])
    billing, surveys = policy.systems["billing"], policy.systems["surveys"]
    invoices = t.ngettext("%(num)d record of %(dataset)s %(where)s", "%(num)d records of %(dataset)s %(where)s", 2) % {
        "num": 2, "dataset": billing.dataset_label("invoices"), "where": billing.where}
    held = t.gettext("your data %(where)s") % {"where": surveys.where}
    for part in both(response):
        assert _folded(invoices) in part and _folded(held) in part, part
    for part in both(closing):
        assert policy.systems["crm"].where in part, part
    expected = {"en": ("at our survey service provider", "in our billing system", "in our CRM"),
                "nl": ("bij onze aanbieder van enquêtediensten", "in ons facturatiesysteem", "in ons CRM"),
                "fr": ("chez notre prestataire de services d'enquêtes", "dans notre système de facturation",
                       "dans notre CRM"),
                "de": ("bei unserem Anbieter von Umfragediensten", "in unserem Abrechnungssystem", "in unserem CRM")}
    assert [policy.systems[s].where for s in ("surveys", "billing", "crm")] == list(expected[language])
    for part in [*both(response), *both(closing)]:
        for system in policy.systems.values():
            assert not re.search(_BARE + re.escape(system.label), part), (system.label, part)


def _labels_after_a_word(part: str, labels: list[str]) -> list[str]:
    """Each label set after a preposition ("in", "from", "à", ...) or as the one a sentence puts at
    its head as a party ("Survey service provider, our processor, holds", "demandé à ...")."""
    after = r"\b(?:in|im|at|from|to|of|dans|chez|depuis|à|de|bij|bei|uit|van|aus|von|an)\s+"
    found = [m.group() for label in labels for m in re.finditer(after + re.escape(label), part)]
    return found + [label for label in labels if re.search(r"(?:^|[.:] )" + re.escape(label) + ",", part)]


_HELD = ("The data of yours listed below that the legal-claims hold keeps is held for us %(where)s, by a processor of "
         "ours. We have not asked it to delete that data, reduce it or restrict its processing: it stays there as it is "
         "until the hold ends, when we will ask it to erase it.")
_HELD_PLURAL = ("The data of yours listed below that the legal-claims hold keeps is held for us %(where)s, by "
                "processors of ours. We have not asked them to delete that data, reduce it or restrict its processing: "
                "it stays there as it is until the hold ends, when we will ask them to erase it.")
_UNMARKED = ("Data %(where)s cannot be marked as restricted: what that system keeps we have reduced to what that "
             "purpose requires, but its processing there is not restricted.")
_UNMARKED_PLURAL = ("Data %(where)s cannot be marked as restricted: what those systems keep we have reduced to what "
                    "that purpose requires, but its processing there is not restricted.")


def _kept_at_processors_and_unmarked() -> dict[str, Any]:
    """What each sentence naming a system as a party said by its label: the survey processor's data
    kept whole under a legal-claims hold (`held_by`), the e-mail marketing processor's cut short by
    it after one of three identifiers (the line's note, the kept item), and invoices in a billing
    system of ours that cannot mark them restricted (`unrestricted`)."""
    report = _kept_at_billing_and_surveys()
    billing, surveys = report["report"]["results"]
    cut = {**surveys, "system": "email_marketing", "found": 3, "changed": 1,
           "kept_records": [{**k, "system": "email_marketing"} for k in surveys["kept_records"]]}
    report["report"]["results"] = [billing, surveys, cut]
    return report


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_letter_names_a_processor_and_an_unmarked_system_by_their_phrases_as_parties(language):
    """The response's words on who holds what was kept ("The data ... is held for us at our survey
    service provider, by a processor of ours"), on a system of ours that cannot mark data restricted
    ("Data in our billing system cannot be marked as restricted") and on an erasure a hold cut short
    ("the deletion of the data held in our e-mail marketing system under 1 of the 3 identifiers"):
    each system by its phrase, never its label as the one asked or the sentence's head."""
    loaded = LOADED.in_language(language)
    unmarked = parse_policy(_unmarked_invoices(_CONTENT))
    policy = unmarked.in_language(language)
    letter = await as_sent("response", "erasure", _kept_at_processors_and_unmarked(), language=language,
                           loaded=unmarked)
    labels = sorted({*(s.label for s in loaded.systems.values()), *(s.label for s in policy.systems.values())},
                    key=len, reverse=True)
    t = translations(language)
    processors = sorted(("surveys", "email_marketing"), key=lambda s: policy.systems[s].label)
    held = t.ngettext(_HELD, _HELD_PLURAL, 2) % {
        "where": and_list([policy.systems[s].where for s in processors], language)}
    unmarked_there = t.ngettext(_UNMARKED, _UNMARKED_PLURAL, 1) % {"where": policy.systems["billing"].where}
    for part in both(letter):
        assert _folded(held) in part and _folded(unmarked_there) in part, part
        assert _labels_after_a_word(part, labels) == [], part


def _unmarked_invoices(content: dict[str, Any]) -> dict[str, Any]:
    """The shipped policy with billing's invoices lacking a `restricted_column`: kept, not marked."""
    content = copy.deepcopy(content)
    invoices = next(d for d in content["systems"]["billing"]["datasets"] if d["name"] == "invoices")
    del invoices["restricted_column"]
    return content


def test_no_letter_case_names_a_system_by_its_label_after_a_preposition():
    """Every letter of tests/letter_cases.py under every law (English: its contexts are built in
    English, as the other cases' checks read them; the languages are the tests above, through the
    letter activity): no system's label after a preposition or at a sentence's head as a party."""
    labels = sorted({s.label for s in LOADED.policy.systems.values()}, key=len, reverse=True)
    found = {}
    for case in LETTER_CASES:
        for regime in (r.value for r in Regime if applies(case, r.value)):
            letter = _render_case(case, regime)
            for part in (letter.text, html.unescape(re.sub(r"<[^>]+>", " ", letter.html))):
                if bad := _labels_after_a_word(_folded(part), labels):
                    found[(case, regime)] = bad
    assert found == {}, found


def _content() -> dict[str, Any]:
    content = read_mapping(DEFAULT_POLICY)
    inline_translation_files(content, DEFAULT_POLICY, DEFAULT_POLICY.parent)
    return content


_CONTENT = _content()


def test_a_policy_without_where_names_systems_by_our_phrase_around_the_label():
    """A policy written before the field (or that leaves it out) still reads right: its label in
    quotes, as a name, after "in our system", or "at our service provider" for a processor reached
    by e-mail; a system a later version dropped by its id."""
    content = copy.deepcopy(_CONTENT)
    for system in content["systems"].values():
        system.pop("where")
    loaded = parse_policy(content)
    de, t = loaded.in_language("de"), translations("de")
    assert system_where(de, "billing", t) == "in unserem System „Abrechnung (Kunden, Rechnungen, Zahlungen, Mandate)“"
    assert system_where(de, "surveys", t) == "bei unserem Dienstleister „Anbieter von Umfragediensten“"
    assert system_where(loaded.in_language("en"), "surveys", translations("en")) == \
        "at our service provider “Survey service provider”"
    assert system_where(loaded.in_language("fr"), "gone", translations("fr")) == "dans notre système « gone »"


@pytest.mark.parametrize(("where", "problem"), [
    ("In our CRM", "starts with its preposition in lower case"),
    ("CRM", "starts with its preposition in lower case"),
    ("inside", "a preposition and the system"),
    ("in our CRM.", "no punctuation at its end"),
    (" in our CRM", "one line, without leading, trailing or doubled spaces"),
    ("", "expected the words a letter names the system by"),
])
def test_a_bad_where_stops_the_load_naming_its_path(where, problem):
    content = copy.deepcopy(_CONTENT)
    content["systems"]["crm"]["where"] = where
    with pytest.raises(PolicyError) as raised:
        parse_policy(content, "policy.yaml")
    assert "systems.crm" in str(raised.value) and "where" in str(raised.value) and problem in str(raised.value)
    content = copy.deepcopy(_CONTENT)
    content["translations"]["de"]["systems"]["crm"]["where"] = where or " "
    with pytest.raises(PolicyError, match=r"translations\.de\.systems\.crm\.where"):
        parse_policy(content, "policy.yaml")
