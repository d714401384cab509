"""Letters as a subject receives them: the context built by the letter activity itself
(`build_context`, from a request row and the workflow's params as the workflow sends them), the
policy's translations and our catalogs, rendered by `render_letter`. Each test states what the law
requires the letter to say, in every regime and language it applies to."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

import activities.letter_refusals as letter_refusals
import activities.restrictions as restrictions
from activities.citations import answer_period, citation
from activities.letter_objection import decision_summary
from dsrflow.domain.deadlines import answer_days, compute_deadline
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date, translations, worded, wording_of
from tests.letters_as_sent import (
    APPEAL_OF,
    LANGUAGES,
    LOADED,
    REFUSED,
    REGIMES,
    REQUEST_ID,
    as_sent,
    both,
    erasure_with_kept,
    received_on,
    request_row,
)

# --- 1. An objection refused on compelling legitimate grounds (Art. 21(1), 12(4)) -------------



@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_a_refused_objection_says_processing_continues_and_why(regime, language):
    letter = await as_sent("response", "objection", REFUSED, regime=regime, language=language)
    t = worded(language, wording_of(regime))
    for part in both(letter):
        # Processing continues: the letter may not claim that nothing was found.
        assert t.gettext("We found no personal data about you in our systems.") not in part
        assert "We found no personal data" not in part
        assert t.gettext("We have now completed your request.") not in part
        # What Art. 21(1) allows, that it applies, and compliance's reasons as they gave them.
        decided = decision_summary(REFUSED["decision"], regime, t)
        assert " ".join(decided.split()) in part
        assert "Fraud monitoring of this account is required by our acquirer." in part
        # The remedies of Art. 12(4): a complaint to the authority and a judicial remedy.
        remedies = LOADED.in_language(language).remedies_for(regime, "BE")
        assert " ".join(remedies.authority.name.split()) in part
        assert " ".join(remedies.judicial.split())[:60] in part
        # Nothing of what was asked was done: the remedies' lead said "not everything you asked".
        assert " ".join(t.gettext("We have not acted on your objection, for the reasons given above.").split()) in part
        assert " ".join(t.gettext("We have not done everything you asked, for the reasons given above.").split()) \
            not in part
    if language == "en":
        said = both(letter)[0]
        assert "compelling legitimate grounds" in said and "interests, rights and freedoms" in said
        assert "establishment, exercise or defence of legal claims" in said
        assert "the processing continues" in said


# --- 2. What an erasure kept, in the letter's language (Art. 17(3), 12(1)) --------------------



@pytest.mark.parametrize("language", ["nl", "fr", "de"])
@pytest.mark.parametrize("regime", REGIMES)
async def test_kept_records_give_their_legal_basis_and_law_in_the_letters_language(regime, language):
    letter = await as_sent("response", "erasure", erasure_with_kept(), regime=regime, language=language)
    english = LOADED.policy.statutory_holds["be_accounting"]
    translated = LOADED.in_language(language).statutory_holds["be_accounting"]
    t = worded(language, wording_of(regime))
    # The statute's basis as the policy words it cites the GDPR: under another regime, ours.
    cited = citation(regime, "17(3)(b)", t)
    basis = (translated.basis if regime == "gdpr" else
             t.gettext("%(citation)s: compliance with a legal obligation") % {"citation": cited} if cited else
             t.gettext("compliance with a legal obligation"))
    if regime == "uk_gdpr":  # Belgian law is no legal obligation under it (tests/test_letter_foreign_law.py)
        basis = t.gettext("%(citation)s: our legitimate interests in complying with %(law)s") % {
            "citation": citation(regime, "6(1)(f)", t), "law": translated.foreign_law}
    for part in both(letter):
        assert " ".join(basis.split()) in part
        assert " ".join(translated.law.split()) in part
        assert english.basis not in part and english.law not in part
        # The legal-claims hold: neither its default basis nor the text of its law in English.
        assert "Art. 17(3)(e) GDPR" not in part
        assert "establishment, exercise or defence" not in part and "a legal claim" not in part


async def test_kept_records_read_as_stored_in_english():
    letter = await as_sent("response", "erasure", erasure_with_kept())
    english = LOADED.policy.statutory_holds["be_accounting"]
    for part in both(letter):
        assert english.basis in part and english.law in part
        assert "Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims" in part


# --- 3. A legal-claims hold is reviewed, not kept until a date (Art. 17(3)(e), 5(1)(a)) -------

@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_legal_claims_hold_gives_its_review_date_as_such(language):
    letter = await as_sent("response", "erasure", erasure_with_kept(), language=language)
    t = translations(language)
    review, end = long_date(date(2026, 6, 30), language), long_date(date(2033, 12, 31), language)
    for part in both(letter):
        assert f"{t.gettext('Next review by')}: {review}".replace(" :", ":") in part.replace(" :", ":")
        assert f"{t.gettext('Kept until')}: {end}".replace(" :", ":") in part.replace(" :", ":")
        assert f"{t.gettext('Kept until')}: {review}".replace(" :", ":") not in part.replace(" :", ":")
    if language == "en":
        said = both(letter)[0]
        assert "we will erase it when the period below ends" not in said
        assert "erased when its period, given below, ends" in said
        assert "as soon as the claims no longer require it" in said


async def test_a_hold_without_a_date_shows_none():
    """A legal-claims hold whose review date the evidence does not have (a hold since deleted)."""
    report = erasure_with_kept()
    for result in report["report"]["results"]:
        for kept in result["kept_records"]:
            if kept["hold_kind"] == "legal_claims":
                kept["until"] = None
    letter = await as_sent("response", "erasure", report)
    for part in both(letter):
        assert part.count("Kept until") == 1 and "Next review by" not in part


# --- 4. The appeal names the reference the subject was given (VCDPA, CTDPA, CPA) --------------



@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["vcdpa", "ctdpa", "cpa"])
async def test_the_appeal_quotes_the_short_reference(regime, language):
    denial = await as_sent("denial", "erasure", {"reason_code": "other", "explanation": "Records needed for a claim."},
                           regime=regime, language=language)
    appeal = await as_sent("response", "erasure", {"report": {"results": [
        {"system": "crm", "action": "erase", "status": "done", "found": 1, "changed": 1}]}},
        regime=regime, language=language, details={"appeal_of": APPEAL_OF})
    appeal_denied = await as_sent("denial", "erasure", {"reason_code": "other", "explanation": "Still needed."},
                                  regime=regime, language=language, details={"appeal_of": APPEAL_OF})
    t = worded(language, wording_of(regime))
    for part in both(denial):
        assert t.gettext("Your right to appeal") in part
        assert short_reference(REQUEST_ID) in part and REQUEST_ID not in part
    # The decision on an appeal says it is one, and which decision it reviewed (Va. Code § 59.1-577(C),
    # Conn. Gen. Stat. § 42-518(d), C.R.S. § 6-1-1306(3)); before, it read as a first answer.
    ref = short_reference(APPEAL_OF)
    decided = t.gettext("This is our decision on your appeal of our decision on request %(id)s: we have "
                        "reconsidered that decision, and what we have now done is set out below.") % {"id": ref}
    rule = LOADED.in_language(language).remedies_for(regime, "US").refusal_rule
    denied = " ".join((t.gettext("We have carefully considered your appeal of our decision on request %(id)s and "
                                 "have decided to deny it: we maintain that decision.") % {"id": ref},
                       t.gettext("As %(rule)s requires, we set out below our reasons and the remedies available "
                                 "to you.") % {"rule": rule}))
    for letter, said in ((appeal, decided), (appeal_denied, denied)):
        for part in both(letter):
            assert " ".join(said.split()) in part
            assert short_reference(APPEAL_OF) in part and APPEAL_OF not in part
            assert REQUEST_ID not in part
            assert t.gettext("Your right to appeal") not in part
    # The complaint to the Attorney General: "if we deny your appeal" while one may still come; the
    # letter deciding it speaks of the decision made (the statute's "if the appeal is denied").
    remedies = LOADED.in_language(language).remedies_for(regime, "US")
    assert remedies.appeal is not None and remedies.appeal.complaint_after_appeal
    before, after = " ".join(remedies.complaint.split()), " ".join(remedies.appeal.complaint_after_appeal.split())
    for part in both(denial):
        assert before in part and after not in part
    for part in both(appeal_denied):
        assert after in part and before not in part


# --- 5. The extension notice is promised by the day the workflow accepts it (Art. 12(3)) ------
# The workflow accepts an extension until the end of the first due date (workflows/dsr.py,
# `_validate_extend`: refused from `overdue_at`), so the letters promise it by that date at the latest.

_BY_DUE = ("Where necessary, taking into account the complexity and number of requests, this period can be "
           "extended by two further months (Art. 12(3) %(law)s). If we need to do this, we will tell you, with "
           "our reasons, by %(date)s at the latest.")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_the_acknowledgement_promises_an_extension_notice_by_the_due_date(regime, language):
    letter = await as_sent("acknowledgement", "erasure", {"verification_required": False},
                           regime=regime, language=language)
    t = worded(language, wording_of(regime))
    due = long_date(request_row(regime, "erasure", language)["current_due_date"], language)
    if regime in ("gdpr", "uk_gdpr"):
        law = t.gettext("UK GDPR" if regime == "uk_gdpr" else "GDPR")
        promise = t.gettext(_BY_DUE) % {"law": law, "date": due}
    elif regime == "lgpd":
        # No extension is promised: the LGPD's 15 days are access's (Art. 19 II), which dsrflow applies
        # to every request and does not extend (tests/test_dpo_recourse.py words an access request's).
        promise = t.gettext("We apply to every request the period the LGPD sets for access to personal data, "
                            "15 days from receipt (Art. 19, II LGPD), and do not extend it.")
    else:
        # The law's own period and its one extension, in days (Cal. Civ. Code § 1798.130(a)(2), Va. Code
        # § 59.1-577, Conn. Gen. Stat. § 42-518, C.R.S. § 6-1-1306(2), PIPEDA ss. 8(3)-(4)), as many as
        # the deadline module counts; before, only "if the law that applies to your request allows it".
        row = request_row(regime, "erasure", language)
        # The days themselves: a PIPEDA date counted from 30 January falls on a Sunday and moves.
        days, further = answer_days(regime)
        period, promise = answer_period(regime, False, due, long_date(row["extended_due_date"], language), t)
        assert (days, further) == ((30, 30) if regime == "pipeda" else (45, 45))
        assert f" {days} " in period and f" {further} " in promise
        assert long_date(row["extended_due_date"], language) in promise
    for part in both(letter):
        assert " ".join(promise.split()) in part
        assert f"before {due}" not in part and "before that date" not in part
        if regime == "lgpd":
            assert t.gettext("The LGPD asks us to act on your request at once where we can and, where we cannot, "
                             "to tell you what prevents it (Art. 18, §§ 3 and 4 LGPD).") in part
            assert due in part
        elif regime not in ("gdpr", "uk_gdpr"):
            assert " ".join(period.split()) in part


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("regime", "appeal"), [("gdpr", False), ("vcdpa", True), ("uk_gdpr", True)],
                         ids=["request", "appeal", "complaint"])
async def test_the_acknowledgement_gives_the_day_received_once(regime, appeal, language):
    """Its "Received on" line gives the day; the thanks below it said "We received it on" that day
    again (en/fr/nl/de)."""
    row = {"details": {"appeal_of": APPEAL_OF}, "country": "GB" if regime == "uk_gdpr" else "US"} if appeal else {}
    letter = await as_sent("acknowledgement", "erasure", {"verification_required": False}, regime=regime,
                           language=language, **row)
    t = worded(language, wording_of(regime))
    received = long_date(received_on(regime), language)  # 30 January in Virginia and London
    for part in both(letter):
        assert part.count(received) == 1, part
        assert t.gettext("Received on") in part
    assert "We received it on" not in letter.text and "We received it on" not in letter.html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("regime", "days", "further"), [("vcdpa", 60, 0), ("ctdpa", 60, 0), ("cpa", 45, 60)])
async def test_an_appeal_is_acknowledged_with_the_days_the_law_gives_to_decide_it(regime, days, further, language):
    """Va. Code § 59.1-577(C), Conn. Gen. Stat. § 42-518(d): a decision on the appeal within 60 days,
    not extended; C.R.S. § 6-1-1306(3)(b): 45 days, extendable by 60. Before, an appeal's
    acknowledgement gave the request's 45 days and "if the law allows it" of an extension."""
    deadline = compute_deadline(regime, date(2026, 1, 31), appeal=True)
    letter = await as_sent("acknowledgement", "erasure", {"verification_required": False}, regime=regime,
                           language=language, details={"appeal_of": APPEAL_OF}, due_date=deadline.due_date,
                           current_due_date=deadline.due_date, extended_due_date=deadline.extended_due_date)
    t = worded(language, wording_of(regime))
    assert ((deadline.due_date - date(2026, 1, 31)).days, (deadline.extended_due_date - deadline.due_date).days) \
        == (days, further)
    due, extended = long_date(deadline.due_date, language), long_date(deadline.extended_due_date, language)
    period, extension = answer_period(regime, True, due, extended, t)
    assert f" {days} " in period and (f" {further} " in extension if further else
                                      extension == t.gettext("The law allows no extension of this period."))
    for part in both(letter):
        assert " ".join(period.split()) in part and " ".join(extension.split()) in part
        assert short_reference(APPEAL_OF) in part


@pytest.mark.parametrize("regime", ["gdpr", "uk_gdpr"])
async def test_the_staff_alert_gives_the_same_last_day_for_an_extension(regime):
    """Staff read their alerts in the controller's working language (English by default)."""
    letter = await as_sent("staff_alert", "erasure", {"kind": "due_in_7_days", "days_left": 7, "detail": "d"},
                           regime=regime)
    due = long_date(request_row(regime, "erasure", "en")["due_date"])
    law = "UK GDPR" if regime == "uk_gdpr" else "GDPR"
    for part in both(letter):
        assert f"notifying the data subject, with reasons, by {due} at the latest (Art. 12(3) {law})" in part
        assert f"before {due}" not in part


@pytest.mark.parametrize(("regime", "name"), [("gdpr", "GDPR"), ("uk_gdpr", "UK GDPR"), ("ccpa", "CCPA (California)"),
                                              ("lgpd", "LGPD (Brazil)")])
async def test_the_staff_alert_names_the_regimes_law(regime, name):
    """It gave the regime's code ("Regime: ccpa"), where the console names the law."""
    letter = await as_sent("staff_alert", "erasure", {"kind": "needs_attention", "days_left": 7, "detail": "d"},
                           regime=regime)
    text, page = both(letter)
    assert f"Regime: {name} Received on" in text and f"Regime {name} Received on" in page


# The subject's possessive, which an alert to staff has no one to say it of.
_YOUR = {"en": r"\byour\b", "nl": r"\buw\b", "fr": r"\b(?:vos|votre)\b", "de": r"\bIhre[mnrs]?\b"}
_STAFF_TYPES = {"gdpr": ("access (Art. 15 GDPR)", "erasure (Art. 17 GDPR)"),
                "uk_gdpr": ("access (Art. 15 UK GDPR)", "erasure (Art. 17 UK GDPR)")}


@pytest.mark.parametrize("regime", REGIMES)
async def test_the_staff_alert_names_the_type_as_staff_read_it(regime):
    """Its "Type" is the request type's plain name, the law's word for an erasure ("deletion" but
    under the GDPR and the UK GDPR, whose article it cites), in every language, in the text and
    the HTML. It named the type in the subject's words: "Type: deletion of your personal data"
    under the US state laws, "access to your personal data (Art. 15 GDPR)"."""
    for language in LANGUAGES:
        t = translations(language)
        for kind in ("access", "portability", "erasure", "rectification", "restriction", "objection"):
            letter = await as_sent("staff_alert", kind, {"kind": "needs_attention", "days_left": 7, "detail": "d"},
                                   regime=regime, language=language)
            text, page = both(letter)
            label = re.search(rf"{t.gettext('Type')}\s?: (.*?) {t.gettext('Regime')}", text)
            assert label and f"{t.gettext('Type')} {label[1]} {t.gettext('Regime')}" in page, (kind, language)
            assert not re.search(_YOUR[language], label[1], re.IGNORECASE), (kind, language, label[1])
            if language == "en" and kind in ("access", "erasure"):
                access, erasure = _STAFF_TYPES.get(regime, ("access", "deletion"))
                assert label[1] == (access if kind == "access" else erasure), regime


# --- 6. The restriction's dates are the controller's (Europe/Brussels), near midnight too -----

@pytest.mark.parametrize(("since", "effective", "utc_lift_on", "local_since", "local_lift_on", "days"), [
    # Winter (UTC+1): 23:30 UTC is already the next day in Brussels.
    (datetime(2025, 11, 4, 23, 30, tzinfo=UTC), datetime(2026, 2, 9, 23, 30, tzinfo=UTC), "2026-02-09",
     date(2025, 11, 5), date(2026, 2, 10), 0),
    # Summer (UTC+2), with a notice period: 22:30 UTC is 00:30 the next day.
    (datetime(2025, 6, 30, 22, 30, tzinfo=UTC), datetime(2026, 7, 14, 22, 30, tzinfo=UTC), "2026-07-14",
     date(2025, 7, 1), date(2026, 7, 15), 14),
    # Just before midnight in Brussels: the same day in both.
    (datetime(2025, 11, 4, 22, 59, tzinfo=UTC), datetime(2026, 2, 9, 22, 59, tzinfo=UTC), "2026-02-09",
     date(2025, 11, 4), date(2026, 2, 9), 0),
])
@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_restriction_lift_letter_gives_controller_local_dates(
        monkeypatch, language, since, effective, utc_lift_on, local_since, local_lift_on, days):
    async def restriction_as_told(pool: object, request_id: str, notice_days: int) -> dict[str, Any]:
        return {"since": since, "lift_effective_on": effective, "grounds": ["needed_for_legal_claims"],
                "systems": ["crm", "billing"], "held": {}, "held_in_force": []}

    monkeypatch.setattr(restrictions, "restriction_as_told", restriction_as_told)
    # The workflow's `lift_on` is its clock's (UTC) date (workflows/restriction_lifecycle.py).
    letter = await as_sent("restriction_lift", "restriction",
                           {"reason": "The court case was settled.", "lift_on": utc_lift_on, "notice_days": days},
                           language=language)
    t = translations(language)
    said_since = t.gettext("Since %(since)s, we have only stored your personal data and have not otherwise "
                           "used it, because %(grounds)s.") % {"since": long_date(local_since, language),
                                                              "grounds": "X"}
    for part in both(letter):
        assert said_since.split("X")[0] in part
        assert long_date(local_lift_on, language) in part
        if local_lift_on != date.fromisoformat(utc_lift_on):
            assert long_date(date.fromisoformat(utc_lift_on), language) not in part
    if days:
        assert long_date(local_lift_on, language) in letter.subject


@pytest.mark.parametrize("regime", REGIMES)
async def test_the_restriction_lift_letter_names_the_regimes_authority_and_courts(monkeypatch, regime):
    """Lifting a restriction is a decision the subject may take to the authority or the courts:
    the letter names them as its regime does (before, one sentence promised "a supervisory
    authority" and "the courts" under every law, naming none, and a private suit under laws that
    give none)."""
    async def restriction_as_told(pool: object, request_id: str, notice_days: int) -> dict[str, Any]:
        return {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "lift_effective_on": None,
                "grounds": ["needed_for_legal_claims"], "systems": ["crm"], "held": {}, "held_in_force": []}

    monkeypatch.setattr(restrictions, "restriction_as_told", restriction_as_told)
    letter = await as_sent("restriction_lift", "restriction",
                           {"reason": "The court case was settled.", "lift_on": "2026-02-09", "notice_days": 14},
                           regime=regime)
    remedies = letter_refusals.remedies_context(LOADED.policy, regime, request_row(regime, "restriction", "en")["country"],
                                        appeal=True)
    for part in both(letter):
        assert remedies["authority"]["name"] in part and " ".join(remedies["judicial"].split()) in part
        assert "seek a judicial remedy before the courts" not in part
