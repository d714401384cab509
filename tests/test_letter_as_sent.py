"""Letters as a subject receives them: the context built by the letter activity itself
(`build_context`, from a request row and the workflow's params as the workflow sends them), the
policy's translations and our catalogs, rendered by `render_letter`. Each test states what the law
requires the letter to say, in every regime and language it applies to."""

from __future__ import annotations

import re
import types
from datetime import UTC, date, datetime
from html import unescape
from typing import Any

import pytest

import activities.letters as letters
import activities.restrictions as restrictions
from activities.citations import citation, cited_label
from activities.connectors.base import HeldRecord
from activities.connectors.sql_erasure import kept_summary
from activities.letter_templates import RenderedLetter, render_letter
from dsrflow.domain.deadlines import compute_deadline, receipt_date
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date, translations
from policy.model import load_policy
from schemas.vocabulary import Language, Regime
from schemas.workflow import LetterJob

LOADED = load_policy()
LANGUAGES = [lang.value for lang in Language]
REGIMES = [r.value for r in Regime]
REQUEST_ID = "3f2b8c1e-9a4d-4e6f-8b2a-1c5d7e9f0a12"


class _Ctx:
    """What `build_context` reads of the activity context: the settings' base URL and the policy."""

    settings = types.SimpleNamespace(base_url="https://privacy.example.test")
    pool = None

    async def policy(self, version: str) -> Any:
        return LOADED


def request_row(regime: str, request_type: str, language: str, **overrides: Any) -> dict[str, Any]:
    """A request row as `get_request_with` returns it."""
    received_at = datetime(2026, 1, 30, 23, 30, tzinfo=UTC)  # 31 January in Brussels
    deadline = compute_deadline(regime, receipt_date(received_at, "Europe/Brussels"),
                                establishment="BE" if regime == "gdpr" else None)
    return {"id": REQUEST_ID, "request_type": request_type, "regime": regime, "received_at": received_at,
            "due_date": deadline.due_date, "extended_due_date": deadline.extended_due_date,
            "current_due_date": deadline.due_date, "details": {}, "subject_name": "Jane Doe",
            "subject_email": "jane@example.org", "country": "BE", "language": language,
            "policy_version": "v", "origin": "portal", **overrides}


async def as_sent(purpose: str, request_type: str, params: dict[str, Any], *, regime: str = "gdpr",
                  language: str = "en", **row: Any) -> RenderedLetter:
    """The letter `purpose` with the workflow's `params`, built and rendered as the letter activity does."""
    request = request_row(regime, request_type, language, **row)
    job = LetterJob(request_id=REQUEST_ID, purpose=purpose, key="1", params=params)
    context = await letters.build_context(_Ctx(), request, job, language)  # type: ignore[arg-type]
    return render_letter(purpose, context, language)


def both(letter: RenderedLetter) -> list[str]:
    """The plain text and the HTML's text, whitespace folded (what a reader sees)."""
    html = unescape(re.sub(r"<[^>]+>", " ", letter.html.split("<body", 1)[1]))
    return [" ".join(letter.text.split()), " ".join(html.split())]


# --- 1. An objection refused on compelling legitimate grounds (Art. 21(1), 12(4)) -------------

# The workflow runs no task on this path (workflows/dsr.py, `_process`): the report is empty and
# the decision travels with it.
_REFUSED = {"report": {"results": []},
            "decision": {"compelling_grounds": True,
                         "explanation": "Fraud monitoring of this account is required by our acquirer."}}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_a_refused_objection_says_processing_continues_and_why(regime, language):
    letter = await as_sent("response", "objection", _REFUSED, regime=regime, language=language)
    t = translations(language)
    for part in both(letter):
        # Processing continues: the letter may not claim that nothing was found.
        assert t.gettext("We found no personal data about you in our systems.") not in part
        assert "We found no personal data" not in part
        assert t.gettext("We have now completed your request.") not in part
        # What Art. 21(1) allows, that it applies, and compliance's reasons as they gave them.
        decided = letters.decision_summary(_REFUSED["decision"], regime, t)
        assert " ".join(decided.split()) in part
        assert "Fraud monitoring of this account is required by our acquirer." in part
        # The remedies of Art. 12(4): a complaint to the authority and a judicial remedy.
        remedies = LOADED.in_language(language).remedies_for(regime, "BE")
        assert " ".join(remedies.authority.name.split()) in part
        assert " ".join(remedies.judicial.split())[:60] in part
    if language == "en":
        said = both(letter)[0]
        assert "compelling legitimate grounds" in said and "interests, rights and freedoms" in said
        assert "establishment, exercise or defence of legal claims" in said
        assert "the processing continues" in said


# --- 2. What an erasure kept, in the letter's language (Art. 17(3), 12(1)) --------------------

def _kept_records() -> list[dict[str, Any]]:
    """What the fan-out stores for an erasure that kept records (`kept_summary`, in the policy's
    source language): two invoices under the accounting statute and the CRM under a legal-claims
    hold placed with the API's default basis."""
    policy = LOADED.policy
    held = [HeldRecord("invoices", "INV-1", "statutory", "be_accounting", date(2033, 12, 31)),
            HeldRecord("invoices", "INV-2", "statutory", "be_accounting", date(2033, 12, 31))]
    hold_id = "0b9f8f1e-1111-4222-8333-444455556666"
    legal = {hold_id: {"basis": "Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims",
                       "review_date": date(2026, 6, 30)}}
    return (kept_summary(policy, "billing", held, {})
            + kept_summary(policy, "crm", [HeldRecord("all", "all", "legal_claims", hold_id, None)], legal))


def _erasure_with_kept() -> dict[str, Any]:
    return {"report": {"results": [
        {"system": "billing", "action": "erase", "status": "done", "found": 4, "changed": 2, "kept": 2,
         "kept_records": [k for k in _kept_records() if k["system"] == "billing"]},
        {"system": "crm", "action": "erase", "status": "done", "found": 1, "changed": 0, "kept": 1,
         "kept_records": [k for k in _kept_records() if k["system"] == "crm"]}]}}


@pytest.mark.parametrize("language", ["nl", "fr", "de"])
@pytest.mark.parametrize("regime", REGIMES)
async def test_kept_records_give_their_legal_basis_and_law_in_the_letters_language(regime, language):
    letter = await as_sent("response", "erasure", _erasure_with_kept(), regime=regime, language=language)
    english = LOADED.policy.statutory_holds["be_accounting"]
    translated = LOADED.in_language(language).statutory_holds["be_accounting"]
    t = translations(language)
    # The statute's basis as the policy words it cites the GDPR: under another regime, ours.
    cited = citation(regime, "17(3)(b)", t)
    basis = (translated.basis if regime == "gdpr" else
             t.gettext("%(citation)s: compliance with a legal obligation") % {"citation": cited} if cited else
             t.gettext("compliance with a legal obligation"))
    for part in both(letter):
        assert " ".join(basis.split()) in part
        assert " ".join(translated.law.split()) in part
        assert english.basis not in part and english.law not in part
        # The legal-claims hold: neither its default basis nor the text of its law in English.
        assert "Art. 17(3)(e) GDPR" not in part
        assert "establishment, exercise or defence" not in part and "a legal claim" not in part


async def test_kept_records_read_as_stored_in_english():
    letter = await as_sent("response", "erasure", _erasure_with_kept())
    english = LOADED.policy.statutory_holds["be_accounting"]
    for part in both(letter):
        assert english.basis in part and english.law in part
        assert "Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims" in part


# --- 3. A legal-claims hold is reviewed, not kept until a date (Art. 17(3)(e), 5(1)(a)) -------

@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_legal_claims_hold_gives_its_review_date_as_such(language):
    letter = await as_sent("response", "erasure", _erasure_with_kept(), language=language)
    t = translations(language)
    review, end = long_date(date(2026, 6, 30), language), long_date(date(2033, 12, 31), language)
    for part in both(letter):
        assert f"{t.gettext('Hold reviewed by')}: {review}".replace(" :", ":") in part.replace(" :", ":")
        assert f"{t.gettext('Kept until')}: {end}".replace(" :", ":") in part.replace(" :", ":")
        assert f"{t.gettext('Kept until')}: {review}".replace(" :", ":") not in part.replace(" :", ":")
    if language == "en":
        said = both(letter)[0]
        assert "we will erase it when the period below ends" not in said
        assert "erased when its period, given below, ends" in said
        assert "as soon as the claims no longer require it" in said


async def test_a_hold_without_a_date_shows_none():
    """A legal-claims hold whose review date the evidence does not have (a hold since deleted)."""
    report = _erasure_with_kept()
    for result in report["report"]["results"]:
        for kept in result["kept_records"]:
            if kept["hold_kind"] == "legal_claims":
                kept["until"] = None
    letter = await as_sent("response", "erasure", report)
    for part in both(letter):
        assert part.count("Kept until") == 1 and "Hold reviewed by" not in part


# --- 4. The appeal names the reference the subject was given (VCDPA, CTDPA, CPA) --------------

APPEAL_OF = "11111111-2222-4333-8444-555555555555"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["vcdpa", "ctdpa", "cpa"])
async def test_the_appeal_quotes_the_short_reference(regime, language):
    denial = await as_sent("denial", "erasure", {"reason_code": "other", "explanation": "Records needed for a claim."},
                           regime=regime, language=language)
    appeal = await as_sent("response", "erasure", {"report": {"results": [
        {"system": "crm", "action": "erase", "status": "done", "found": 1, "changed": 1}]}},
        regime=regime, language=language, details={"appeal_of": APPEAL_OF})
    t = translations(language)
    for part in both(denial):
        assert t.gettext("Your right to appeal") in part
        assert short_reference(REQUEST_ID) in part and REQUEST_ID not in part
    for part in both(appeal):
        assert short_reference(APPEAL_OF) in part and APPEAL_OF not in part
        assert REQUEST_ID not in part


# --- 5. The extension notice is promised by the day the workflow accepts it (Art. 12(3)) ------
# The workflow accepts an extension until the end of the first due date (workflows/dsr.py,
# `_validate_extend`: refused from `overdue_at`), so the letters promise it by that date at the latest.

_BY_DUE = ("Where necessary, taking into account the complexity and number of requests, this period can be "
           "extended by two further months (Art. 12(3) %(law)s). If we need to do this, we will tell you, with "
           "our reasons, by %(date)s at the latest.")
_BY_THAT_DATE = ("If we need more time and the law that applies to your request allows it, we will tell you, "
                 "with our reasons, by that date at the latest.")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_the_acknowledgement_promises_an_extension_notice_by_the_due_date(regime, language):
    letter = await as_sent("acknowledgement", "erasure", {"verification_required": False},
                           regime=regime, language=language)
    t = translations(language)
    due = long_date(request_row(regime, "erasure", language)["current_due_date"], language)
    if regime in ("gdpr", "uk_gdpr"):
        law = t.gettext("UK GDPR" if regime == "uk_gdpr" else "GDPR")
        promise = t.gettext(_BY_DUE) % {"law": law, "date": due}
    else:
        promise = t.gettext(_BY_THAT_DATE)
    for part in both(letter):
        assert " ".join(promise.split()) in part
        assert f"before {due}" not in part and "before that date" not in part


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
    async def restriction_for(pool: object, request_id: str) -> dict[str, Any]:
        return {"since": since, "lift_effective_on": effective, "grounds": ["needed_for_legal_claims"],
                "systems": ["crm", "billing"]}

    monkeypatch.setattr(restrictions, "restriction_for", restriction_for)
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
    async def restriction_for(pool: object, request_id: str) -> dict[str, Any]:
        return {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "lift_effective_on": None,
                "grounds": ["needed_for_legal_claims"], "systems": ["crm"]}

    monkeypatch.setattr(restrictions, "restriction_for", restriction_for)
    letter = await as_sent("restriction_lift", "restriction",
                           {"reason": "The court case was settled.", "lift_on": "2026-02-09", "notice_days": 14},
                           regime=regime)
    remedies = letters.remedies_context(LOADED.policy, regime, request_row(regime, "restriction", "en")["country"],
                                        appeal=True)
    for part in both(letter):
        assert remedies["authority"]["name"] in part and " ".join(remedies["judicial"].split()) in part
        assert "seek a judicial remedy before the courts" not in part


# --- 7. A letter cites the law of its regime, never another (the request and denial labels) --

_GDPR_NAMES = ("GDPR", "AVG", "RGPD", "DSGVO")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_the_request_and_denial_labels_cite_only_the_regimes_law(regime, language):
    t = translations(language)
    ack = await as_sent("acknowledgement", "access", {"verification_required": False}, regime=regime, language=language)
    denial = await as_sent("denial", "access", {"reason_code": "excessive", "explanation": "Fifth identical request."},
                           regime=regime, language=language)
    label = cited_label(letters.LETTER_TYPE_LABELS["access"], regime, t)
    reason = cited_label(letters.LETTER_DENIAL_LABELS["excessive"], regime, t)
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
            assert "Request: access to your personal data\n" in ack.text
            assert "because the request is manifestly excessive, in particular because of its repetitive character." in denial.text
        assert "Art." not in label and "art." not in label and "Art." not in reason and "art." not in reason
        # The acknowledgement under these laws says nothing else about the GDPR either.
        for part in both(ack):
            assert not any(name in part for name in _GDPR_NAMES), (regime, language)


# --- 8. Records kept are never said to be erased (Art. 17(3), 12(1)) ------------------------
# The SQL connector counts in `changed` the kept records it minimised and marked restricted as
# well as those it deleted (activities/connectors/sql.py): that count is not what was erased.

def _crm_kept(changed: int) -> dict[str, Any]:
    """The CRM's result when a legal-claims hold kept all of it: marked restricted (`changed` 1, as
    the connector reports it) or, as another connector would, nothing changed."""
    kept = [k for k in _kept_records() if k["system"] == "crm"]
    return {"system": "crm", "action": "erase", "status": "done", "found": 1, "changed": changed, "kept": 1,
            "datasets": {"contacts": {"found": 1, "changed": changed, "kept": 1, "deleted": 0}},
            "kept_records": kept}


def _billing_mixed() -> dict[str, Any]:
    """Billing: two invoices kept (minimised and restricted) and the customer record deleted."""
    kept = [k for k in _kept_records() if k["system"] == "billing"]
    return {"system": "billing", "action": "erase", "status": "done", "found": 3, "changed": 3, "kept": 2,
            "datasets": {"invoices": {"found": 2, "changed": 2, "kept": 2, "deleted": 0},
                         "customers": {"found": 1, "changed": 1, "kept": 0, "deleted": 1}},
            "kept_records": kept}


def _listed(system: str, category: str, action: str, records: int, language: str = "en") -> list[str]:
    """A system's line under the actions heading, as `both` reads the text and the HTML table."""
    said = translations(language).ngettext("%(num)d record", "%(num)d records", records) % {"num": records}
    return [f"{system}, {category}: {action} ({said})", f"{system} {category} {action} {records}"]


def _section(text: str, heading: str, headings: tuple[str, ...]) -> str:
    """The plain text under `heading`, up to the next of `headings`."""
    after = text.split(heading, 1)[1]
    ends = [after.index(h) for h in headings if h in after]
    return after[:min(ends)] if ends else after


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("changed", [0, 1])
async def test_a_system_whose_records_were_all_kept_is_not_listed_as_erased(changed, language):
    t = translations(language)
    crm, billing = LOADED.in_language(language).systems["crm"].label, LOADED.in_language(language).systems["billing"].label
    erased, kept = t.gettext("What we erased"), t.gettext("What we kept, and why")
    only_kept = await as_sent("response", "erasure", {"report": {"results": [_crm_kept(changed)]}}, language=language)
    # Nothing was erased: no "What we erased" at all; the CRM is named under what we kept.
    for part in both(only_kept):
        assert erased not in part and t.gettext("erased") + " (" not in part
        assert crm in part.split(kept, 1)[1]
    mixed = await as_sent("response", "erasure", {"report": {"results": [_crm_kept(changed), _billing_mixed()]}},
                          language=language)
    for part, line in zip(both(mixed), _listed(billing, "customers", t.gettext("erased"), 1, language),
                          strict=True):
        listed = _section(part, erased, (kept,))
        assert crm not in listed
        # Billing erased the customer record only; its two invoices are under what we kept.
        assert "invoices" not in listed.replace(billing, "")
        assert line in listed
        assert crm in part.split(kept, 1)[1] and billing in part.split(kept, 1)[1]


@pytest.mark.parametrize(("request_type", "action", "result", "said", "records"), [
    ("access", "access", {"found": 5, "changed": 0}, "found", 5),
    ("rectification", "rectify", {"found": 2, "changed": 1}, "corrected", 1),
    ("rectification", "rectify", {"found": 2, "changed": 0}, "corrected", 2),
    ("restriction", "restrict", {"found": 3, "changed": 0}, "restricted", 3),
    ("objection", "object", {"found": 4, "changed": 4}, "stopped processing as you objected", 4),
])
async def test_other_requests_still_count_what_they_found_or_changed(request_type, action, result, said, records):
    letter = await as_sent("response", request_type, {"report": {"results": [
        {"system": "crm", "action": action, "status": "done", "datasets": {"contacts": {**result, "kept": 0}},
         **result}]}})
    crm = LOADED.policy.systems["crm"].label
    for part, line in zip(both(letter), _listed(crm, "contacts", said, records), strict=True):
        assert line in part


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
        "closed_unverified": ("closed_unverified", "erasure", {"expired_at": "2026-02-07T10:00:00+00:00"}, {}),
        "cancellation-by-staff": ("cancellation", "erasure", {"reason": "A duplicate.", "withdrawn": False}, {}),
        "cancellation-withdrawn": ("cancellation", "erasure", {"reason": "Withdrawn.", "withdrawn": True}, {}),
        "denial-of-an-appeal": ("denial", "erasure", {"reason_code": "other", "explanation": "Confirmed."},
                                {"details": {"appeal_of": APPEAL_OF}}),
        "restriction_lift": ("restriction_lift", "restriction",
                             {"reason": "Settled.", "lift_on": "2026-02-09", "notice_days": 14}, {}),
        "response-erasure-kept-told": ("response", "erasure", {"report": {"results": [
            {**crm_done, "action": "erase", **_GRANTED_RECIPIENTS}, *_erasure_with_kept()["report"]["results"]]}},
            {}),
        "response-erasure-kept": ("response", "erasure", _erasure_with_kept(), {}),
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
        "response-objection-refused": ("response", "objection", _REFUSED, {}),
    }
    for told, extra in (("told", _GRANTED_RECIPIENTS), ("", {})):
        cases[f"response-rectification-{told}"] = ("response", "rectification", {"report": {"results": [
            {**crm_done, "action": "rectify", **extra}]}}, {})
    # Only a processor asked by e-mail, which confirms without counting records: Art. 19 still names it.
    cases["response-erasure-processor-only"] = ("response", "erasure", {"report": {"results": [
        _PROCESSOR_CONFIRMED]}}, {})
    for reason in letters.LETTER_DENIAL_LABELS:
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


def test_the_citation_check_covers_every_letter_to_a_subject():
    from schemas.vocabulary import PURPOSES
    assert {purpose for purpose, *_ in _EVERY_LETTER.values()} == set(PURPOSES) - {"staff_alert"}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", [r for r in REGIMES if r != "gdpr"])
async def test_no_letter_cites_a_law_other_than_its_regimes(monkeypatch, regime, language):
    async def restriction_for(pool: object, request_id: str) -> dict[str, Any]:
        return {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "lift_effective_on": None,
                "grounds": list(restrictions.GROUND_LABELS), "systems": ["crm", "billing"]}

    monkeypatch.setattr(restrictions, "restriction_for", restriction_for)
    for case, (purpose, request_type, params, row) in _EVERY_LETTER.items():
        letter = await as_sent(purpose, request_type, params, regime=regime, language=language, **row)
        for part in [letter.subject, *both(letter)]:
            # "UK GDPR" ("de Britse AVG" in the policy's Dutch) is the UK's own law; any other
            # mention is the EU's regulation.
            said = part.replace("UK GDPR", "").replace("Britse AVG", "") if regime == "uk_gdpr" else part
            assert not any(name in said for name in _GDPR_NAMES), (case, regime, language, part)
        if regime == "uk_gdpr" and purpose == "response" and request_type == "erasure" and "kept" in case:
            assert "Art. 17(3) UK GDPR" in both(letter)[0] or language != "en"
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
    assert "Art. 12(5) GDPR allows a controller to refuse to act" in denial
    identity = both(await as_sent("denial", "access", {"reason_code": "identity_not_established",
                                                       "explanation": "Unknown."}))[0]
    assert "unless we can identify you (Art. 11(2) and 12(2) GDPR)." in identity
    objection = both(await as_sent("response", "objection", _REFUSED))[0]
    assert "based on our legitimate interests (Art. 21(1) GDPR)." in objection
