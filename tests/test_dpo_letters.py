"""Letters read as a data protection officer reads them: what the law requires a letter to say
that tests/test_letter_*.py do not already check. Each letter is built and rendered as the letter
activity does (tests/letters_as_sent.py), in every regime and language it applies to."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

import activities.letter_context as letter_context
import activities.letter_outcome as letter_outcome
import activities.restrictions as restrictions
from activities.citations import cite
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date, translations, worded, wording_of
from tests.letters_as_sent import APPEAL_OF, LANGUAGES, LOADED, REGIMES, REQUEST_ID, as_sent, both, request_row
from tests.test_letter_citations import _every_letter

LINK = "https://privacy.example.test/portal/packages/TOKEN"
_CRM = {"system": "crm", "status": "done", "found": 2, "changed": 0, "datasets": {"contacts": {"found": 2}}}


def _package(request_type: str, *, missing: bool = False) -> dict[str, Any]:
    """The workflow's params of an access or portability response with its package."""
    package: dict[str, Any] = {"package_id": "p1", "systems": {"crm": 2, "billing": 3}}
    if missing:
        package.update(processor_files={"surveys": 1}, missing={"work_management": "not_provided"})
    return {"report": {"results": [{**_CRM, "action": "access"}], "package": package}}


@pytest.fixture
def package_link(monkeypatch):
    """The package's link without a database (`issue_package_link` stores the token's hash)."""
    async def issue(ctx: object, package_id: str, days: int) -> tuple[str, datetime]:
        return LINK, datetime(2026, 3, 9, 23, 59, tzinfo=UTC)
    monkeypatch.setattr(letter_context, "issue_package_link", issue)


def said(text: str) -> str:
    return " ".join(text.split())


# --- Restriction (Art. 18(2) and (3)) --------------------------------------------------------
# The response to a restriction must tell the subject what the restriction means (the data is
# only stored, and used otherwise only on the grounds of Art. 18(2)) and that they will be told
# before it is lifted (Art. 18(3)): the product keeps that promise (the restriction_lift letter).

_RESTRICTED = ("While the restriction is in force, we only store your personal data: we process it in any "
               "other way only with your consent, for the establishment, exercise or defence of legal claims, "
               "for the protection of the rights of another person or for reasons of important public "
               "interest%(storage)s. We will tell you before we lift the restriction%(notice)s.")
# Art. 18(2)'s public interest is the Union's or a Member State's (the UK GDPR's: the United Kingdom's).
_RESTRICTED_UNDER = {
    "gdpr": _RESTRICTED.replace("interest%(storage)s", "interest of the Union or of a Member State%(storage)s"),
    "uk_gdpr": _RESTRICTED.replace("interest%(storage)s", "interest of the United Kingdom%(storage)s")}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_a_restriction_response_says_what_the_restriction_means_and_that_its_lifting_is_announced(
        regime, language):
    letter = await as_sent("response", "restriction", {"report": {"results": [{**_CRM, "action": "restrict",
                                                                               "changed": 2}]}},
                           regime=regime, language=language)
    t = worded(language, wording_of(regime))
    restricted = _RESTRICTED_UNDER.get(regime, _RESTRICTED)
    sentence = t.gettext(restricted) % {"storage": cite(regime, "18(2)", " (%s)", t),
                                        "notice": cite(regime, "18(3)", " (%s)", t)}
    if language != "en":
        assert sentence != restricted % {"storage": "", "notice": ""}, "not translated"
    for part in both(letter):
        assert said(sentence) in part, (regime, language)
    assert "\n\n" + sentence[:40] in letter.text  # a paragraph of its own
    if regime == "gdpr" and language == "en":
        assert ("interest of the Union or of a Member State (Art. 18(2) GDPR). We will tell you before we lift the "
                "restriction (Art. 18(3) GDPR).") in both(letter)[0]


# --- Portability (Art. 20) -------------------------------------------------------------------
# A portable copy holds what the subject provided and what was observed, never what we derived
# or inferred (activities/packages.py, `PORTABLE_ORIGINS`), in a structured, commonly used and
# machine-readable format; the subject may have it sent to another controller (Art. 20(2)). The
# letter said the download held "your personal data for each of our systems and data categories".

_PORTABLE = ("The download contains the personal data you provided to us and the data we observed from your "
             "use of our services, in a structured, commonly used and machine-readable format (JSON and "
             "CSV)%(citation)s, so that you can reuse it with another organisation. What we derived or inferred "
             "about you is not part of it; an access request gives you that too. The download also holds a "
             "readable summary of how we process your data.")
_PORTABLE_MISSING = ("The download contains the personal data you provided to us and the data we observed from "
                     "your use of our services, as far as we could gather it, and any files our processors sent "
                     "us, in a structured, commonly used and machine-readable format (JSON and CSV)%(citation)s, "
                     "so that you can reuse it with another organisation. What we derived or inferred about you "
                     "is not part of it; an access request gives you that too. The download also holds a "
                     "readable summary of how we process your data.")
_TRANSMIT = ("If you would like us to transmit this data directly to another organisation, tell us at %(email)s "
             "which one: we will do so where it is technically feasible%(citation)s.")


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "missing"])
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_a_portability_response_describes_the_portable_copy_and_direct_transmission(
        package_link, regime, language, missing):
    letter = await as_sent("response", "portability", _package("portability", missing=missing),
                           regime=regime, language=language)
    t = worded(language, wording_of(regime))
    contents = t.gettext(_PORTABLE_MISSING if missing else _PORTABLE) % {"citation": cite(regime, "20(1)", " (%s)", t)}
    transmit = t.gettext(_TRANSMIT) % {"email": "privacy@onetagger.com", "citation": cite(regime, "20(2)", " (%s)", t)}
    if language != "en":
        assert t.gettext(_TRANSMIT) != _TRANSMIT, "not translated"
    for part in both(letter):
        assert said(contents) in part and said(transmit) in part, (regime, language)
        assert LINK in part
    if language == "en":
        text = both(letter)[0]
        assert "for each of our systems" not in text and "the personal data we could gather for you" not in text
        if regime == "gdpr":
            assert "machine-readable format (JSON and CSV) (Art. 20(1) GDPR)" in text
            assert "technically feasible (Art. 20(2) GDPR)." in text


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_access_response_still_describes_the_whole_copy(package_link, language):
    """Access keeps its own description (every record, derived ones too), and no portability offer."""
    letter = await as_sent("response", "access", _package("access"), language=language)
    t = translations(language)
    for part in both(letter):
        assert said(t.gettext(_TRANSMIT) % {"email": "privacy@onetagger.com",
                                             "citation": cite("gdpr", "20(2)", " (%s)", t)}) not in part
    if language == "en":
        assert "for each of our systems and data categories" in both(letter)[0]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_access_response_says_a_system_or_processor_held_nothing_instead_of_an_empty_copy(
        package_link, language):
    """A system that held nothing, and a processor that answered that it holds nothing, read
    "copy of your data: included in your package (0 files)": something included where nothing
    was. They now say what was found, or what the processor told us (a new user's tour found it)."""
    params = {"report": {"results": [{**_CRM, "action": "access"}], "package": {
        "package_id": "p1", "systems": {"crm": 2, "analytics": 0}, "processor_files": {"surveys": 0}}}}
    letter = await as_sent("response", "access", params, language=language)
    t = translations(language)
    for part in both(letter):
        text = said(part)
        assert said(t.gettext(letter_outcome._NOTHING_FOUND)) in text
        assert said(t.gettext(letter_outcome._PROCESSOR_HOLDS_NOTHING)) in text
        assert text.count(said(t.gettext(letter_outcome._INCLUDED))) == 1  # the CRM's copy alone


# --- Access (Art. 15(1)(f) and (h), 15(2)) ----------------------------------------------------
# The letter says what the package's summary tells the subject; the summary also states whether
# automated decisions and profiling concern them and where they may complain
# (activities/templates/package/summary.html.j2), which the letter left out; and where each
# recipient is and the safeguards for transfers to other countries (Art. 15(2): its "Location and
# safeguards"), which the letter left out too.

_SUMMARY_OF_ACCESS = ("a readable summary of how we process it: the purposes, legal bases, recipients (where they "
                      "are, and the safeguards for transfers of your data to other countries), retention periods, "
                      "where the data comes from, whether we take automated decisions about you or profile you, your "
                      "rights and where you can complain.")

_ACCESS = ("The download contains your personal data for each of our systems and data categories, in JSON and "
           "CSV format, and " + _SUMMARY_OF_ACCESS)
_ACCESS_MISSING = ("The download contains the personal data we could gather for you, as JSON and CSV files and any "
                   "files our processors sent us, and " + _SUMMARY_OF_ACCESS)


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "missing"])
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_an_access_response_names_what_the_summary_tells(package_link, regime, language, missing):
    letter = await as_sent("response", "access", _package("access", missing=missing), regime=regime,
                           language=language)
    t = worded(language, wording_of(regime))
    paragraph = t.gettext(_ACCESS_MISSING if missing else _ACCESS)
    if language != "en":
        assert paragraph not in (_ACCESS, _ACCESS_MISSING), "not translated"
    for part in both(letter):
        assert said(paragraph) in part, (regime, language)
    if language == "en":
        assert _SUMMARY_OF_ACCESS in both(letter)[0]


# --- Every letter, every regime, every language: how it reads ---------------------------------

async def _every_rendered(monkeypatch, regime: str, language: str):
    async def restriction_as_told(pool: object, request_id: str, notice_days: int) -> dict[str, Any]:
        return {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "lift_effective_on": None,
                "grounds": list(restrictions.GROUND_LABELS), "systems": ["crm", "billing"], "held": {}, "held_in_force": []}

    monkeypatch.setattr(restrictions, "restriction_as_told", restriction_as_told)
    cases = {**_every_letter(),
             "response-access-package-missing": ("response", "access", _package("access", missing=True), {}),
             "response-portability-package": ("response", "portability", _package("portability"), {}),
             "restriction_lift-now": ("restriction_lift", "restriction",
                                      {"reason": "Settled.", "lift_on": "2026-02-09", "notice_days": 0}, {})}
    for case, (purpose, request_type, params, row) in cases.items():
        yield case, await as_sent(purpose, request_type, params, regime=regime, language=language, **row)


_HEADING_RULE = re.compile(r"^-{3,}$")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_every_heading_of_a_text_letter_stands_apart(monkeypatch, package_link, regime, language):
    """A heading (a line underlined with dashes) follows an empty line: the restriction-lift
    letter ran its rights paragraph into the heading of the right to complain."""
    async for case, letter in _every_rendered(monkeypatch, regime, language):
        lines = letter.text.split("\n")
        for i, line in enumerate(lines):
            if _HEADING_RULE.match(line) and i >= 2:
                assert lines[i - 2] == "", (case, regime, language, lines[i - 2], lines[i - 1])


@pytest.mark.parametrize("regime", REGIMES)
async def test_french_letters_set_a_space_before_the_colon_of_what_a_download_lacks(package_link, regime):
    """French typography, as the letters' labels already have it ("Site web : ..."): the line
    naming a processor whose export is missing read "Prestataire ...: ce sous-traitant ..."."""
    letter = await as_sent("response", "access", _package("access", missing=True), regime=regime, language="fr")
    system = LOADED.in_language("fr").systems["work_management"].label
    # The CCPA's and PIPEDA's service provider (tests/test_letter_wording.py `PROCESSOR_TERMS`).
    holder = "ce fournisseur de services" if regime in ("ccpa", "pipeda") else "ce sous-traitant"
    for part in both(letter):
        assert f"{system} : {holder}" in part and f"{system}:" not in part, (regime, part)


# --- Staff alerts: the last day to extend, under every law that allows an extension ------------
# The CCPA (Cal. Civ. Code § 1798.130(a)(2)), the VCDPA, CTDPA and CPA ("within the initial 45-day
# response period") and PIPEDA (s. 8(4)) allow an extension only if the subject is told within the
# first period, as the GDPR does; the workflow refuses a later one (workflows/dsr.py,
# `_validate_extend`). The alert told staff so under the GDPR and the UK GDPR only.

_EXTEND_BY = ("If more time is needed, the deadline can be extended to %(extended)s only by notifying the data "
              "subject, with reasons, by %(date)s at the latest.")


@pytest.mark.parametrize("regime", REGIMES)
async def test_a_deadline_warning_gives_the_last_day_to_extend_where_the_law_allows_it(regime):
    letter = await as_sent("staff_alert", "erasure", {"kind": "due_in_7_days", "days_left": 7, "detail": "d"},
                           regime=regime)
    row = request_row(regime, "erasure", "en")
    extended, due = long_date(row["extended_due_date"]), long_date(row["due_date"])
    said_gdpr = f"by {due} at the latest (Art. 12(3) "
    for part in both(letter):
        if regime in ("gdpr", "uk_gdpr"):
            assert said_gdpr in part
        elif row["extended_due_date"] != row["due_date"]:
            assert _EXTEND_BY % {"extended": extended, "date": due} in part, regime
        else:  # LGPD allows none: the alert offers none
            assert "can be extended" not in part, regime
    extended_already = await as_sent("staff_alert", "erasure", {"kind": "due_in_7_days", "days_left": 7,
                                                                 "detail": "d"}, regime=regime,
                                     current_due_date=row["extended_due_date"])
    assert "can be extended" not in extended_already.text


# --- A restriction lifted without notice (Art. 18(3)) -------------------------------------------
# Without `restriction.lift_notice_days` the letter goes out just before the systems lift the
# restriction ("The restriction ends today, now that this letter is on its way to you"), yet it
# opened with "We are going to lift that restriction, and ... we are telling you before it ends".

_BEFORE_IT_ENDS = ("At your request, we restricted the processing of your personal data. We are going to lift "
                   "that restriction, and as Article 18(3) of the %(law)s requires, we are telling you before it ends.",
                   "At your request, we restricted the processing of your personal data. We are going to lift "
                   "that restriction, and we are telling you before it ends.")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_lift_without_notice_does_not_say_the_restriction_ends_later(monkeypatch, language):
    async def restriction_as_told(pool: object, request_id: str, notice_days: int) -> dict[str, Any]:
        return {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "lift_effective_on": None,
                "grounds": ["needed_for_legal_claims"], "systems": ["crm"], "held": {}, "held_in_force": []}

    monkeypatch.setattr(restrictions, "restriction_as_told", restriction_as_told)
    t = translations(language)
    for regime, law in (("gdpr", "GDPR"), ("uk_gdpr", "UK GDPR"), ("vcdpa", None)):
        told = " ".join(t.gettext(_BEFORE_IT_ENDS[law is None]).split()) % {"law": t.gettext(law or "")}
        for days in (14, 0):
            letter = await as_sent("restriction_lift", "restriction",
                                   {"reason": "Settled.", "lift_on": "2026-02-09", "notice_days": days},
                                   regime=regime, language=language)
            for part in both(letter):
                assert (told in part) == bool(days), (regime, language, days)
                if language == "en" and not days:
                    assert "We are lifting that restriction today" in part, regime


# --- A denial cites its ground's article once -------------------------------------------------
# "This is because the request is manifestly excessive, ... (Art. 12(5) GDPR)." was followed, after
# the explanation, by "Art. 12(5) GDPR allows a controller to refuse to act on a request that is
# manifestly excessive, ...": the same ground and article twice; an unidentified subject's denial
# cited Art. 11(2) and 12(2) in its reason and again in the sentence after it.

@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["gdpr", "uk_gdpr"])
async def test_a_denial_cites_its_grounds_article_once(regime, language):
    grounds = {"excessive": "12(5)", "manifestly_unfounded": "12(5)", "identity_not_established": "11(2) and 12(2)"}
    for code, articles in grounds.items():
        letter = await as_sent("denial", "access", {"reason_code": code, "explanation": "Fifth."},
                               regime=regime, language=language)
        for part in both(letter):
            assert part.count(cite(regime, articles, t=translations(language))) == 1, (code, regime, language)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["gdpr", "pipeda"])
async def test_a_denial_on_other_grounds_gives_its_explanation_as_the_reason(regime, language):
    """Under "Our reasons", a refusal on other grounds (PIPEDA's and the LGPD's only kind) said
    "This is because of the reasons explained below." and then the explanation: the reason is the
    explanation, given alone. A ground the law names still opens with it."""
    t = worded(language, wording_of(regime))
    explanation = "The records are held for a pending court case."
    other = await as_sent("denial", "access", {"reason_code": "other", "explanation": explanation},
                          regime=regime, language=language)
    for part in both(other):
        reasons = part.split(t.gettext("Our reasons"), 1)[1]
        assert reasons.lstrip(" -").startswith(explanation), reasons[:200]
        assert "This is because" not in part
    if regime == "gdpr":
        excessive = await as_sent("denial", "access", {"reason_code": "excessive", "explanation": explanation},
                                  regime=regime, language=language)
        for part in both(excessive):
            assert t.gettext("This is because %(reason)s.").split("%(reason)s")[0].strip() in part


# --- An appeal's or a complaint's own reference -------------------------------------------------
# Its letters name the refused request beside it ("Complaint about: request ..."), and called their
# own reference "Request reference", "quoting your request reference" and "Your request reference":
# the subject could quote either.

@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_appeal_or_complaint_letter_names_its_reference_as_its_own(package_link, language):
    t = translations(language)
    ref = short_reference(REQUEST_ID)
    # A complaint upheld with data left out of its copy: "ask us for this data again, quoting ...".
    upheld = await as_sent("response", "access", _package("access", missing=True), regime="uk_gdpr",
                           language=language, country="GB", details={"appeal_of": APPEAL_OF})
    again = t.gettext("You can ask us for this data again at %(email)s, quoting the reference %(id)s.")
    assert " ".join((again % {"email": "privacy@onetagger.com", "id": ref}).split()) in both(upheld)[0]
    for regime, kind in (("vcdpa", "appeal"), ("uk_gdpr", "complaint")):
        letter = await as_sent("closed_unverified", "erasure", {"expired_at": "2026-02-07T10:00:00+00:00"},
                               regime=regime, language=language, details={"appeal_of": APPEAL_OF})
        for part in both(letter):
            for label in (f"{kind.title()} reference", f"Your {kind} reference"):
                assert t.gettext(label) in part, (regime, language, label)
            if language != "de":  # German's "Vorgangsnummer" names no request
                assert t.gettext("Request reference") not in part, (regime, language)
                assert t.gettext("Your request reference") not in part, (regime, language)
        if language == "en":
            assert f"quoting your {kind} reference {ref}." in both(letter)[0], regime
