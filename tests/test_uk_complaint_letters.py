"""The UK GDPR's complaint to the controller (Data Protection Act 2018 s. 164A, in force since 19 June
2026), in the letters as a subject receives them (`build_context` and `render_letter`, the policy's
translations and our catalogs): a refusal, in whole or in part, tells how to complain to us (the
portal's complaint form for that request, or the privacy address), that we acknowledge within 30
days and tell the outcome without undue delay, and that the Information Commissioner remains open
and may expect the complaint to have come to us first. The complaint's own letters say what it
is, and its outcome names the Commissioner, never a further complaint to us. The other regimes
are unchanged."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import activities.restrictions as restrictions
from dsrflow.domain.deadlines import compute_deadline
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date, translations
from policy.model import PolicyError, parse_policy
from tests.letters_as_sent import (
    APPEAL_OF,
    LANGUAGES,
    LOADED,
    REGIMES,
    REQUEST_ID,
    as_sent,
    both,
    erasure_with_kept,
)

DENIED = {"reason_code": "other", "explanation": "The records are needed to defend a pending claim."}
DONE = {"report": {"results": [{"system": "crm", "action": "erase", "status": "done", "found": 1, "changed": 1}]}}
CLOSING = {"acted_in": [], "asked_in": []}
# The letters that refuse in whole or in part (activities/letter_refusals.py): each carries the remedies.
REFUSALS = {
    "denial": DENIED | CLOSING,
    "closed_unverified": {"expired_at": "2026-02-07T14:05:00+00:00"},
    "cancellation": {"withdrawn": False, "reason": "A duplicate of another request."} | CLOSING,
    "response": erasure_with_kept(),
}
FORM = "https://privacy.example.test/portal/complaints?about={ref}&lang={lang}"


def _said(text: str) -> str:
    return " ".join(text.split())


def _read(letter) -> list[str]:
    """`both`, with the space a link's closing tag leaves before a comma or full stop taken out."""
    return [part.replace(" ,", ",").replace(" .", ".") for part in both(letter)]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("purpose", sorted(REFUSALS))
async def test_a_uk_refusal_tells_how_to_complain_to_us_and_that_the_commissioner_remains(purpose, language):
    letter = await as_sent(purpose, "erasure", REFUSALS[purpose], regime="uk_gdpr", language=language, country="GB")
    t = translations(language)
    remedies = LOADED.in_language(language).remedies_for("uk_gdpr", "GB")
    ref = short_reference(REQUEST_ID)
    form = FORM.format(ref=ref, lang=language)
    for part in _read(letter):
        assert t.gettext("Your right to complain to us") in part
        # How: the portal's form, open on this request, and the privacy address.
        assert t.gettext("You can complain to us about this decision (%(rule)s). Use the complaint form at "
                         "%(url)s, which you can fill in online, or write to %(email)s, quoting request %(id)s.") % {
            "rule": remedies.appeal.rule, "url": form, "email": "privacy@onetagger.com", "id": ref} in part
        # What we then do, and by when (s. 164A(3) and (4)).
        assert t.gettext("We will acknowledge your complaint within %(days)s days of receiving it, look into it "
                         "and keep you informed of our progress.") % {"days": 30} in part
        assert t.ngettext("We will tell you the outcome without undue delay, and aim to do so within %(count)s "
                          "day of receiving your complaint.", "We will tell you the outcome without undue delay, "
                          "and aim to do so within %(count)s days of receiving your complaint.", 30) % {
            "count": 30} in part
        # The Commissioner remains open, and may expect the complaint to have come to us first.
        assert _said(remedies.complaint) in part and remedies.authority.name in part
        assert t.gettext("Your right to appeal") not in part
    (text, html) = (letter.text, letter.html)
    assert form in text and f'href="{form.replace("&", "&amp;")}"' in html
    if language == "en":
        said = both(letter)[0]
        assert "Data Protection Act 2018, s. 164A" in said and "Data Protection Act 2018, s. 165" in said
        assert "may expect you to have complained to us first" in said
        assert "Art. 77" not in said  # moved to s. 165 by the Data (Use and Access) Act 2025


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_complaint_is_acknowledged_as_one_with_its_30_days_and_our_target(language):
    received = date(2026, 1, 31)
    deadline = compute_deadline("uk_gdpr", received, appeal=True)
    assert (deadline.acknowledge_by, deadline.due_date, deadline.extended_due_date) == (
        received + timedelta(days=29), received + timedelta(days=30), received + timedelta(days=30))
    letter = await as_sent("acknowledgement", "erasure", {"verification_required": True}, regime="uk_gdpr",
                           language=language, country="GB", details={"appeal_of": APPEAL_OF},
                           due_date=deadline.due_date, extended_due_date=deadline.extended_due_date,
                           current_due_date=deadline.due_date)
    t = translations(language)
    ref = short_reference(APPEAL_OF)
    assert letter.subject == t.gettext("We have received your complaint (ref. %(ref)s)") % {
        "ref": short_reference(REQUEST_ID)}
    for part in _read(letter):
        assert t.gettext("Complaint about") in part and t.gettext("Appeal of") not in part
        assert _said(t.gettext("Thank you for your complaint about our decision on request %(id)s. This e-mail "
                               "acknowledges its receipt.") % {"id": ref}) in part
        assert _said(t.gettext("Under section 164A of the Data Protection Act 2018, we will look into your complaint, "
                               "keep you informed of our progress and tell you its outcome without undue "
                               "delay.")) in part
        assert t.gettext("We aim to tell you the outcome by %(date)s.") % {
            "date": long_date(deadline.due_date, language)} in part
        # Not a request's month, nor an extension the workflow would refuse.
        assert "Art. 12(3)" not in part and "12, lid 3" not in part and "one month" not in part


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_complaints_outcome_names_the_commissioner_and_no_further_complaint_to_us(language):
    remedies = LOADED.in_language(language).remedies_for("uk_gdpr", "GB")
    t = translations(language)
    ref = short_reference(APPEAL_OF)
    denied = await as_sent("denial", "erasure", DENIED | CLOSING, regime="uk_gdpr", language=language,
                           country="GB", details={"appeal_of": APPEAL_OF})
    done = await as_sent("response", "erasure", DONE, regime="uk_gdpr", language=language, country="GB",
                         details={"appeal_of": APPEAL_OF})
    assert denied.subject == done.subject == t.gettext("The outcome of your complaint (ref. %(ref)s)") % {
        "ref": short_reference(REQUEST_ID)}
    stands = _said(" ".join((
        t.gettext("We have looked into your complaint about our decision on request %(id)s. Its outcome: we "
                  "maintain that decision.") % {"id": ref},
        t.gettext("As %(rule)s requires, we set out below our reasons and the remedies available to you.") % {
            "rule": remedies.refusal_rule})))
    redone = _said(t.gettext("This is the outcome of your complaint about our decision on request %(id)s: we have "
                             "looked into it and reconsidered that decision, and what we have now done is set out "
                             "below.") % {"id": ref})
    for letter, said in ((denied, stands), (done, redone)):
        for part in _read(letter):
            assert said in part
            assert _said(remedies.appeal.complaint_after_appeal) in part and remedies.authority.name in part
            assert _said(remedies.complaint) not in part
            assert t.gettext("Your right to complain to us") not in part and "/portal/complaints" not in part


# A complaint closed unverified or by staff was not looked into: its letter said "If you are not
# satisfied with the outcome of your complaint" of an outcome it never had (as the US appeals'
# closings did before `complaint_without_appeal`).
@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_complaint_closed_undecided_names_the_commissioner_without_an_outcome(language):
    remedies = LOADED.in_language(language).remedies_for("uk_gdpr", "GB")
    assert remedies.appeal is not None and remedies.appeal.complaint_without_appeal
    closings = {"closed_unverified": REFUSALS["closed_unverified"],
                "cancellation": {"reason": "A duplicate of your other complaint.", "withdrawn": False}}
    for purpose, params in closings.items():
        letter = await as_sent(purpose, "erasure", params, regime="uk_gdpr", language=language, country="GB",
                               details={"appeal_of": APPEAL_OF})
        for part in _read(letter):
            assert _said(remedies.appeal.complaint_without_appeal) in part, (purpose, language)
            assert _said(remedies.appeal.complaint_after_appeal) not in part, (purpose, language)
            assert "/portal/complaints" not in part, (purpose, language)


@pytest.mark.parametrize("regime", [r for r in REGIMES if r != "uk_gdpr"])
async def test_the_other_regimes_refusals_offer_no_complaint_to_us(regime):
    letter = await as_sent("denial", "erasure", DENIED | CLOSING, regime=regime, country="US" if regime in (
        "ccpa", "vcdpa", "ctdpa", "cpa") else "BE")
    for part in _read(letter):
        assert "Your right to complain to us" not in part and "/portal/complaints" not in part
        assert "s. 164A" not in part
        assert ("Your right to appeal" in part) == (regime in ("vcdpa", "ctdpa", "cpa"))


# --- What came with the change that made the complaint's reasons, target and lift letter whole ---

HOSTILE = '<script>alert("reasons")</script>\nYou kept my invoices & ignored my letter of 3 May.'


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_complaints_acknowledgement_says_we_have_its_reasons_and_never_repeats_them(language):
    """The reasons the complaint form takes (schemas/requests.py `complaint_reasons`) are the
    subject's own words about our decision: the acknowledgement says we received them, and a
    letter, whose copy is kept and goes wherever mail goes, never quotes them."""
    t = translations(language)
    received = t.gettext("We have received what you told us about it, which we will take into account; we do not "
                         "repeat it in this e-mail.")
    with_reasons, without = [
        await as_sent("acknowledgement", "erasure", {"verification_required": True}, regime="uk_gdpr",
                      language=language, country="GB", details={"appeal_of": APPEAL_OF, **reasons})
        for reasons in ({"complaint_reasons": HOSTILE}, {})]
    for part in _read(with_reasons):
        assert received in part
    for part in _read(without):
        assert received not in part
    for text in (with_reasons.subject, with_reasons.text, with_reasons.html):
        assert "reasons" not in text and "invoices" not in text and "3 May" not in text


def _with_target(days: int):
    content = copy.deepcopy(LOADED.content)
    content["remedies"]["uk_gdpr"]["appeal"]["answer_days"] = days
    return parse_policy(content)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_outcome_target_is_the_policys_in_the_due_date_and_the_letters(language):
    """Our target for a complaint's outcome is the policy's `remedies.uk_gdpr.appeal.answer_days`
    (before, a constant of 30 days in code): the due date is counted with it, and a refusal
    promises it."""
    loaded = _with_target(45)
    assert loaded.policy.complaint_days("uk_gdpr") == 45 and LOADED.policy.complaint_days("uk_gdpr") == 30
    received = date(2026, 1, 31)
    deadline = compute_deadline("uk_gdpr", received, appeal=True, target_days=45)
    assert (deadline.acknowledge_by, deadline.due_date, deadline.extended_due_date) == (
        received + timedelta(days=29), received + timedelta(days=45), received + timedelta(days=45))
    letter = await as_sent("denial", "erasure", DENIED | CLOSING, regime="uk_gdpr", language=language,
                           country="GB", loaded=loaded)
    t = translations(language)
    promise = t.ngettext("We will tell you the outcome without undue delay, and aim to do so within %(count)s day "
                         "of receiving your complaint.", "We will tell you the outcome without undue delay, and aim "
                         "to do so within %(count)s days of receiving your complaint.", 45) % {"count": 45}
    for part in _read(letter):
        assert promise in part


@pytest.mark.parametrize(("regime", "days"), [("uk_gdpr", 0), ("uk_gdpr", 91), ("vcdpa", 30)])
def test_a_target_out_of_bounds_or_for_a_statutory_appeal_stops_the_policy(regime, days):
    content = copy.deepcopy(LOADED.content)
    content["remedies"][regime]["appeal"]["answer_days"] = days
    with pytest.raises(PolicyError, match=rf"remedies\.{regime}\.appeal\.answer_days"):
        parse_policy(content)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_uk_restriction_lift_says_how_to_complain_to_us_by_writing(monkeypatch, language):
    """The lift letter's Commissioner paragraph says the Commissioner may expect a complaint to us
    first: the letter says how to make one (the refusals' part of _remedies, not a copy). By writing
    to the privacy address, quoting the request: the portal's complaint form, which the letter
    linked before, takes complaints about a refusal, and answered one about a lift "that request
    was not refused", so the letter sent the subject to a form that turned them away."""
    async def restriction_as_told(pool: object, request_id: str, notice_days: int) -> dict[str, Any]:
        return {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "lift_effective_on": None,
                "grounds": ["needed_for_legal_claims"], "systems": ["crm"], "held": {}, "held_in_force": []}

    monkeypatch.setattr(restrictions, "restriction_as_told", restriction_as_told)
    lift = {"reason": "The court case was settled.", "lift_on": "2026-02-09", "notice_days": 14}
    letter = await as_sent("restriction_lift", "restriction", lift, regime="uk_gdpr", language=language, country="GB")
    t = translations(language)
    localized = LOADED.in_language(language)
    remedies = localized.remedies_for("uk_gdpr", "GB")
    for part in _read(letter):
        assert t.gettext("Your right to complain to us") in part
        assert localized.controller.privacy_email in part and short_reference(REQUEST_ID) in part
        assert "/portal/complaints" not in part
        assert _said(remedies.complaint) in part
    eu = await as_sent("restriction_lift", "restriction", lift, regime="gdpr", language=language)
    assert "/portal/complaints" not in eu.text and t.gettext("Your right to complain to us") not in eu.text
