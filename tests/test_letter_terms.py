"""The Regulation's own words in every letter a subject reads, in Dutch, French and German.

A Belgian DPO reads the letters against the official language versions of Regulation (EU)
2016/679: where the English letter names a concept of the GDPR (the supervisory authority, the
controller, restriction of processing, the legal claims of Art. 17(3)(e)...), the translated
letter must use the term that language version uses, cite its articles in that language's style
("art. 17, lid 3, AVG", "art. 17, paragraphe 3, du RGPD", "Art. 17 Abs. 3 DSGVO"), name the
Belgian authority and courts as they are named in that language, and use none of the renderings
known to be wrong (an earlier term, another country's, an informal "you", English left behind).
Each subject letter is built as the letter activity builds it (tests/letters_as_sent.py) under
the default controller's policy (Belgium, GDPR); the access package's summary is read too, as it
states the subject's rights in the policy's words.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from babel.messages.pofile import read_po

import activities.letter_context as letter_context
from activities.citations import cited_label
from activities.letter_outcome import response_outcome
from activities.letter_refusals import remedies_context
from activities.letter_templates import render_letter
from activities.restrictions import GROUND_LABELS
from dsrflow.i18n import translations
from schemas.requests import DenialReason
from schemas.vocabulary import SUBJECT_PURPOSES
from schemas.workflow import LetterJob
from tests.letters_as_sent import (
    APPEAL_OF,
    LOADED,
    REFUSED,
    REGIMES,
    REQUEST_ID,
    _Ctx,
    as_sent,
    both,
    erasure_with_kept,
    request_row,
)
from tests.test_regime_citations import summary

TRANSLATED = ["nl", "fr", "de"]
# What staff write (a reason, an explanation) stays as written: a token no check below reads.
GIVEN = "Ref-5D0C"

# --- The glossary ------------------------------------------------------------------------------
# (concept, where the English letter names it, the term of each language version that must then
# be in the translated letter). The Regulation's terms: nl AVG, fr RGPD, de DSGVO.
GLOSSARY: list[tuple[str, str, dict[str, str]]] = [
    ("the law", r"\bGDPR\b", {"nl": r"\bAVG\b", "fr": r"\bRGPD\b", "de": r"\bDSGVO\b"}),
    ("personal data", r"personal data",
     {"nl": r"persoonsgegevens", "fr": r"données à caractère personnel", "de": r"personenbezogene[nr]? Daten"}),
    ("controller", r"\ba controller\b",
     {"nl": r"verwerkingsverantwoordelijke", "fr": r"responsable du traitement", "de": r"\bVerantwortlicher\b"}),
    ("processor", r"\bprocessors?\b", {"nl": r"verwerker", "fr": r"sous-traitant", "de": r"Auftragsverarbeiter"}),
    ("recipient", r"\brecipients?\b", {"nl": r"ontvanger", "fr": r"destinataire", "de": r"Empfänger"}),
    ("supervisory authority", r"supervisory authority",
     {"nl": r"toezichthoudende autoriteit", "fr": r"autorité de contrôle", "de": r"Aufsichtsbehörde"}),
    ("the Belgian authority", r"Gegevensbeschermingsautoriteit",
     {"nl": r"Gegevensbeschermingsautoriteit", "fr": r"Autorité de protection des données",
      "de": r"Datenschutzbehörde"}),
    ("Member State", r"Member State", {"nl": r"lidstaat", "fr": r"État membre", "de": r"Mitgliedstaat"}),
    ("complaint (Art. 77)", r"lodge a complaint",
     {"nl": r"klacht in te dienen", "fr": r"introduire une réclamation", "de": r"Recht auf Beschwerde"}),
    ("judicial remedy (Art. 79)", r"judicial remedy",
     {"nl": r"voorziening in rechte", "fr": r"recours juridictionnel", "de": r"gerichtlichen Rechtsbehelf"}),
    ("the remedies (Art. 12(4))", r"remedies available to you",
     {"nl": r"rechtsmiddelen", "fr": r"voies de recours", "de": r"Rechtsbehelfe"}),
    ("the Belgian court", r"court of first instance",
     {"nl": r"rechtbank van eerste aanleg", "fr": r"tribunal de première instance", "de": r"Gerichts? erster Instanz"}),
    ("summary proceedings", r"sitting as in summary proceedings",
     {"nl": r"zitting houdende zoals in kort geding", "fr": r"siégeant comme en référé",
      "de": r"der wie im Eilverfahren tagt"}),
    ("the Belgian Act", r"Act of 30 July 2018",
     {"nl": r"wet van 30 juli 2018 betreffende de bescherming van natuurlijke personen met betrekking tot de "
            r"verwerking van persoonsgegevens",
      "fr": r"loi du 30 juillet 2018 relative à la protection des personnes physiques à l'égard des "
            r"traitements de données à caractère personnel",
      "de": r"Gesetzes vom 30\. Juli 2018 über den Schutz natürlicher Personen hinsichtlich der "
            r"Verarbeitung personenbezogener Daten"}),
    ("access (Art. 15)", r"access to your personal data",
     {"nl": r"inzage in uw persoonsgegevens", "fr": r"accès à vos données à caractère personnel",
      "de": r"Auskunft über Ihre personenbezogenen Daten"}),
    ("rectification (Art. 16)", r"\brectification\b",
     {"nl": r"rectificatie", "fr": r"rectification", "de": r"Berichtigung"}),
    ("erasure (Art. 17)", r"\berasure\b", {"nl": r"wissing|wissen", "fr": r"effacement", "de": r"Löschung"}),
    ("right to be forgotten", r"right to be forgotten",
     {"nl": r"recht op vergetelheid", "fr": r"droit à l'oubli", "de": r"Recht auf Vergessenwerden"}),
    ("restriction of processing (Art. 18)", r"restriction of processing",
     {"nl": r"beperking van de verwerking", "fr": r"limitation du traitement",
      "de": r"Einschränkung der Verarbeitung"}),
    ("a restriction", r"\brestriction\b", {"nl": r"\bbeperking\b", "fr": r"\blimitation\b", "de": r"Einschränkung"}),
    ("portability (Art. 20)", r"portable format",
     {"nl": r"overdraagbaar formaat", "fr": r"format portable", "de": r"übertragbaren Format"}),
    ("objection (Art. 21)", r"\bobject(?:ion|ed)?\b",
     {"nl": r"bezwaar", "fr": r"opposition|opposer|opposiez", "de": r"Widerspruch|widersprechen"}),
    ("legitimate interests", r"legitimate interests",
     {"nl": r"gerechtvaardigde? belang", "fr": r"intérêts légitimes", "de": r"berechtigten Interessen"}),
    ("compelling legitimate grounds (Art. 21(1))", r"compelling legitimate grounds",
     {"nl": r"dwingende gerechtvaardigde gronden", "fr": r"motifs légitimes et impérieux",
      "de": r"zwingenden? schutzwürdigen? Gründe"}),
    ("legal claims (Art. 17(3)(e), 18, 21)", r"establishment, exercise or defence of legal claims",
     {"nl": r"instelling, uitoefening of onderbouwing van een rechtsvordering",
      "fr": r"constatation, (?:à )?(?:l')?exercice ou (?:à )?(?:la )?défense de droits en justice",
      "de": r"Geltendmachung, Ausübung oder Verteidigung von Rechtsansprüchen"}),
    ("legal obligation (Art. 17(3)(b))", r"compliance with a legal obligation",
     {"nl": r"nakoming van een wettelijke verplichting", "fr": r"respect d'une obligation légale",
      "de": r"Erfüllung einer rechtlichen Verpflichtung"}),
    ("manifestly unfounded (Art. 12(5))", r"manifestly unfounded",
     {"nl": r"kennelijk ongegrond", "fr": r"manifestement infondée", "de": r"offenkundig unbegründet"}),
    ("manifestly excessive (Art. 12(5))", r"manifestly excessive",
     {"nl": r"kennelijk buitensporig", "fr": r"manifestement excessive", "de": r"offenkundig exzessiv"}),
    ("consent", r"\bconsent\b", {"nl": r"toestemming", "fr": r"consentement", "de": r"Einwilligung"}),
    ("direct marketing (Art. 21(2))", r"direct marketing",
     {"nl": r"direct marketing", "fr": r"prospection", "de": r"Direktwerbung"}),
    ("profiling", r"\bprofil(?:ing|e)\b", {"nl": r"profiel|profilering", "fr": r"profil", "de": r"Profil"}),
    ("the formal you", r"\b[Yy]ou\b", {"nl": r"\bu\b", "fr": r"\bvous\b", "de": r"\bSie\b"}),
]

# Renderings that must never appear: English left behind, a citation in the English style, an
# earlier or foreign term, the informal "you".
_ENGLISH = [r"\bGDPR\b", r"supervisory authority", r"\bcontroller\b", r"judicial remedy", r"legal claims",
            r"Member State", r"Dear ", r"Kind regards", r"\bRequest reference\b",
            r"\b(?:Art\.|Article|art\.|article|artikel|Artikel) \d+\(\d"]
# A date written the English way (German writes April, August, September and November so too).
_MONTHS = r"\b(?:January|February|March|May|June|July|October|December{})\b"
_EN_ONLY_MONTHS, _ALL_MONTHS = _MONTHS.format(""), _MONTHS.format("|April|August|September|November")
WRONG: dict[str, list[str]] = {
    "nl": [*_ENGLISH, _ALL_MONTHS, r"\bje\b", r"\bjij\b", r"\bjouw\b", r"\bjullie\b",
           r"verantwoordelijke voor de verwerking", r"Privacycommissie",
           r"Commissie voor de bescherming van de persoonlijke levenssfeer", r"recht om vergeten te worden",
           r"beperking van verwerking", r"persoonlijke gegevens", r"\btoezichthouder\b", r"\bgegevensverwerker",
           r"\bDSGVO\b", r"\bRGPD\b", r"\bArt\. \d+, lid"],
    "fr": [*_ENGLISH, _ALL_MONTHS, r"\btu\b", r"\btoi\b", r"\bton\b", r"\btes\b", r"responsable de traitement",
           r"\bcontrôleur\b", r"restriction du traitement", r"droit d'être oublié", r"données? personnelles?",
           r"Commission de la protection de la vie privée", r"plainte auprès (?:d'une|de l') ?autorité de contrôle",
           r"\bAVG\b", r"\bDSGVO\b", r"\bArt\. \d+, paragraphe", r"au marketing direct"],
    "de": [*_ENGLISH, _EN_ONLY_MONTHS, r"\bdu\b", r"\bdich\b", r"\bdir\b", r"\bdein", r"Verantwoordelijke",
           r"Kontrolleur", r"Datenverantwortliche", r"Beschränkung der Verarbeitung", r"Recht auf Vergessen\b",
           r"Aufsichtsstelle", r"Auftragsbearbeiter", r"persönlichen? Daten", r"\bAVG\b", r"\bRGPD\b",
           r"\bCIR 92\b"],
}

# --- Citations ---------------------------------------------------------------------------------
# "Art. 17(3)(e) GDPR", "Article 12(4) GDPR", "Article 18(3) of the GDPR": one article, a
# paragraph, a point. Citations of several articles are listed after it.
_CITED = re.compile(r"\b(?:Art\.|Article) (\d+)(?:\((\d+)\))?(?:\(([a-z])\))?(?: of the)? GDPR")
_SEVERAL = {
    "Art. 15 to 21 GDPR": {"nl": "art. 15 tot en met 21 AVG", "fr": "art. 15 à 21 du RGPD", "de": "Art. 15 bis 21 DSGVO"},
    "Art. 11(2) and 12(2) GDPR": {"nl": "art. 11, lid 2, en art. 12, lid 2, AVG",
                                  "fr": "art. 11, paragraphe 2, et art. 12, paragraphe 2, du RGPD",
                                  "de": "Art. 11 Abs. 2 und Art. 12 Abs. 2 DSGVO"},
    "Art. 17, 18 and 21 GDPR": {"nl": "art. 17, 18 en 21 AVG", "fr": "art. 17, 18 et 21 du RGPD",
                                "de": "Art. 17, 18 und 21 DSGVO"},
}


def cited_as(language: str, article: str, paragraph: str | None, point: str | None) -> str:
    """A pattern for one article as `language` cites it: "artikel 12, lid 4, AVG" or "art. 17,
    lid 3, onder e), AVG"; "l'article 12, paragraphe 4, du RGPD"; "Art. 17 Abs. 3 Buchst. e DSGVO"."""
    if language == "de":
        return (rf"Art\. {article}" + (rf" Abs\. {paragraph}" if paragraph else "")
                + (rf" Buchst\. {point}" if point else "") + " DSGVO")
    word, para, pt, law = {"nl": ("artikel", "lid", "onder", "AVG"),
                           "fr": ("article", "paragraphe", "point", "du RGPD")}[language]
    return (rf"(?:art\.|{word}) {article}" + (rf", {para} {paragraph}" if paragraph else "")
            + (rf", {pt} {point}\)" if point else "") + ("," if paragraph else "") + f" {law}")


def citation_gaps(english: str, translated: str, language: str) -> list[str]:
    """The English letter's citations of the GDPR that the translated letter does not give in its
    language's style."""
    gaps = [m.group() for m in _CITED.finditer(english) if not re.search(cited_as(language, *m.groups()), translated)]
    gaps += [en for en, words in _SEVERAL.items() if en in english and words[language] not in translated]
    return list(dict.fromkeys(gaps))


def glossary_gaps(english: str, translated: str, language: str) -> list[str]:
    """The concepts the English letter names whose official term the translated letter lacks."""
    return [concept for concept, said, words in GLOSSARY
            if re.search(said, english) and not re.search(words[language], translated)]


def wrong_terms(translated: str, language: str) -> list[str]:
    return list(dict.fromkeys(m.group() for wrong in WRONG[language] for m in re.finditer(wrong, translated)))


# --- The letters -------------------------------------------------------------------------------

_EXPIRES = "2026-02-07T14:05:00+00:00"
_CODE = {"code": "482913", "link": "https://privacy.example.test/verify?token=abc", "expires_at": _EXPIRES,
         "max_attempts": 5}


def _told(result: dict[str, Any], recipient: str) -> dict[str, Any]:
    return {**result, "recipient": recipient}


def _done(system: str, action: str, dataset: str, **counts: int) -> dict[str, Any]:
    return {"system": system, "action": action, "status": "done", "datasets": {dataset: {**counts, "kept": 0}},
            **counts}


_ERASURE = erasure_with_kept()
_ERASURE["report"]["results"] = [_told(r, "financial_services") if r["system"] == "billing" else r
                                 for r in _ERASURE["report"]["results"]]
# An access answered with a package: a system with records, one with none, a processor's files,
# a processor that sent nothing (a refusal in part).
_PACKAGE = {"package_id": "pkg-1", "systems": {"crm": 3, "billing": 0}, "processor_files": {"surveys": 2},
            "missing": {"work_management": "not_provided"}}

# case: (purpose, request type, the workflow's params)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "acknowledgement": ("acknowledgement", "erasure", {"verification_required": True}),
    "acknowledgement-verified": ("acknowledgement", "access", {"verification_required": False}),
    "verification": ("verification", "erasure", _CODE),
    "reminder": ("reminder", "erasure", _CODE),
    "extension": ("extension", "portability", {"reason": GIVEN, "new_due_date": "2026-04-30"}),
    "response-erasure-kept": ("response", "erasure", _ERASURE),
    "response-access-package": ("response", "access", {"report": {"results": []}}),
    "response-access": ("response", "access", {"report": {"results": [_done("crm", "access", "contacts", found=3)]}}),
    "response-portability": ("response", "portability",
                             {"report": {"results": [_done("crm", "access", "contacts", found=3)]}}),
    "response-rectification": ("response", "rectification", {"report": {"results": [
        _told(_done("crm", "rectify", "contacts", found=1, changed=1), "communication_crm")]}}),
    "response-restriction": ("response", "restriction", {"report": {"results": [
        _told(_done("crm", "restrict", "contacts", found=2, changed=2), "communication_crm")]}}),
    "response-objection-upheld": ("response", "objection", {
        "report": {"results": [_done("email_marketing", "object", "members", found=1, changed=1)]},
        "decision": {"compelling_grounds": False, "explanation": GIVEN}}),
    "response-objection-refused": ("response", "objection", {**REFUSED, "decision": {
        "compelling_grounds": True, "explanation": GIVEN}}),
    "closed_unverified": ("closed_unverified", "access", {"expired_at": _EXPIRES}),
    "cancellation-by-staff": ("cancellation", "erasure", {"reason": GIVEN, "withdrawn": False,
                                                         "acted_in": ["crm"], "asked_in": ["billing"]}),
    "cancellation-withdrawn": ("cancellation", "erasure", {"reason": GIVEN, "withdrawn": True}),
    "restriction_lift": ("restriction_lift", "restriction", {"reason": GIVEN, "lift_on": "2026-02-23",
                                                             "notice_days": 14}),
    **{f"denial-{code}": ("denial", "erasure", {"reason_code": code, "explanation": GIVEN})
       for code in DenialReason},
    "complaint_progress": ("complaint_progress", "erasure", {"number": 3, "stage": "compliance", "late": True}),
    # The LGPD's alone (Art. 19, I), read here under the GDPR's words as the complaint's is.
    "simplified_confirmation": ("simplified_confirmation", "access", {"found": False, "unread": True, "asked": True}),
}


async def _context(purpose: str, request_type: str, params: dict[str, Any], language: str) -> dict[str, Any]:
    """The context the letter activity builds (`build_context`) for a GDPR request of a Belgian
    subject in `language`."""
    job = LetterJob(request_id=REQUEST_ID, purpose=purpose, params=params)
    # A progress letter is a complaint's (a UK one's alone: workflows/complaint_progress.py), read
    # here as the others are, under the GDPR's words.
    row = request_row("gdpr", request_type, language, details={"appeal_of": APPEAL_OF} if purpose == "complaint_progress"
                      else {})
    return await letter_context.build_context(_Ctx(LOADED), row, job, language)  # type: ignore[arg-type]


async def letter_text(case: str, language: str) -> str:
    """The letter of `case` in `language` as its reader sees it: the subject line, the plain text
    and the HTML's text."""
    purpose, request_type, params = CASES[case]
    policy, t = LOADED.in_language(language), translations(language)
    if purpose == "restriction_lift":
        # The restriction on record is read from the database (activities/restrictions.py
        # `lift_letter_context`); here it is given, worded as that function words it: every
        # ground of Art. 18(1), and a recipient told of the lift.
        context = await _context("extension", request_type, {"reason": GIVEN, "new_due_date": "2026-04-30"},
                                 language)
        context.update(params, lift_on=date.fromisoformat(params["lift_on"]), restriction={
            "since": date(2025, 11, 4),
            "grounds": [cited_label(label, "gdpr", t) for label in GROUND_LABELS.values()],
            "recipients": [policy.recipients["financial_services"].name]},
            complaint=remedies_context(policy, "gdpr", "BE", appeal=False, t=t))
    else:
        context = await _context(purpose, request_type, params, language)
    if case == "response-access-package":
        # The package's link is issued in the database (`issue_package_link`): the outcome is
        # built as `build_context` builds it, with a link given; a processor's missing copy
        # refuses in part.
        context["outcome"] = response_outcome({"results": [], "package": _PACKAGE}, policy,
                                              "https://privacy.example.test/portal/packages/tok",
                                              datetime(2026, 3, 9, 23, 59, tzinfo=UTC), t, source=LOADED.policy,
                                              regime="gdpr")
        context["remedies"] = remedies_context(policy, "gdpr", "BE", appeal=False, t=t)
    letter = render_letter(purpose, context, language)
    return "\n".join([letter.subject, *both(letter)]).replace(GIVEN, "")


def test_every_letter_a_subject_reads_is_checked():
    assert {purpose for purpose, _, _ in CASES.values()} == set(SUBJECT_PURPOSES)


@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize("case", CASES)
async def test_each_letter_uses_the_regulations_own_words(case, language):
    """Where the English letter names a concept of the GDPR or cites it, the letter in `language`
    names it as that language version of the Regulation does and cites it in that language's
    style; no rendering known to be wrong appears."""
    english, translated = await letter_text(case, "en"), await letter_text(case, language)
    assert glossary_gaps(english, translated, language) == [], f"{case} in {language}: official term missing"
    assert citation_gaps(english, translated, language) == [], f"{case} in {language}: citation not in its style"
    assert wrong_terms(translated, language) == [], f"{case} in {language}: a wrong rendering"


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_access_package_states_the_rights_in_the_regulations_words(language):
    """The package's summary gives the subject's rights and the lawful bases in the policy's own
    words, translated in policy/connexeon.<language>.yaml."""
    english, translated = summary("access", "gdpr", "en"), summary("access", "gdpr", language)
    assert glossary_gaps(english, translated, language) == [], f"summary in {language}: official term missing"
    assert citation_gaps(english, translated, language) == [], f"summary in {language}: citation not in its style"
    assert wrong_terms(translated, language) == [], f"summary in {language}: a wrong rendering"


async def test_the_glossary_check_finds_a_drifted_translation():
    """The checks above fail on a translation that drifts: an unofficial term for a concept, an
    English-style citation, a known-wrong term, English left behind."""
    english, french = await letter_text("response-erasure-kept", "en"), await letter_text("response-erasure-kept", "fr")
    assert glossary_gaps(english, french, "fr") == citation_gaps(english, french, "fr") == wrong_terms(french, "fr") == []
    drifted = french.replace("autorité de contrôle", "autorité de surveillance")
    assert glossary_gaps(english, drifted, "fr") == ["supervisory authority"]
    drifted = french.replace("art. 17, paragraphe 3, point e), du RGPD", "art. 17(3)(e) RGPD")
    assert citation_gaps(english, drifted, "fr") == ["Art. 17(3)(e) GDPR"]
    assert wrong_terms(drifted, "fr") == ["art. 17(3"]
    assert wrong_terms(french + " le responsable de traitement peut", "fr") == ["responsable de traitement"]
    german = await letter_text("denial-excessive", "de")
    # (the denial no longer says "Verantwortlicher": its sentence repeating Art. 12(5) is gone)
    assert wrong_terms(german.replace("DSGVO", "RGPD"), "de") == ["RGPD"]
    assert wrong_terms(german + " Kind regards,", "de") == ["Kind regards"]


# --- The authority after its preposition -----------------------------------------------------
# The policy names each regime's authority as the remedies heading completes it ("the Information
# Commissioner": `authority_title`, German in the dative, "dem Information Commissioner"); the
# German heading put it after "bei" ("Ihr Recht auf Beschwerde bei dem Information Commissioner",
# the summary "Sie können bei dem Attorney General von Virginia Beschwerde einlegen"), which German
# contracts ("beim"). No language may leave a preposition and article uncontracted before it.
_UNCONTRACTED = {"de": {"dem": ("bei", "von", "zu", "an", "in"), "der": ("zu",)},
                 "fr": {"le": ("de", "à"), "les": ("de", "à")}, "nl": {}}


@pytest.mark.parametrize("language", TRANSLATED)
async def test_each_authority_is_named_after_a_preposition_as_its_language_writes_it(language):
    for regime in REGIMES:
        title = LOADED.in_language(language).remedies[regime].authority_title
        article, _, rest = title.partition(" ")
        letter = await as_sent("denial", "erasure", {"reason_code": "other", "explanation": GIVEN},
                               regime=regime, language=language, country={"uk_gdpr": "GB"}.get(regime, "BE"))
        texts = [summary("access", regime, language), *both(letter)]
        if regime == "uk_gdpr":  # a late complaint's progress letter names the Commissioner in its own sentence
            texts += both(await as_sent(*CASES["complaint_progress"], regime=regime, language=language, country="GB",
                                        details={"appeal_of": APPEAL_OF}))
        for text in texts:
            assert title in text, (regime, language)
            for preposition in _UNCONTRACTED[language].get(article, ()):
                assert not re.search(rf"\b{preposition} {re.escape(title)}", text, re.IGNORECASE), (
                    regime, language, preposition)
            assert re.search(rf"\b{re.escape(article)} {re.escape(rest)}", text)


# --- One abbreviation of the reference in every subject line ---------------------------------
# German subject lines abbreviated the request's reference "Vorgangsnr." (its label in the letter
# is "Vorgangsnummer") in the request's letters and "Ref." in the appeal's and complaint's: two
# names for one reference in one subject's mailbox.
_REF = {"nl": "(ref. %(ref)s)", "fr": "(réf. %(ref)s)", "de": "(Vorgangsnr. %(ref)s)"}


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_subject_line_abbreviates_the_reference_alike(language):
    with open("dsrflow/i18n/messages.pot", "rb") as pot:
        subjects = [m.id for m in read_po(pot) if isinstance(m.id, str) and m.id.endswith("(ref. %(ref)s)")]
    assert len(subjects) >= 19
    t = translations(language)
    assert [s for s in subjects if not t.gettext(s).endswith(_REF[language])] == []


# --- PIPEDA cited one way in German and Dutch --------------------------------------------------
# German letters cite the UK's Act by "Section" (policy/connexeon.de.yaml); under PIPEDA they wrote
# "Section 8(7) des ... Act" in the refusal's rule and "PIPEDA, s. 8(4)", "ss. 8(4), 8(7) und 11(1)"
# elsewhere: two styles for one Act in one letter. Dutch cites the Act in its English form ("PIPEDA,
# s. 8(4)", tests/test_regime_citations.py) but its refusal rule said "artikel 8(7) van de ... Act".
@pytest.mark.parametrize(("language", "other_style", "cited"), [
    ("de", r"\bss?\. \d", "PIPEDA, Section 8(4)"),
    ("nl", r"\bart(ikel|\.) \d|Section", "PIPEDA, s. 8(4)"),
])
async def test_letters_cite_pipeda_one_way(language, other_style, cited):
    denial = await as_sent("denial", "erasure", {"reason_code": "other", "explanation": GIVEN},
                           regime="pipeda", language=language, country="CA")
    extension = await as_sent("extension", "erasure", {"reason": GIVEN, "new_due_date": "2026-03-31"},
                              regime="pipeda", language=language, country="CA")
    for part in [*both(denial), *both(extension)]:
        assert not re.search(other_style, part), part
    assert cited in both(extension)[0] and "8(7)" in both(denial)[0]
