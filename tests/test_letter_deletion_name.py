"""An erasure is named in the words of the request's law. "Erasure (right to be forgotten)" is the
title of Art. 17 GDPR; the VCDPA, the CTDPA, the CPA and the LGPD grant the deletion of personal
data (Va. Code § 59.1-577(A)(3): "To delete personal data provided by or obtained about the
consumer"; LGPD Art. 18, VI: "eliminação"), and their letters said the GDPR's name of the right in
the reference block of every letter. The CCPA's and PIPEDA's letters already said "deletion of
your personal information" (tests/test_letter_wording.py). Built as the letter activity builds
each letter (tests/letters_as_sent.py)."""

from __future__ import annotations

import pytest

from tests.letters_as_sent import as_sent, both, erasure_with_kept

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
