"""Letters read again by a data protection officer, with fresh eyes, against what each regime's law
asks of them: what tests/test_dpo_letters.py, tests/test_dpo_recourse.py and the other letter
tests do not already check. Pure rendering, as the letter activity builds each letter
(tests/letters_as_sent.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import activities.restrictions as restrictions
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_datetime, translations, worded, wording_of
from tests.letters_as_sent import (
    APPEAL_OF,
    LANGUAGES,
    LOADED,
    REQUEST_ID,
    as_sent,
    both,
    erasure_with_kept,
    kept_records,
)

_STATE_LAWS = ["vcdpa", "ctdpa", "cpa"]


def said(text: str) -> str:
    return " ".join(text.split())


def _appeal_texts(regime: str, language: str) -> tuple[str, str, str]:
    """The policy's three ways of naming the Attorney General under `regime`: before an appeal
    (`complaint`, "If we deny your appeal, ..."), after one (`complaint_after_appeal`) and
    without one (`complaint_without_appeal`), in `language`."""
    remedies = LOADED.in_language(language).remedies[regime]
    assert remedies.appeal is not None and remedies.appeal.complaint_after_appeal
    assert remedies.appeal.complaint_without_appeal, (regime, language)
    return (said(remedies.complaint), said(remedies.appeal.complaint_after_appeal),
            said(remedies.appeal.complaint_without_appeal))


# --- The Attorney General without an appeal (Va. Code § 59.1-577(C), Conn. Gen. Stat.
# § 42-518(d), C.R.S. § 6-1-1306(3)) -----------------------------------------------------------
# The state laws grant an appeal against a refusal to act on a request, and name the Attorney
# General for when it is denied. Lifting a restriction refuses nothing: the letter offers no
# appeal, yet it introduced the Attorney General with "If we deny your appeal, or at any other
# time" (under the CPA: "If we deny your appeal, or if you have concerns about its result"), an
# appeal the subject was never offered. An appeal closed unverified, or closed by staff, was not
# decided, yet its letter said "Now that we have decided on your appeal".

@pytest.fixture
def restricted(monkeypatch):
    async def restriction_as_told(pool: object, request_id: str, notice_days: int) -> dict[str, Any]:
        return {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "lift_effective_on": None,
                "grounds": ["needed_for_legal_claims"], "systems": ["crm"], "held": {}, "held_in_force": []}
    monkeypatch.setattr(restrictions, "restriction_as_told", restriction_as_told)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", _STATE_LAWS)
async def test_a_lift_letter_under_a_state_law_names_the_attorney_general_without_an_appeal(
        restricted, regime, language):
    before, after, without = _appeal_texts(regime, language)
    for notice_days in (14, 0):
        letter = await as_sent("restriction_lift", "restriction",
                               {"reason": "Settled.", "lift_on": "2026-02-09", "notice_days": notice_days},
                               regime=regime, language=language)
        for part in both(letter):
            assert without in part, (regime, language, notice_days)
            assert before not in part and after not in part, (regime, language, notice_days)
            if language == "en":
                assert "appeal" not in part.lower(), (regime, notice_days)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", _STATE_LAWS)
async def test_an_appeal_closed_undecided_names_the_attorney_general_without_saying_it_was_decided(
        regime, language):
    before, after, without = _appeal_texts(regime, language)
    closings = {"closed_unverified": {"expired_at": "2026-02-07T10:00:00+00:00"},
                "cancellation": {"reason": "A duplicate of your other appeal.", "withdrawn": False}}
    for purpose, params in closings.items():
        letter = await as_sent(purpose, "erasure", params, regime=regime, language=language,
                               details={"appeal_of": APPEAL_OF})
        for part in both(letter):
            assert without in part and after not in part and before not in part, (purpose, regime, language)
        # A first request closed so is a refusal: it still offers the appeal, before the Attorney General.
        first = await as_sent(purpose, "erasure", params, regime=regime, language=language)
        rule = LOADED.in_language(language).remedies[regime].appeal.rule  # type: ignore[union-attr]
        for part in both(first):
            assert before in part and rule in part, (purpose, regime, language)
    # A denial decides the appeal: its letter keeps saying so.
    denial = await as_sent("denial", "erasure", {"reason_code": "other", "explanation": "Confirmed."},
                           regime=regime, language=language, details={"appeal_of": APPEAL_OF})
    for part in both(denial):
        assert after in part and without not in part


# --- An appeal or a UK complaint closed undecided is named as such ------------------------------
# Its acknowledgement, decision and extension speak of the appeal (or the complaint); closed
# unverified, by staff or withdrawn, it read "Your data protection request has been closed", "we
# have closed your request" and "we have not acted on your request, or not on all of it": the
# subject, whose request was refused already, could not tell what was closed, nor that the
# refusal stands.

_CLOSINGS = {
    "closed_unverified": ({"expired_at": "2026-02-07T10:00:00+00:00"},
                          {"appeal": "Your appeal has been closed (ref. %(ref)s)",
                           "complaint": "Your complaint has been closed (ref. %(ref)s)"},
                          {"appeal": "We did not decide on your appeal because we could not confirm that it comes from "
                                     "the person whose personal data it concerns.",
                           "complaint": "We did not look into your complaint because we could not confirm that it comes "
                                        "from the person whose personal data it concerns."}),
    "cancellation": ({"reason": "A duplicate of your other appeal.", "withdrawn": False},
                     {"appeal": "Your appeal has been closed (ref. %(ref)s)",
                      "complaint": "Your complaint has been closed (ref. %(ref)s)"},
                     {"appeal": "We have closed your appeal of our decision on request %(id)s without deciding on it, "
                                "for the following reason:",
                      "complaint": "We have closed your complaint about our decision on request %(id)s before "
                                   "completing our consideration of it, for the following reason:"}),
    "withdrawal": ({"reason": "Withdrawn by telephone.", "withdrawn": True},
                   {"appeal": "You have withdrawn your appeal (ref. %(ref)s)",
                    "complaint": "You have withdrawn your complaint (ref. %(ref)s)"},
                   {"appeal": "If you did not ask us to withdraw this appeal, tell us at once by replying to this "
                              "e-mail.",
                    "complaint": "If you did not ask us to withdraw this complaint, tell us at once by replying to "
                                 "this e-mail."}),
}
_AS_A_REQUEST = ("We have closed your request without completing it, for the following reason:",
                 "This means we have not acted on your request, or not on all of it.",
                 "We did not act on your request because we could not confirm that it comes from the person whose "
                 "personal data it concerns.",
                 "If you did not ask us to withdraw this request, tell us at once by replying to this e-mail.")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["vcdpa", "cpa", "uk_gdpr"])
@pytest.mark.parametrize("closing", list(_CLOSINGS))
async def test_an_appeal_or_complaint_closed_undecided_is_named_as_such(closing, regime, language):
    params, subjects, sentences = _CLOSINGS[closing]
    kind = "complaint" if regime == "uk_gdpr" else "appeal"
    t = translations(language)
    purpose = "closed_unverified" if closing == "closed_unverified" else "cancellation"
    letter = await as_sent(purpose, "erasure", params, regime=regime, language=language,
                           details={"appeal_of": APPEAL_OF})
    ids = {"ref": short_reference(REQUEST_ID), "id": short_reference(APPEAL_OF)}
    assert letter.subject == t.gettext(subjects[kind]) % ids
    sentence = said(t.gettext(sentences[kind]) % ids)
    if language != "en":
        assert t.gettext(sentences[kind]) != sentences[kind], "not translated"
    for part in both(letter):
        assert sentence in part, (closing, regime, language)
        assert not any(said(t.gettext(old)) in part for old in _AS_A_REQUEST), (closing, regime, language)


# --- LGPD: the ANPD hears a petition once the subject complained to us first (Art. 55-J, V) -----
# The letters cited Art. 55-J, V for the right to petition the ANPD, and left out its condition:
# the ANPD considers a subject's petition against a controller once the subject shows that they
# first complained to the controller and that it was not resolved in the period its regulations
# set. A subject who petitions without that proof is turned away; the letter now says so, and to
# keep it (as the UK letters say the Commissioner may expect a complaint to us first).

_COMPLAINED_FIRST = {"en": "you first raised the matter with us", "nl": "u de kwestie eerst aan ons hebt voorgelegd",
                     "fr": "vous nous avez d'abord soumis la question", "de": "dass Sie sich zuerst an uns gewandt haben"}


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_lgpd_letter_says_the_anpd_hears_a_petition_once_we_were_asked_first(restricted, language):
    letters = {
        "denial": await as_sent("denial", "access", {"reason_code": "excessive", "explanation": "Fifth."},
                                regime="lgpd", language=language),
        "closed_unverified": await as_sent("closed_unverified", "erasure",
                                           {"expired_at": "2026-02-07T10:00:00+00:00"}, regime="lgpd",
                                           language=language),
        "response-kept": await as_sent("response", "erasure", erasure_with_kept(), regime="lgpd", language=language),
        "restriction_lift": await as_sent("restriction_lift", "restriction",
                                          {"reason": "Settled.", "lift_on": "2026-02-09", "notice_days": 14},
                                          regime="lgpd", language=language),
    }
    for case, letter in letters.items():
        for part in both(letter):
            assert _COMPLAINED_FIRST[language] in part and "55-J, V" in part, (case, language)


# --- An erasure that erased nothing is not "completed" ------------------------------------------
# A subject whose data is all held (a legal-claims hold over every system, say) read "We have now
# completed your request, except for the data named under 'What we kept, and why'", then that we
# found nothing else: the request was refused whole, and the letter opened by saying it was done.

_NOTHING_ERASED = ("We have not erased any of your personal data: what we hold about you we must keep, for the "
                   "reasons given under “%(heading)s” below.")
_COMPLETED_EXCEPT = "We have now completed your request, except for the data named under “%(heading)s” below."


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["gdpr", "ccpa", "lgpd"])
async def test_an_erasure_that_kept_everything_says_nothing_was_erased(regime, language):
    crm = [k for k in kept_records() if k["system"] == "crm"]
    kept_whole = {"report": {"results": [{"system": "crm", "action": "erase", "status": "done", "found": 1,
                                          "changed": 0, "kept": 1, "kept_records": crm}]}}
    t = worded(language, wording_of(regime))
    heading = {"heading": t.gettext("What we kept, and why")}
    letter = await as_sent("response", "erasure", kept_whole, regime=regime, language=language)
    for part in both(letter):
        assert said(t.gettext(_NOTHING_ERASED) % heading) in part, (regime, language)
        assert said(t.gettext(_COMPLETED_EXCEPT) % heading) not in part, (regime, language)
    if language != "en":
        assert t.gettext(_NOTHING_ERASED) != _NOTHING_ERASED, "not translated"
    # Where something was erased, the request was done but for what was kept.
    partly = await as_sent("response", "erasure", erasure_with_kept(), regime=regime, language=language)
    for part in both(partly):
        assert said(t.gettext(_COMPLETED_EXCEPT) % heading) in part


# --- A denial after part of the request was carried out -----------------------------------------
# A request denied once some systems had erased (the letter names them: "Before your request was
# closed, we had already acted on it in: CRM") opened with "we have decided not to take action on
# it": two sentences of one letter that cannot both be true.

_NO_FURTHER_ACTION = "We have carefully considered your request and have decided not to take any further action on it."
_NO_ACTION = "We have carefully considered your request and have decided not to take action on it."
# The sentence after either, under these regimes (tests/test_dpo_refusal_rule.py).
_REASONS_AND_REMEDIES = "As %(rule)s requires, we set out below our reasons and the remedies available to you."


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["gdpr", "vcdpa", "pipeda"])
async def test_a_denial_after_part_was_done_does_not_say_nothing_was(regime, language):
    t = translations(language)
    rule = {"rule": LOADED.in_language(language).remedies[regime].refusal_rule}
    # PIPEDA s. 8(7) governs access and correction, not a deletion: no rule is credited (hCM).
    after = (t.gettext(_REASONS_AND_REMEDIES) % rule if regime != "pipeda"
             else t.gettext("We set out below our reasons and the remedies available to you."))
    denial = {"reason_code": "other", "explanation": "The account is a company's."}
    for done in ({"acted_in": ["crm"]}, {"asked_in": ["surveys"]}):
        letter = await as_sent("denial", "erasure", {**denial, **done}, regime=regime, language=language)
        for part in both(letter):
            assert said(f"{t.gettext(_NO_FURTHER_ACTION)} {after}") in part, (
                done, regime, language)
            assert said(t.gettext(_NO_ACTION)) not in part, (done, regime, language)
    if language != "en":
        assert t.gettext(_NO_FURTHER_ACTION) != _NO_FURTHER_ACTION, "not translated"
    # Nothing done before it: no action at all, as before.
    untouched = await as_sent("denial", "erasure", denial, regime=regime, language=language)
    for part in both(untouched):
        assert said(f"{t.gettext(_NO_ACTION)} {after}") in part


# --- An appeal or a UK complaint is confirmed as such ----------------------------------------
# Its closing letters name it (above), but the e-mails asking the subject to confirm it, and the
# acknowledgement's last paragraph, said "Please confirm your data protection request", "Before we
# act on your request" and "we will close it without acting on it. You can make a new request":
# the subject, whose request was refused already, could not tell that what they confirm is their
# appeal (complaint), nor that left unconfirmed it is closed undecided and the refusal stands.

_CODE = {"code": "482913", "link": "https://privacy.example.test/verify?token=abc",
         "expires_at": "2026-02-07T14:05:00+00:00", "max_attempts": 5}
_CONFIRMING = {
    "verification": (_CODE, {
        "appeal": ["Please confirm your appeal (ref. %(ref)s)", "Please confirm your appeal", "Confirm my appeal",
                   "Before we consider your appeal of our decision on request %(id)s, we need to confirm that it "
                   "comes from you. This protects you: we never want to disclose or change your personal data at "
                   "the request of someone else.",
                   "If you did not make this appeal, you do not need to do anything: we will not consider it without "
                   "your confirmation. We would be grateful if you let us know at %(email)s."],
        "complaint": ["Please confirm your complaint (ref. %(ref)s)", "Please confirm your complaint",
                      "Confirm my complaint",
                      "Before we look into your complaint about our decision on request %(id)s, we need to confirm "
                      "that it comes from you. This protects you: we never want to disclose or change your personal "
                      "data at the request of someone else.",
                      "If you did not make this complaint, you do not need to do anything: we will not look into it "
                      "without your confirmation. We would be grateful if you let us know at %(email)s."]}),
    "reminder": (_CODE, {
        "appeal": ["Reminder: please confirm your appeal (ref. %(ref)s)", "Reminder: please confirm your appeal",
                   "Confirm my appeal",
                   "We have not yet been able to confirm your identity for the appeal above, so we cannot consider "
                   "it yet.",
                   "If you do not confirm your appeal by %(date)s, we will close it without deciding on it, and our "
                   "decision on request %(id)s will stand.",
                   "If you did not make this appeal, you do not need to do anything. We would be grateful if you let "
                   "us know at %(email)s."],
        "complaint": ["Reminder: please confirm your complaint (ref. %(ref)s)",
                      "Reminder: please confirm your complaint", "Confirm my complaint",
                      "We have not yet been able to confirm your identity for the complaint above, so we cannot look "
                      "into it yet.",
                      "If you do not confirm your complaint by %(date)s, we will close it without looking into it, "
                      "and our decision on request %(id)s will stand.",
                      "If you did not make this complaint, you do not need to do anything. We would be grateful if "
                      "you let us know at %(email)s."]}),
    "acknowledgement": ({"verification_required": True}, {
        "appeal": ["We have received your appeal (ref. %(ref)s)",
                   "To protect your personal data, we first need to confirm that this appeal comes from you. You "
                   "will receive a separate e-mail with a confirmation code and a link. We cannot consider your "
                   "appeal until you have confirmed it."],
        "complaint": ["We have received your complaint (ref. %(ref)s)",
                      "To protect your personal data, we first need to confirm that this complaint comes from you. "
                      "You will receive a separate e-mail with a confirmation code and a link. We cannot look into "
                      "your complaint until you have confirmed it."]}),
}
# The HTML letter's heading and button.
_HTML_ONLY = {"Please confirm your appeal", "Please confirm your complaint", "Confirm my appeal",
              "Confirm my complaint", "Reminder: please confirm your appeal", "Reminder: please confirm your complaint"}
# What the same letters say of a request (their messages, whole).
_A_REQUEST = ("Please confirm your request", "Confirm my request",
              "Before we act on your request, we need to confirm that it comes from you. This protects you: we never "
              "want to disclose or change your personal data at the request of someone else.",
              "We have not yet been able to confirm your identity for the request above, so we cannot act on it yet.",
              "If you do not confirm your request by %(date)s, we will close it without acting on it. You can make a "
              "new request at any time at %(url)s.",
              "If you did not make this request, you do not need to do anything: we will not act on it without your "
              "confirmation. We would be grateful if you let us know at %(email)s.",
              "If you did not make this request, you do not need to do anything. We would be grateful if you let us "
              "know at %(email)s.",
              "To protect your personal data, we first need to confirm that this request comes from you. You will "
              "receive a separate e-mail with a confirmation code and a link. We cannot act on your request until "
              "you have confirmed it.")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["vcdpa", "uk_gdpr"])
@pytest.mark.parametrize("purpose", list(_CONFIRMING))
async def test_an_appeal_or_complaint_is_confirmed_as_such(purpose, regime, language):
    params, said_of = _CONFIRMING[purpose]
    kind = "complaint" if regime == "uk_gdpr" else "appeal"
    t = translations(language)
    letter = await as_sent(purpose, "erasure", params, regime=regime, language=language,
                           details={"appeal_of": APPEAL_OF})
    until = long_datetime(datetime(2026, 2, 7, 14, 5, tzinfo=UTC), language, "Europe/Brussels")
    ids = {"ref": short_reference(REQUEST_ID), "id": short_reference(APPEAL_OF), "date": until,
           "email": "privacy@onetagger.com", "url": f"https://privacy.example.test/portal?lang={language}"}
    subject, *sentences = said_of[kind]
    assert said(letter.subject) == said(t.gettext(subject) % ids), (purpose, regime, language)  # a space for a no-break one
    if language != "en":
        assert all(t.gettext(s) != s for s in said_of[kind]), "not translated"
    # (the space a link's closing tag leaves before a full stop taken out)
    for i, part in enumerate(p.replace(" .", ".") for p in both(letter)):
        for sentence in sentences:
            if i == 1 or sentence not in _HTML_ONLY:
                assert said(t.gettext(sentence) % ids) in part, (purpose, regime, language, sentence)
        assert not any(said(t.gettext(old) % ids) in part for old in _A_REQUEST), (purpose, regime, language)
