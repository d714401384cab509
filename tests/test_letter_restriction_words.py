"""What a restriction's response says may still be done with the data, in the words of the law of
its request (Art. 18(2)): the public interest that allows processing is the Union's or a Member
State's under the GDPR, the United Kingdom's under the UK GDPR. The letter said "for reasons of
important public interest", any public interest, in every language. Pure rendering, as the letter
activity builds each letter (tests/letters_as_sent.py)."""

from __future__ import annotations

import pytest

from tests.letters_as_sent import LANGUAGES, as_sent, both

RESTRICTED = {"report": {"results": [
    {"system": "crm", "action": "restrict", "status": "done", "found": 2, "changed": 2,
     "recipient": "communication_crm", "datasets": {"contacts": {"found": 2, "changed": 2}}}]}}
# Each language version of Art. 18(2), as the Official Journal words it (the UK GDPR: legislation.gov.uk).
INTEREST = {
    "gdpr": {"en": "important public interest of the Union or of a Member State (Art. 18(2) GDPR)",
             "fr": "motifs importants d'intérêt public de l'Union ou d'un État membre (art. 18, paragraphe 2, du RGPD)",
             "nl": "gewichtige redenen van algemeen belang voor de Unie of voor een lidstaat (art. 18, lid 2, AVG)",
             "de": "Gründen eines wichtigen öffentlichen Interesses der Union oder eines Mitgliedstaats "
                   "(Art. 18 Abs. 2 DSGVO)"},
    "uk_gdpr": {"en": "important public interest of the United Kingdom (Art. 18(2) UK GDPR)",
                "fr": "motifs importants d'intérêt public du Royaume-Uni",
                "nl": "gewichtige redenen van algemeen belang voor het Verenigd Koninkrijk",
                "de": "Gründen eines wichtigen öffentlichen Interesses des Vereinigten Königreichs"},
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", INTEREST)
async def test_a_restriction_names_whose_public_interest_allows_processing(regime, language):
    letter = await as_sent("response", "restriction", RESTRICTED, regime=regime, language=language)
    for part in both(letter):
        assert INTEREST[regime][language] in part, part

