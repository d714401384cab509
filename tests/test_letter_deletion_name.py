"""An erasure is named in the words of the request's law. "Erasure (right to be forgotten)" is the
title of Art. 17 GDPR; the VCDPA, the CTDPA, the CPA and the LGPD grant the deletion of personal
data (Va. Code § 59.1-577(A)(3): "To delete personal data provided by or obtained about the
consumer"; LGPD Art. 18, VI: "eliminação"), and their letters said the GDPR's name of the right in
the reference block of every letter. The CCPA's and PIPEDA's letters already said "deletion of
your personal information" (tests/test_letter_wording.py). Built as the letter activity builds
each letter (tests/letters_as_sent.py)."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from dsrflow.i18n import DELETION, catalog_path
from tests.letters_as_sent import as_sent, both, erasure_with_kept
from tests.test_letter_terms import CASES
from tests.test_letter_wording import PLACEHOLDER, letter_text
from tests.test_regime_citations import summary

NAMES = {"en": ("deletion of your personal data", "right to be forgotten"),
         "fr": ("suppression de vos données à caractère personnel", "droit à l'oubli"),
         "nl": ("verwijdering van uw persoonsgegevens", "vergetelheid"),
         "de": ("Löschung Ihrer personenbezogenen Daten", "Vergessenwerden")}


@pytest.mark.parametrize("regime", ["vcdpa", "ctdpa", "cpa", "lgpd"])
@pytest.mark.parametrize("language", list(NAMES))
async def test_an_erasure_under_a_law_other_than_the_gdpr_is_a_deletion(regime, language):
    theirs, gdprs = NAMES[language]
    for purpose, params in (("acknowledgement", {"verification_required": False}), ("response", erasure_with_kept())):
        letter = await as_sent(purpose, "erasure", params, regime=regime, language=language)
        for part in both(letter):
            assert theirs in part and gdprs not in part, (purpose, part)


@pytest.mark.parametrize("regime", ["gdpr", "uk_gdpr"])
async def test_the_gdprs_letters_keep_its_name_of_the_right(regime):
    letter = await as_sent("acknowledgement", "erasure", {"verification_required": False}, regime=regime)
    assert f"Request: erasure (right to be forgotten, Art. 17 {'UK GDPR' if regime == 'uk_gdpr' else 'GDPR'})" in letter.text


# --- The body of an erasure's letters: the law's verb and noun ---------------------------------
# The request line said "deletion", the body the GDPR's "What we erased", "erased (2 records)",
# "informed each recipient of this erasure", "We could not erase ...": a DPO under the CCPA or the
# LGPD reads "delete". The words of each law in each language (dsrflow/i18n `deletes`, the
# deletion.po catalogs): (the law's, the GDPR's). German says "Löschung" under every law; only the
# GDPR's name of the right ("Recht auf Vergessenwerden") is the GDPR's alone.
DELETING = ["ccpa", "vcdpa", "ctdpa", "cpa", "lgpd", "pipeda"]
WORDS = {"en": (r"\bdelet(?:e|ed|ion)\b", r"\beras(?:e|ed|ure)\b|forgotten"),
         "fr": (r"supprim|suppression", r"effac|oubli"),
         "nl": (r"verwijder", r"\bwiss|gewist|\bwisten|vergetelheid"),
         "de": (r"gelöscht|Löschung", r"Vergessenwerden")}
COUNTRY = {"ccpa": "US", "vcdpa": "US", "ctdpa": "US", "cpa": "US", "lgpd": "BR", "pipeda": "CA",
           "gdpr": "BE", "uk_gdpr": "GB"}


def words_said(text: str, words: tuple[str, str]) -> tuple[list[str], list[str]]:
    """The law's words and the GDPR's (`words`: their patterns) that `text` says."""
    theirs, gdprs = words
    return re.findall(theirs, text, re.IGNORECASE), re.findall(gdprs, text, re.IGNORECASE)


def _said(text: str, language: str) -> tuple[list[str], list[str]]:
    return words_said(text, WORDS[language])


@pytest.mark.parametrize("regime", [*DELETING, "gdpr", "uk_gdpr"])
@pytest.mark.parametrize("language", list(WORDS))
async def test_an_erasures_response_says_its_laws_word_and_not_the_others(regime, language):
    """The six deleting laws' responses say delete, and none of the GDPR's words; the GDPR's and the
    UK GDPR's keep erase."""
    letter = await as_sent("response", "erasure", erasure_with_kept(), regime=regime, language=language,
                           country=COUNTRY[regime])
    deleting = regime in DELETING
    for part in both(letter):
        theirs, gdprs = _said(part, language)
        said, unsaid = (theirs, gdprs) if deleting else (gdprs, theirs)
        # German says Löschung under every law: its GDPR letters differ by the name of the right.
        assert said and not (unsaid and (deleting or language != "de")), (unsaid, part)
    if language == "en":
        verb = "deleted" if deleting else "erased"
        assert f"What we {verb}" in letter.text and f"customers and mandates {verb} (2 records)" in letter.text
        assert f"We could not {verb[:-1]} the data listed below" in letter.text


@pytest.mark.parametrize("regime", ["ccpa", "lgpd"])  # a personal_information.po law, a deletion.po one
@pytest.mark.parametrize("language", ["en", "fr", "nl"])
async def test_no_letter_under_a_deleting_law_says_the_gdprs_erasure(regime, language):
    """Every letter a subject reads (the cases of tests/test_letter_terms.py: the acknowledgement,
    the partial refusal's kept section, the restriction letters' grounds, the correction's records an
    erasure kept, ...)."""
    for case in CASES:
        text = await letter_text(case, regime, language, COUNTRY[regime])
        assert not _said(text, language)[1], (case, _said(text, language)[1])


def _forms(text: str | tuple[str, ...]) -> tuple[str, ...]:
    return text if isinstance(text, tuple) else (text,)


# Messages naming an erasure that no subject under those laws reads: staff alerts, the processors'
# e-mails and pages (their own catalogs), the portal's form (no law known yet), the GDPR's own
# sentences (said only where articles are cited).
NOT_SAID = ("%(system)s could not erase", "%(system)s was asked to erase", "Erase all personal data of the data subject",
            "On the request's page, compliance", "The processing is unlawful but erasure is not wanted",
            "Under data protection law you can ask us", "erase the data subject's personal data",
            "You can ask us at any time for access to your personal data, for its rectification or erasure",
            "erasure (right to be forgotten")


@pytest.mark.parametrize("language", ["en", "fr", "nl"])
def test_each_deletion_catalog_keeps_step_with_the_base(language):
    """Every message it holds is in messages.pot with the same placeholders and says the law's word,
    none of the GDPR's; every message of the letters that names an erasure is in it."""
    with open("dsrflow/i18n/messages.pot", "rb") as source:
        template = {m.id: m for m in read_po(source) if m.id}
    with catalog_path(language, DELETION).open("rb") as source:
        catalog = {m.id: m for m in read_po(source, locale=language) if m.id}
    assert set(catalog) <= set(template)
    for msgid, message in catalog.items():
        wanted = set(PLACEHOLDER.findall(" ".join(_forms(msgid))))
        for said in _forms(message.string):
            assert set(PLACEHOLDER.findall(said)) == wanted and not _said(said, language)[1], said
            assert _said(said, language)[0], said
    naming = {msgid for msgid in template if re.search(WORDS["en"][1], " ".join(_forms(msgid)))
              and not _forms(msgid)[0].startswith(NOT_SAID)}
    assert naming - set(catalog) == set()


def test_the_access_summary_names_the_right_as_the_law_grants_it():
    """The rights' descriptions are the policy's words; their names are the summary's."""
    assert "Deletion : " in summary("access", "ccpa", "en") and "Erasure : " not in summary("access", "ccpa", "en")
    assert "Erasure : " in summary("access", "gdpr", "en") and "Deletion : " not in summary("access", "gdpr", "en")
    assert "Suppression : " in summary("access", "lgpd", "fr") and "Effacement : " in summary("access", "gdpr", "fr")
