"""A rectification is named in the words of the request's law, as an erasure is
(tests/test_letter_deletion_name.py). "Rectification" is the GDPR's word (Art. 16); the CCPA grants
the right "to correct inaccurate personal information" (Cal. Civ. Code § 1798.106), the VCDPA and
the CTDPA "to correct inaccuracies" (Va. Code § 59.1-577(A)(2); Conn. Gen. Stat. § 42-518(a)(2)),
the CPA a "right to correction" (C.R.S. § 6-1-1306(1)(c)), the LGPD "correção" (Art. 18, III) and
PIPEDA has inaccurate information "amended", corrected (Schedule 1, clause 4.9.5). The response
said "Request: rectification of inaccurate data" and "informed each recipient of this
rectification" under all of them. English and Dutch ("rectificatie", the AVG's word) now say
correction; French ("rectification") and German ("Berichtigung") use the ordinary word anyway.
Built as the letter activity builds each letter (tests/letters_as_sent.py)."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from dsrflow.i18n import CORRECTION, catalog_path, corrects, deletes
from tests.letters_as_sent import as_sent, both
from tests.test_letter_deletion_name import words_said
from tests.test_regime_citations import summary

CORRECTING = ["ccpa", "vcdpa", "ctdpa", "cpa", "lgpd", "pipeda"]
COUNTRY = {"ccpa": "US", "vcdpa": "US", "ctdpa": "US", "cpa": "US", "lgpd": "BR", "pipeda": "CA",
           "gdpr": "BE", "uk_gdpr": "GB"}
# (the law's word, the GDPR's) in each language that tells them apart.
WORDS = {"en": (r"\bcorrect(?:ed|ion)?\b", r"\brectif"), "nl": (r"corrig|correctie", r"rectific")}
# The request's name in the letters' reference block: the CCPA and PIPEDA say "personal information".
NAMES = {"en": "correction of inaccurate personal data", "nl": "correctie van onjuiste gegevens"}
_CRM = {"system": "crm", "status": "done", "found": 2, "changed": 2, "action": "rectify",
        "datasets": {"contacts": {"found": 2, "changed": 2}}}
# One system's correction and its recipient, another's records an earlier erasure kept as they were.
_PARAMS = {"report": {"results": [
    {**_CRM, "recipient": "communication_crm"},
    {"system": "billing", "action": "rectify", "status": "not_found",
     "datasets": {"customers": {"found": 0, "changed": 0, "left": 1}}}]}}


def _said(text: str, language: str) -> tuple[list[str], list[str]]:
    return words_said(text, WORDS[language])


@pytest.mark.parametrize("regime", [*CORRECTING, "gdpr", "uk_gdpr"])
@pytest.mark.parametrize("language", list(WORDS))
async def test_a_correction_is_named_in_its_laws_words(regime, language):
    """The response (told recipients, a record kept as it was) and the acknowledgement say
    correction under the six laws and nothing of the GDPR's rectification; the GDPR's and the UK
    GDPR's keep it."""
    correcting = regime in CORRECTING
    for purpose, params in (("response", _PARAMS), ("acknowledgement", {"verification_required": False})):
        letter = await as_sent(purpose, "rectification", params, regime=regime, language=language,
                               country=COUNTRY[regime])
        for part in both(letter):
            theirs, gdprs = _said(part, language)
            assert (not gdprs) if correcting else bool(gdprs), (purpose, gdprs, part)
            if correcting:
                name = NAMES[language]
                if language == "en" and regime in ("ccpa", "pipeda"):
                    name = "correction of inaccurate personal information"
                assert name in part, (purpose, part)
    if language == "en" and correcting:
        response = " ".join((await as_sent("response", "rectification", _PARAMS, regime=regime,
                                           country=COUNTRY[regime])).text.split())
        assert "of this correction: Communication, e-mail server" in response


def test_the_access_summary_names_the_right_to_correct_as_the_law_grants_it():
    assert "Correction : " in summary("access", "ccpa", "en") and "Rectification : " not in summary("access", "ccpa", "en")
    assert "Rectification : " in summary("access", "gdpr", "en")
    assert "Recht op correctie : " in summary("access", "lgpd", "nl")
    assert "Recht op rectificatie : " in summary("access", "gdpr", "nl")


def test_the_correcting_laws_are_the_deleting_ones():
    assert [r for r in [*CORRECTING, "gdpr", "uk_gdpr"] if corrects(r)] == CORRECTING
    assert all(deletes(r) for r in CORRECTING) and not corrects(None)


def _forms(text: str | tuple[str, ...]) -> tuple[str, ...]:
    return text if isinstance(text, tuple) else (text,)


PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@pytest.mark.parametrize("language", list(WORDS))
def test_each_correction_catalog_keeps_step_with_the_base(language):
    """Every message it holds is in messages.pot with the same placeholders and says the law's
    word, none of the GDPR's."""
    with open("dsrflow/i18n/messages.pot", "rb") as source:
        template = {m.id for m in read_po(source) if m.id}
    with catalog_path(language, CORRECTION).open("rb") as source:
        catalog = {m.id: m for m in read_po(source, locale=language) if m.id}
    assert set(catalog) <= template
    for msgid, message in catalog.items():
        wanted = set(PLACEHOLDER.findall(" ".join(_forms(msgid))))
        for said in _forms(message.string):
            assert set(PLACEHOLDER.findall(said)) == wanted, said
            assert _said(said, language)[0] and not _said(said, language)[1], said
