"""The words of the laws that say "personal information" (the CCPA, PIPEDA; "renseignements
personnels" in French) where the GDPR says "personal data": their override catalogs (dsrflow/i18n
`worded`) are checked against the template and the language's catalog, so that a sentence changed
or added in the base cannot leave its override behind or the old term in a letter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from dsrflow.i18n import LOCALES, PERSONAL_INFORMATION, catalog_path, translations, worded, wording_of
from schemas.vocabulary import Regime

# The GDPR's term and the one of the laws that say "personal information", in each language that
# has an override catalog. Dutch and German keep "persoonsgegevens" / "personenbezogene Daten".
TERMS = {"en": ("personal data", "personal information"),
         "fr": ("à caractère personnel", "renseignement")}
# Messages with the GDPR's term that no subject's letter says: the portal's pages, the access
# package's summary, the processors' e-mails, the staff alert and a sentence only the LGPD's
# letters say. Each keeps the language's usual words.
NOT_IN_LETTERS = {
    "Ask about your personal data",
    "Here is the copy of your personal data you asked for, in a format you can take to another service.",
    "Here is the copy of your personal data you asked for.",
    "It shows no personal data.",
    "Keep the file somewhere safe: it holds your personal data.",
    "Your personal data held by %(controller)s",
    "We apply to every request the period the LGPD sets for access to personal data, 15 days from receipt "
    "(Art. 19, II LGPD), and do not extend it.",
    "Open the request in the staff console to see whom it concerns and its full history. This alert "
    "deliberately contains no personal data of the data subject.",
}
_PROCESSOR_MAIL = ("the data subject below", "the only identifier we send", "controller of personal data that you")


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=locale)


def _ids(catalog: Catalog) -> set[str]:
    return {m.id for m in catalog if isinstance(m.id, str) and m.id}


def _said(catalog: Catalog, msgid: str, language: str) -> str:
    return msgid if language == "en" else str(catalog[msgid].string)


def _in_letters(msgid: str) -> bool:
    return msgid not in NOT_IN_LETTERS and not any(words in msgid for words in _PROCESSOR_MAIL)


def override_gaps(language: str, template: Catalog, base: Catalog, override: Catalog) -> list[str]:
    """What keeps `override` from saying every letter's message in the family's words: a message
    the template no longer has (its base sentence changed), a letter's message the base words with
    the GDPR's term and the override lacks, an override that still says it or whose placeholders
    differ from the English."""
    old, new = TERMS[language]
    gaps = [f"not in messages.pot: {i[:60]}" for i in _ids(override) - _ids(template)]
    gaps += [f"no override: {i[:60]}" for i in _ids(template) & _ids(base) - _ids(override)
             if old in _said(base, i, language) and _in_letters(i)]
    gaps += [f"old term: {m.id[:60]}" for m in override if m.id and (old in m.string or new not in m.string)]
    gaps += [f"placeholders: {m.id[:60]}" for m, _ in override.check()]
    return gaps


@pytest.mark.parametrize("language", TERMS)
def test_each_override_catalog_keeps_step_with_the_base(language):
    template = _read(LOCALES.parent / "messages.pot")
    base = template if language == "en" else _read(catalog_path(language), language)
    override = _read(catalog_path(language, PERSONAL_INFORMATION), language)
    assert override_gaps(language, template, base, override) == []


def test_a_base_sentence_changed_under_its_override_is_found():
    """The check above can fail: a base sentence reworded (its override now names a message the
    template lacks, and the new one has none)."""
    template = _read(LOCALES.parent / "messages.pot")
    override = _read(catalog_path("en", PERSONAL_INFORMATION), "en")
    reworded = "We found no personal data about you in our systems."
    template.delete(reworded)
    template.add(reworded.replace("found", "hold"))
    assert override_gaps("en", template, template, override) == [
        f"not in messages.pot: {reworded[:60]}", f"no override: {reworded.replace('found', 'hold')[:60]}"]


def test_the_ccpa_and_pipeda_are_worded_so_and_the_other_laws_not():
    # The VCDPA, the CTDPA and the CPA define "personal data", as the GDPR does.
    assert {regime.value: wording_of(regime) for regime in Regime if wording_of(regime)} == {
        "ccpa": PERSONAL_INFORMATION, "pipeda": PERSONAL_INFORMATION}
    french = worded("fr", PERSONAL_INFORMATION)
    assert french.gettext("We found no personal data about you in our systems.") == (
        "Nous n'avons trouvé aucun renseignement personnel vous concernant dans nos systèmes.")
    # A message the override does not hold is the language's own.
    assert french.gettext("Your request") == translations("fr").gettext("Your request") != "Your request"
    # Dutch and German have no override: their usual terms are these laws' too.
    said = "We found no personal data about you in our systems."
    assert worded("nl", PERSONAL_INFORMATION).gettext(said) == translations("nl").gettext(said) != said
    assert worded("en", None).gettext(said) == said
