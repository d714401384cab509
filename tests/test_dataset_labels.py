"""A system's datasets, as subjects read them: in the letter's language, not as the policy's
identifiers ("support_requests"). Before, a Dutch erasure response read "CRM (contacten, ...):
contacts, support requests" and "2 records van invoices in Facturatie", and the package's
summary named every dataset in English (DPO audit, 2026-12-04)."""

from __future__ import annotations

import copy

import pytest

from activities.package_summary import render_summary
from policy.model import PolicyError, parse_policy
from tests.letters_as_sent import LOADED, REQUEST_ID, as_sent, both, erasure_with_kept
from tests.test_regime_citations import _Part, read

# The shipped policy's words for the datasets the letters below name, per language.
WORDS = {
    "en": {"contacts": "contacts", "support_requests": "support requests", "invoices": "invoices",
           "customers": "customers"},
    "nl": {"contacts": "contacten", "support_requests": "ondersteuningsverzoeken", "invoices": "facturen",
           "customers": "klanten"},
    "fr": {"contacts": "contacts", "support_requests": "demandes d'assistance", "invoices": "factures",
           "customers": "clients"},
    "de": {"contacts": "Kontakte", "support_requests": "Supportanfragen", "invoices": "Rechnungen",
           "customers": "Kunden"},
}
_ENGLISH_ONLY = ("support requests", "invoices", "customers")


def _erasure() -> dict:
    """An erasure that erased CRM contacts and support requests and kept two invoices by law."""
    params = erasure_with_kept()
    params["report"]["results"].append(
        {"system": "crm", "action": "erase", "status": "done", "found": 3, "changed": 3,
         "datasets": {"contacts": {"found": 1, "deleted": 1, "changed": 1},
                      "support_requests": {"found": 2, "deleted": 2, "changed": 2}}})
    return params


@pytest.mark.parametrize("language", list(WORDS))
async def test_an_erasure_response_names_the_datasets_in_the_letters_language(language):
    letter = await as_sent("response", "erasure", _erasure(), language=language)
    words = WORDS[language]
    for text in both(letter):
        assert f"{words['contacts']}, {words['support_requests']}" in text, text
        assert words["invoices"] in text, text
        if language != "en":
            for english in _ENGLISH_ONLY:
                assert english not in text, (english, text)


@pytest.mark.parametrize("language", list(WORDS))
def test_the_package_summary_names_the_datasets_in_its_language(language):
    parts = {("billing", "customers", "account"): _Part(), ("crm", "support_requests", "communications"): _Part()}
    text = read(render_summary(LOADED.in_language(language), parts, request_id=REQUEST_ID, kind="access",
                               generated_on="2026-03-01", regime="gdpr", country="BE", language=language))
    # Each part: its category, then its dataset in brackets (the files keep the identifiers).
    assert f"({WORDS[language]['customers']})" in text
    assert f"({WORDS[language]['support_requests']})" in text
    if language != "en":
        assert "(support requests)" not in text and "(customers)" not in text, text


def test_a_dataset_label_without_its_translation_fails_the_load_naming_it():
    content = copy.deepcopy(LOADED.content)
    del content["translations"]["nl"]["systems"]["crm"]["datasets"]
    with pytest.raises(PolicyError, match=r"translations\.nl: missing .*systems\.crm\.datasets\.0\.label"):
        parse_policy(content, "policy.yaml")


def test_a_dataset_without_a_label_reads_as_its_name_in_words():
    content = copy.deepcopy(LOADED.content)
    del content["systems"]["crm"]["datasets"][1]["label"]
    for language in ("nl", "fr", "de"):
        content["translations"][language]["systems"]["crm"]["datasets"][1].pop("label")
    policy = parse_policy(content, "policy.yaml").in_language("nl")
    assert policy.systems["crm"].dataset_label("support_requests") == "support requests"
    assert policy.systems["crm"].dataset_label("contacts") == "contacten"


async def test_a_french_action_line_sets_a_space_before_its_colon():
    """French typography puts a (non-breaking) space before a colon; the action lines of the plain
    text wrote "CRM (...), contacts, demandes d'assistance: données effacées" (DPO audit)."""
    letter = await as_sent("response", "erasure", _erasure(), language="fr")
    line = next(line for line in letter.text.splitlines() if line.startswith("- CRM"))
    assert line == ("- CRM (contacts, demandes d'assistance, chat en direct)\xa0: 3 enregistrements effacés "
                    "(contacts et demandes d'assistance)")
