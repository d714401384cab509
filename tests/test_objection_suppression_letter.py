"""The response to an objection to direct marketing tells the subject what we keep to honour it:
the fan-out (activities/fanout.py) writes a keyed hash of their e-mail address to `suppressions`
so that an import of the address is refused for ever. Before, the letter listed what the systems
stopped and said nothing of what we keep, or that marketing has stopped (Art. 21(3), and the
transparency Art. 12(1) asks of every processing of their data, this one included)."""

from __future__ import annotations

import pytest

from activities.citations import cite
from dsrflow.i18n import translations
from tests.letters_as_sent import LANGUAGES, REFUSED, as_sent, both

STOPPED = {"report": {"results": [
    {"system": "email_marketing", "action": "object", "status": "done", "found": 1, "changed": 1,
     "datasets": {"subscribers": {"found": 1, "changed": 1, "kept": 0}}}]}}
# In each language, words a reader finds: marketing has stopped, and the fingerprint is kept.
SAID = {"en": ("no longer use your personal data for direct marketing", "suppression list", "keyed hash"),
        "nl": ("niet langer voor direct marketing", "uitsluitingslijst", "geheime sleutel"),
        "fr": ("plus vos données à caractère personnel à des fins de prospection", "liste d'opposition", "clé secrète"),
        "de": ("nicht mehr für Direktwerbung", "Sperrliste", "geheimem Schlüssel")}


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_objection_to_direct_marketing_says_marketing_stopped_and_what_is_kept(language):
    letter = await as_sent("response", "objection", STOPPED, language=language,
                           details={"objection_scope": "direct_marketing"})
    for part in both(letter):
        for words in SAID[language]:
            assert words in part, (language, words)
        assert cite("gdpr", "21(3)", "(%s)", translations(language)) in part  # the GDPR's absolute right
        assert "jane@example.org" not in part.split(SAID[language][0], 1)[1][:400]


@pytest.mark.parametrize("scope", ["legitimate_interest", "profiling"])
async def test_other_objections_say_nothing_of_marketing(scope):
    letter = await as_sent("response", "objection", STOPPED, details={"objection_scope": scope})
    for part in both(letter):
        assert "suppression list" not in part and "direct marketing" not in part


async def test_an_objection_overridden_keeps_no_suppression_sentence():
    """Compliance found compelling grounds (Art. 21(1)): the processing continues, and the letter
    says so; it may not also say marketing stopped."""
    letter = await as_sent("response", "objection", REFUSED, details={"objection_scope": "legitimate_interest"})
    t = translations("en")
    for part in both(letter):
        assert "suppression list" not in part
        assert t.gettext("We have now completed your request.") not in part
