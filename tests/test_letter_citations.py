"""The law each letter cites: the law of its request's regime, never another, in every language;
and every letter and path a subject can receive, rendered under every regime (tests/letters_as_sent.py
builds them as the letter activity does)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import activities.restrictions as restrictions
from activities.citations import cited_label
from activities.letter_labels import LETTER_DENIAL_LABELS, LETTER_TYPE_LABELS
from dsrflow.i18n import worded, wording_of
from schemas.requests import DenialReason
from tests.letters_as_sent import (
    APPEAL_OF,
    LANGUAGES,
    REFUSED,
    REGIMES,
    as_sent,
    both,
    erasure_with_kept,
)

# --- 7. A letter cites the law of its regime, never another (the request and denial labels) --

_GDPR_NAMES = ("GDPR", "AVG", "RGPD", "DSGVO")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_the_request_and_denial_labels_cite_only_the_regimes_law(regime, language):
    t = worded(language, wording_of(regime))
    ack = await as_sent("acknowledgement", "access", {"verification_required": False}, regime=regime, language=language)
    denial = await as_sent("denial", "access", {"reason_code": "excessive", "explanation": "Fifth identical request."},
                           regime=regime, language=language)
    label = cited_label(LETTER_TYPE_LABELS["access"], regime, t)
    reason = cited_label(LETTER_DENIAL_LABELS["excessive"], regime, t)
    assert label in ack.text and reason in denial.text
    if regime == "gdpr":
        assert label == {"en": "access to your personal data (Art. 15 GDPR)",
                         "nl": "inzage in uw persoonsgegevens (art. 15 AVG)"}.get(language, label)
        # The grounds as the law puts them: Art. 12(5) refuses only what is manifestly excessive,
        # and a refusal for want of identification rests on Art. 11(2) and 12(2) (Art. 12(6) only
        # lets us ask for more).
        unidentified = await as_sent("denial", "access", {"reason_code": "identity_not_established",
                                                          "explanation": "No answer."}, language=language)
        if language == "en":
            assert "because the request is manifestly excessive, in particular because of its repetitive character " \
                   "(Art. 12(5) GDPR)." in " ".join(denial.text.split())
            assert "we could not establish your identity (Art. 11(2) and 12(2) GDPR)" in " ".join(unidentified.text.split())
        assert "12(6)" not in unidentified.text and "12, lid 6" not in unidentified.text
    elif regime == "uk_gdpr":
        assert "UK GDPR" in label and "UK GDPR" in reason
        for part in both(ack):  # never the EU's regulation
            assert not any(name in part.replace("UK GDPR", "") for name in _GDPR_NAMES), (regime, language)
        if language == "en":
            assert "Request: access to your personal data (Art. 15 UK GDPR)\n" in ack.text
            assert "repetitive character (Art. 12(5) UK GDPR)." in denial.text
    else:
        if language == "en":
            # In the law's own words: the CCPA and PIPEDA say "personal information".
            term = "personal information" if regime in ("ccpa", "pipeda") else "personal data"
            assert f"Request: access to your {term}\n" in ack.text
            assert "because the request is manifestly excessive, in particular because of its repetitive character." in denial.text
        assert "Art." not in label and "art." not in label and "Art." not in reason and "art." not in reason
        # The acknowledgement under these laws says nothing else about the GDPR either.
        for part in both(ack):
            assert not any(name in part for name in _GDPR_NAMES), (regime, language)



# --- 9. No letter under another law cites the GDPR; none under the UK GDPR cites the EU's -----

_GRANTED_RECIPIENTS = {"recipient": "communication_crm"}  # told under Art. 19: its name is listed
_PROCESSOR_CONFIRMED = {"system": "surveys", "action": "erase", "status": "done", "recipient": "surveys",
                        "message": "Survey service provider confirmed the erasure"}


def _every_letter() -> dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(purpose, request type, the workflow's params, row overrides) of each letter and path a
    subject can receive."""
    code = {"code": "482913", "link": "https://privacy.example.test/verify?t=x",
            "expires_at": "2026-02-07T10:00:00+00:00", "max_attempts": 5}
    crm_done = {"system": "crm", "status": "done", "found": 2, "changed": 2,
                "datasets": {"contacts": {"found": 2, "changed": 2, "kept": 0, "deleted": 2}}}
    cases: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
        "acknowledgement": ("acknowledgement", "erasure", {"verification_required": True}, {}),
        "acknowledgement-verified": ("acknowledgement", "access", {"verification_required": False}, {}),
        "verification": ("verification", "access", code, {}),
        "reminder": ("reminder", "access", code, {}),
        "extension": ("extension", "erasure", {"reason": "Twelve systems.", "new_due_date": "2026-04-30"}, {}),
        # The LGPD's alone (schemas/requests.py), read under each law all the same: it cites only the LGPD.
        "simplified_confirmation": ("simplified_confirmation", "access",
                                    {"found": True, "unread": False, "asked": True}, {}),
        "closed_unverified": ("closed_unverified", "erasure", {"expired_at": "2026-02-07T10:00:00+00:00"}, {}),
        "cancellation-by-staff": ("cancellation", "erasure", {"reason": "A duplicate.", "withdrawn": False}, {}),
        "cancellation-withdrawn": ("cancellation", "erasure", {"reason": "Withdrawn.", "withdrawn": True}, {}),
        "denial-of-an-appeal": ("denial", "erasure", {"reason_code": "other", "explanation": "Confirmed."},
                                {"details": {"appeal_of": APPEAL_OF}}),
        "restriction_lift": ("restriction_lift", "restriction",
                             {"reason": "Settled.", "lift_on": "2026-02-09", "notice_days": 14}, {}),
        "complaint_progress": ("complaint_progress", "erasure", {"number": 3, "stage": "compliance", "late": True},
                               {"details": {"appeal_of": APPEAL_OF}}),
        "response-erasure-kept-told": ("response", "erasure", {"report": {"results": [
            {**crm_done, "action": "erase", **_GRANTED_RECIPIENTS}, *erasure_with_kept()["report"]["results"]]}},
            {}),
        "response-erasure-kept": ("response", "erasure", erasure_with_kept(), {}),
        "response-access": ("response", "access", {"report": {"results": [
            {**crm_done, "action": "access", "changed": 0}]}}, {}),
        "response-portability": ("response", "portability", {"report": {"results": [
            {**crm_done, "action": "access", "changed": 0}]}}, {}),
        "response-nothing-found": ("response", "access", {"report": {"results": []}}, {}),
        "response-restriction": ("response", "restriction", {"report": {"results": [
            {**crm_done, "action": "restrict"}]}}, {}),
        "response-objection-upheld": ("response", "objection", {
            "report": {"results": [{**crm_done, "action": "object"}]},
            "decision": {"compelling_grounds": False, "explanation": "No longer used."}}, {}),
        "response-objection-refused": ("response", "objection", REFUSED, {}),
    }
    for told, extra in (("told", _GRANTED_RECIPIENTS), ("", {})):
        cases[f"response-rectification-{told}"] = ("response", "rectification", {"report": {"results": [
            {**crm_done, "action": "rectify", **extra}]}}, {})
    # A correction that left a record an erasure kept as it was: refused in part (tests/test_dpo_rectification.py).
    cases["response-rectification-left"] = ("response", "rectification", {"report": {"results": [
        {**crm_done, "action": "rectify"}, {"system": "billing", "action": "rectify", "status": "not_found",
                                            "datasets": {"customers": {"found": 0, "changed": 0, "left": 1}}}]}}, {})
    # Only a processor asked by e-mail, which confirms without counting records: Art. 19 still names it.
    cases["response-erasure-processor-only"] = ("response", "erasure", {"report": {"results": [
        _PROCESSOR_CONFIRMED]}}, {})
    for reason in DenialReason:
        cases[f"denial-{reason}"] = ("denial", "access", {"reason_code": reason, "explanation": "Fifth."}, {})
    return cases


_EVERY_LETTER = _every_letter()


async def test_a_recipient_told_of_the_erasure_is_named_when_no_system_of_ours_held_anything():
    """A processor reached by e-mail confirms the erasure without counting records, so it is not
    listed under what we erased; before, the sentence naming the recipients told (Art. 19) was
    part of that list and went with it."""
    letter = await as_sent("response", "erasure", {"report": {"results": [_PROCESSOR_CONFIRMED]}})
    for part in both(letter):
        assert "We informed the recipients to whom we had disclosed your personal data of this erasure " \
               "(Art. 19 GDPR): Survey service provider." in part


async def test_a_processor_kept_under_a_hold_is_not_named_as_told_of_the_erasure():
    """The same processor, kept whole under a legal-claims hold: it was asked nothing, so the
    letter names it among what we kept, with the reason and the remedies, and not among the
    recipients told (Art. 19). Before, a kept processor's task was "done" and the letter said we
    had informed it of the erasure (DPO audit)."""
    from activities.connectors.base import HeldRecord
    from activities.connectors.sql_erasure import kept_summary
    from tests.letters_as_sent import LOADED

    hold = "0b9f8f1e-1111-4222-8333-444455556666"
    kept = kept_summary(LOADED.policy, "surveys", [HeldRecord("all", "all", "legal_claims", hold, None)],
                        {hold: {"basis": "Art. 17(3)(e) GDPR", "review_date": None}})
    result = {**_PROCESSOR_CONFIRMED, "message": "kept under a legal-claims hold", "kept": 1, "kept_records": kept}
    letter = await as_sent("response", "erasure", {"report": {"results": [result]}})
    for part in both(letter):
        assert "We informed the recipients" not in part, part
        assert "legal claim" in part and "supervisory authority" in part


def test_the_citation_check_covers_every_letter_to_a_subject():
    from schemas.vocabulary import PURPOSES
    assert {purpose for purpose, *_ in _EVERY_LETTER.values()} == set(PURPOSES) - {"staff_alert"}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", [r for r in REGIMES if r != "gdpr"])
async def test_no_letter_cites_a_law_other_than_its_regimes(monkeypatch, regime, language):
    async def restriction_as_told(pool: object, request_id: str, notice_days: int) -> dict[str, Any]:
        return {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "lift_effective_on": None,
                "grounds": list(restrictions.GROUND_LABELS), "systems": ["crm", "billing"], "held": {}, "held_in_force": []}

    monkeypatch.setattr(restrictions, "restriction_as_told", restriction_as_told)
    for case, (purpose, request_type, params, row) in _EVERY_LETTER.items():
        letter = await as_sent(purpose, request_type, params, regime=regime, language=language, **row)
        for part in [letter.subject, *both(letter)]:
            # "UK GDPR" ("de Britse AVG" in the policy's Dutch) is the UK's own law; any other
            # mention is the EU's regulation.
            said = part.replace("UK GDPR", "").replace("Britse AVG", "") if regime == "uk_gdpr" else part
            assert not any(name in said for name in _GDPR_NAMES), (case, regime, language, part)
        if regime == "uk_gdpr" and purpose == "response" and request_type == "erasure" and "kept" in case:
            # The claims under Art. 17(3)(e); Belgian law, no legal obligation under the UK GDPR, under
            # our legitimate interests (tests/test_letter_foreign_law.py).
            said = both(letter)[0]
            assert ("Art. 17(3)(e) UK GDPR" in said and "Art. 6(1)(f) UK GDPR" in said) or language != "en"
    if regime not in ("uk_gdpr",) and language == "en":
        rights = both(await as_sent("response", "access", {"report": {"results": []}}, regime=regime))[0]
        # Only the rights every one of these laws gives, and where to ask about the others.
        assert "the other rights that the law applicable to your request gives you" in rights
        assert "portable format" not in rights and "restriction" not in rights and "object to" not in rights


async def test_gdpr_letters_still_cite_the_gdpr():
    told = await as_sent("response", "erasure", {"report": {"results": [
        *_every_letter()["response-erasure-kept-told"][2]["report"]["results"]]}})
    said = both(told)[0]
    assert "of this erasure (Art. 19 GDPR): " in said
    assert "defence of legal claims (Art. 17(3) GDPR)." in said
    assert "Legal basis: Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims" in said
    assert "and you can object to its processing (Art. 15 to 21 GDPR)." in said
    denial = both(await as_sent("denial", "access", {"reason_code": "excessive", "explanation": "Fifth."}))[0]
    assert "because of its repetitive character (Art. 12(5) GDPR)." in denial
    identity = both(await as_sent("denial", "access", {"reason_code": "identity_not_established",
                                                       "explanation": "Unknown."}))[0]
    assert "because we could not establish your identity (Art. 11(2) and 12(2) GDPR)." in identity
    objection = both(await as_sent("response", "objection", REFUSED))[0]
    assert "based on our legitimate interests (Art. 21(1) GDPR)." in objection


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_vcdpa_refusal_cites_the_duty_to_give_reasons_and_the_appeal(language):
    # Va. Code § 59.1-577(B)(2): a controller declining to act tells the consumer why and how to
    # appeal; (C): the appeal. Subsection (A) lists the rights and obliges nobody to refuse aright.
    denial = both(await as_sent("denial", "access", {"reason_code": "excessive", "explanation": "Fifth."},
                                regime="vcdpa", language=language))[0]
    assert "59.1-577(B)(2)" in denial and "59.1-577(A)" not in denial, language
