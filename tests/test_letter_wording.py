"""A letter says what the law of its request says: "personal information" under the CCPA and
PIPEDA ("renseignements personnels" in French), "personal data" under the GDPR and the other laws;
and the "service provider" that holds data for us under those two, where the GDPR and the state
laws say "processor" (Cal. Civ. Code § 1798.140(ag); PIPEDA, Schedule 1, cl. 4.1.3, "a third party
for processing"; "fournisseur de services" in French), in English and French.

Every letter a subject reads (the cases of tests/test_letter_terms.py) is built as the letter
activity builds it (tests/letters_as_sent.py) and rendered, in process. The override catalogs
(dsrflow/i18n `worded`) are checked against the template and the language's catalog, so that a
sentence changed or added in the base cannot leave its override behind or the old term in a letter.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

import activities.letter_context as letter_context
from activities.citations import cited_label
from activities.letter_outcome import response_outcome
from activities.letter_refusals import remedies_context
from activities.letter_templates import render_letter
from activities.restrictions import GROUND_LABELS
from dsrflow.i18n import LOCALES, PERSONAL_INFORMATION, catalog_path, translations, worded, wording_of
from schemas.vocabulary import Regime
from schemas.workflow import LetterJob
from tests.letters_as_sent import APPEAL_OF, LOADED, REQUEST_ID, _Ctx, both, request_row
from tests.test_letter_terms import _PACKAGE as PACKAGE
from tests.test_letter_terms import CASES, GIVEN

# The GDPR's term and the one of the laws that say "personal information", in each language that
# has an override catalog. Dutch and German keep "persoonsgegevens" / "personenbezogene Daten".
TERMS = {"en": ("personal data", "personal information"),
         "fr": ("à caractère personnel", "renseignement")}
# The GDPR's processor and those laws' service provider; "%(processors)s" names a placeholder.
PROCESSOR_TERMS = {"en": (re.compile(r"(?<!%\()\bprocessors?\b"), re.compile(r"\bservice providers?\b")),
                   "fr": (re.compile(r"sous-traitant"), re.compile(r"\bfournisseurs? de services\b"))}
# The subject's country under each law of the family, and the languages its letters are read in.
WORDED = {"ccpa": ("US", ["en"]), "pipeda": ("CA", ["en", "fr"])}
# Messages with the GDPR's term that no subject's letter says: the portal's pages, the access
# package's summary, the processors' e-mails, the staff alert and a sentence only the LGPD's letters
# say. Each keeps the language's usual words.
NOT_IN_LETTERS = {
    "Ask about your personal data",
    "Here is the copy of your personal data you asked for, in a format you can take to another service.",
    "Here is the copy of your personal data you asked for.",
    "It shows no personal data.",
    "Keep the file somewhere safe: it holds your personal data.",
    "Your personal data held by %(controller)s",
    "We apply to every request the period the LGPD sets for access to personal data, 15 days from receipt "
    "(Art. 19, II LGPD), and do not extend it.",
    "Files our processors sent us",
    "These processors have no system we can read ourselves: they sent us their copy of your data, which "
    "is included as they sent it.",
    "asking a processor how its work stands",
    "Open the request in the staff console to see whom it concerns and its full history. This alert "
    "deliberately contains no personal data of the data subject.",
    # The LGPD's simplified confirmation (Art. 19, I), which no other law's letter says.
    "Whether we process personal data about you (ref. %(ref)s)",
    "Whether we process personal data about you",
    "We confirm that we process personal data about you: our own systems hold data about you.",
    "Those of our own systems we could read just now hold no personal data about you.",
    "Our own systems hold no personal data about you.",
    "We do not process personal data about you: none of our systems holds any data about you.",
    "We are still asking the processors that handle personal data on our behalf; their answers come later.",
    "Until then, we cannot tell you for certain that we process no personal data about you.",
    "This is the simplified confirmation you asked for under Article 19, I of the LGPD, sent as soon as your "
    "identity was confirmed. By %(date)s at the latest we will send you our complete answer under Article 19, II: "
    "a clear and complete statement of the origin of the data, whether records about you exist, the criteria "
    "used and the purposes of the processing, with a copy of any data we hold about you.",
}
# Letters only an LGPD request receives (schemas/requests.py refuses them under any other law).
LGPD_ONLY = {"simplified_confirmation"}
# The processors' e-mails and the pages their links open (api/callbacks/processor_pages.py): in the
# words of their own catalogs (tests/test_processor_wording.py, tests/test_processor_pages.py).
_PROCESSOR_MAIL = ("the data subject below", "the only identifier we send", "controller of personal data that you",
                   "the data subject's personal data", "hold about a data subject on our behalf",
                   "personal data about this person", "we asked you, as our processor")


PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


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
    differ from the English. The GDPR's terms are its "personal data" and its "processor"; an
    override says the family's term for each its English names, and none of the GDPR's."""
    old, new = TERMS[language]
    processor, provider = PROCESSOR_TERMS[language]

    def gdprs(text: str) -> bool:
        return old in text or bool(processor.search(text))

    def worded_so(m: Any) -> bool:
        english, said = " ".join(_forms(m.id)), _forms(m.string)
        needed = [term for term, named in ((re.compile(re.escape(new)), "personal data" in english),
                                           (provider, PROCESSOR_TERMS["en"][0].search(english))) if named]
        return (all(term.search(s) for term in needed for s in said)
                and any(new in s or provider.search(s) for s in said))

    gaps = [f"not in messages.pot: {i[:60]}" for i in _ids(override) - _ids(template)]
    gaps += [f"no override: {i[:60]}" for i in _ids(template) & _ids(base) - _ids(override)
             if gdprs(_said(base, i, language)) and _in_letters(i)]
    gaps += [f"old term: {_forms(m.id)[0][:60]}" for m in override
             if m.id and (any(gdprs(s) for s in _forms(m.string)) or not worded_so(m))]
    gaps += [f"placeholders: {_forms(m.id)[0][:60]}" for m, _ in override.check()]
    return gaps


def _forms(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """A message's text, or each of its plural forms."""
    return text if isinstance(text, tuple) else (text,)


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
    # The VCDPA, the CTDPA and the CPA define "personal data", as the GDPR does (their letters are
    # worded only for the deletion they grant: tests/test_letter_deletion_name.py).
    assert {regime.value: wording_of(regime) for regime in Regime if wording_of(regime) == PERSONAL_INFORMATION} == {
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


async def _context(purpose: str, request_type: str, params: dict[str, Any], regime: str, language: str,
                   country: str) -> dict[str, Any]:
    """The context the letter activity builds (`build_context`) for a request under `regime`."""
    job = LetterJob(request_id=REQUEST_ID, purpose=purpose, params=params)
    # A progress letter is a complaint's, which names the request complained of.
    complaint = {"details": {"appeal_of": APPEAL_OF}} if purpose == "complaint_progress" else {}
    row = request_row(regime, request_type, language, country=country, **complaint)
    return await letter_context.build_context(_Ctx(LOADED), row, job, language)  # type: ignore[arg-type]


async def letter_text(case: str, regime: str, language: str, country: str) -> str:
    """The letter of `case` under `regime` in `language` as its reader sees it: the subject line,
    the plain text and the HTML's text, what staff wrote left out. What `build_context` reads from
    the database (the restriction on record, the package's link) is given as it gives it."""
    purpose, request_type, params = CASES[case]
    policy, t = LOADED.in_language(language), worded(language, wording_of(regime))
    if purpose == "restriction_lift":
        context = await _context("extension", request_type, {"reason": GIVEN, "new_due_date": "2026-04-30"},
                                 regime, language, country)
        context.update(params, lift_on=date.fromisoformat(params["lift_on"]), restriction={
            "since": date(2025, 11, 4),
            "grounds": [cited_label(label, regime, t) for label in GROUND_LABELS.values()],
            "recipients": [policy.recipients["financial_services"].name]},
            complaint=remedies_context(policy, regime, country, appeal=False, t=t))
    else:
        context = await _context(purpose, request_type, params, regime, language, country)
    if case == "response-access-package":
        context["outcome"] = response_outcome({"results": [], "package": PACKAGE}, policy,
                                              "https://privacy.example.test/portal/packages/tok",
                                              datetime(2026, 3, 9, 23, 59, tzinfo=UTC), t, source=LOADED.policy,
                                              regime=regime)
        context["remedies"] = remedies_context(policy, regime, country, appeal=False, t=t)
    letter = render_letter(purpose, context, language)
    return "\n".join([letter.subject, *both(letter)]).replace(GIVEN, "")


WORDED_CASES = [(regime, language) for regime, (_, languages) in WORDED.items() for language in languages]
# Letters whose own sentences (not the policy's) name the GDPR's term.
SAYS_IT = ["acknowledgement", "verification", "response-erasure-kept", "response-rectification",
           "response-restriction", "response-objection-upheld"]


@pytest.mark.parametrize(("regime", "language"), WORDED_CASES)
@pytest.mark.parametrize("case", [case for case, (purpose, *_) in CASES.items() if purpose not in LGPD_ONLY])
async def test_letters_under_the_ccpa_and_pipeda_say_personal_information(case, regime, language):
    old, new = TERMS[language]
    text = await letter_text(case, regime, language, WORDED[regime][0])
    assert old not in text, f"{case} under {regime} in {language}: {text[max(text.find(old) - 80, 0):][:200]}"
    assert not PROCESSOR_TERMS[language][0].search(text), f"{case} under {regime} in {language}"
    # Said in the law's words, not merely left out, where the GDPR's letter says its term.
    assert new in text or case not in SAYS_IT, case


@pytest.mark.parametrize("language", TERMS)
@pytest.mark.parametrize("case", SAYS_IT)
async def test_gdpr_letters_keep_personal_data(case, language):
    old, new = TERMS[language]
    text = await letter_text(case, "gdpr", language, "BE")
    assert old in text and new not in text, case


@pytest.mark.parametrize("language", ["en", "fr", "nl", "de"])
@pytest.mark.parametrize("regime", WORDED)
async def test_an_erasure_under_the_ccpa_and_pipeda_is_a_deletion_not_the_gdprs_right_to_be_forgotten(regime, language):
    """Art. 17 GDPR's name for the right is not these laws' (the CCPA's "right to delete"), in any
    language: Dutch and German keep their usual legal term, not the GDPR's name of the right."""
    text = await letter_text("response-erasure-kept", regime, language, WORDED[regime][0])
    gdpr_name, theirs = {"en": ("right to be forgotten", "deletion of your personal information"),
                         "fr": ("droit à l'oubli", "suppression de vos renseignements personnels"),
                         "nl": ("vergetelheid", "verwijdering van uw persoonsgegevens"),
                         "de": ("Vergessenwerden", "Löschung Ihrer personenbezogenen Daten")}[language]
    assert gdpr_name not in text and theirs in text


async def test_the_french_words_agree_with_renseignement():
    """A masculine noun: "aucun renseignement personnel ... trouvé", never "trouvée"."""
    text = await letter_text("response-access-package", "pipeda", "fr", "CA")
    assert "aucun renseignement personnel vous concernant trouvé" in text
    assert "vous concernant trouvée" not in text


@pytest.mark.parametrize("path", sorted(LOCALES.glob(f"*/LC_MESSAGES/{PERSONAL_INFORMATION}.po")), ids=lambda p: p.parts[-3])
def test_every_override_catalog_names_only_known_messages_with_their_placeholders(path):
    """Dutch's and German's (the erasure's name only) too, which the check above, by the term, skips.
    Each placeholder of a message in its words, none dropped: Babel's check lets a translation omit
    one, and the letter would then lose its citation without an error."""
    override = _read(path, path.parts[-3])
    known = {m.id for m in _read(LOCALES.parent / "messages.pot") if m.id}
    assert _ids(override) and {m.id for m in override if m.id} <= known
    assert [m.id for m in override if m.id and any(set(PLACEHOLDER.findall(" ".join(_forms(m.id))))
                                                   != set(PLACEHOLDER.findall(said)) for said in _forms(m.string))] == []
