"""Letters read as a data protection officer reads them, regime by regime: the recipients a lift
names, the time limit of a Canadian complaint, the period of a Colorado appeal, the rule a
Californian refusal rests on, the period a Brazilian acknowledgement attributes to the law. What tests/test_dpo_letters.py and
tests/test_dpo_refusals.py do not check. Each letter is built and rendered as the letter activity
does (tests/letters_as_sent.py), in every regime and language it applies to."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import activities.restrictions as restrictions
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date, translations
from schemas.requests import RequestType
from tests.letters_as_sent import (
    APPEAL_OF,
    LANGUAGES,
    LOADED,
    REFUSED,
    REGIMES,
    as_sent,
    both,
    erasure_with_kept,
    request_row,
)


def said(text: str) -> str:
    return " ".join(text.split())


# --- 1. Lifting a restriction names each recipient as the response did (Art. 19) --------------
# Art. 19: each recipient is told of a restriction, and so of its end, and the subject is told who
# they are on request. The response names a recipient by its identity where the policy knows it
# (CJEU C-154/21), else by the kind of service with the offer to name it
# (activities/letter_outcome.py). The lift letter named every recipient by its kind ("Google
# Analytics (Google)" where the response had said "Google Ireland Limited, ...") and made no offer.

_BY_KIND = "Where we name a recipient by the kind of service it provides, we will tell you who it is if you ask us."
_LIFT = {"reason": "The accuracy of your address is settled.", "lift_on": "2026-02-09", "notice_days": 0}


@pytest.fixture
def restricted_in(monkeypatch) -> Callable[..., None]:
    """The restriction on record (read from the database by `lift_letter_context`), in `systems`."""
    def given(*systems: str, held: dict[str, str] | None = None, under_way: bool = False) -> None:
        async def as_told(pool: object, request_id: str, notice_days: int) -> dict[str, Any]:
            return {"since": datetime(2025, 11, 4, 9, 30, tzinfo=UTC), "lift_effective_on": None,
                    "grounds": ["accuracy_contested"], "systems": list(systems), "held": held or {},
                    "held_in_force": [] if under_way else sorted(set((held or {}).values()))}
        monkeypatch.setattr(restrictions, "restriction_as_told", as_told)
    return given


def _restricted(system: str, recipient: str) -> dict[str, Any]:
    return {"system": system, "action": "restrict", "status": "done", "found": 1, "changed": 1, "recipient": recipient}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_the_lift_letter_names_each_recipient_as_the_response_named_it(restricted_in, regime, language):
    policy, t = LOADED.in_language(language), translations(language)
    google, crm = policy.recipients["google_analytics"], policy.recipients["communication_crm"]
    assert google.identity and crm.identity is None  # the shipped policy knows one of the two
    restricted_in("analytics", "crm")
    lift = await as_sent("restriction_lift", "restriction", _LIFT, regime=regime, language=language)
    response = await as_sent("response", "restriction", {"report": {"results": [
        _restricted("analytics", "google_analytics"), _restricted("crm", "communication_crm")]}},
        regime=regime, language=language)
    for letter in (lift, response):
        for part in both(letter):
            assert said(google.identity) in part and said(google.name) not in part, (regime, language)
            assert said(crm.name) in part
            assert said(t.gettext(_BY_KIND)) in part, (regime, language)
    restricted_in("analytics")  # every recipient named by who it is: nothing left to ask
    for part in both(await as_sent("restriction_lift", "restriction", _LIFT, regime=regime, language=language)):
        assert said(google.identity) in part and said(t.gettext(_BY_KIND)) not in part



_STILL_UNDER_WAY = ("Your restriction request %(reference)s is still being handled: your personal data %(where)s "
                    "stays restricted while it is. If it ends without restricting your data there, we will then lift "
                    "the restriction there too.")
_STILL_IN_FORCE = ("This does not end your restriction %(reference)s, which is still in force: your personal data "
                   "%(where)s stays restricted until we lift that restriction too, and we will tell you before we do.")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_lift_letter_says_what_another_restriction_in_force_keeps_restricted(restricted_in, language):
    """The subject's other restriction keeps analytics restricted (dsrflow/stores/restrictions_store.py
    `restricted_elsewhere`): the lift letter says so, naming that restriction, and does not name
    analytics' recipient among those told of an end; the CRM's still is."""
    policy, t = LOADED.in_language(language), translations(language)
    other = "5d0c1e2a-7b3f-4c4d-9e8f-0a1b2c3d4e5f"
    restricted_in("analytics", "crm", held={"analytics": other})
    for part in both(await as_sent("restriction_lift", "restriction", _LIFT, regime="gdpr", language=language)):
        sentence = t.gettext(_STILL_IN_FORCE) % {"reference": short_reference(other),
                                                 "where": policy.systems["analytics"].where}
        assert said(sentence) in said(html.unescape(part)), (language, part)
        assert said(policy.recipients["google_analytics"].identity) not in part
        assert said(policy.recipients["communication_crm"].name) in part


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_lift_letter_promises_no_later_lift_for_a_restriction_still_under_way(restricted_in, language):
    """The other restriction is still being handled (counted from its plan on, not yet in force): it may
    end without coming into force, and the held lift is then carried out after all
    (activities/held_lifts.py). The letter says so, and does not call it in force."""
    policy, t = LOADED.in_language(language), translations(language)
    other = "5d0c1e2a-7b3f-4c4d-9e8f-0a1b2c3d4e5f"
    restricted_in("analytics", "crm", held={"analytics": other}, under_way=True)
    values = {"reference": short_reference(other), "where": policy.systems["analytics"].where}
    for part in both(await as_sent("restriction_lift", "restriction", _LIFT, regime="gdpr", language=language)):
        assert said(t.gettext(_STILL_UNDER_WAY) % values) in said(html.unescape(part)), (language, part)
        assert said(t.gettext(_STILL_IN_FORCE) % values) not in said(html.unescape(part))

# --- 2. A Canadian refusal gives the time limit of the complaint (PIPEDA ss. 8(7), 11(3)) ------
# A refusal sets out "any recourse that they may have" (s. 8(7)); a complaint about a refusal must
# be filed within six months of it, or any longer period the Commissioner allows (s. 11(3)). The
# letters named the complaint without its time limit, which a subject who waits loses.

_SIX_MONTHS = {"en": "within six months", "nl": "binnen zes maanden", "fr": "dans les six mois",
               "de": "innerhalb von sechs Monaten"}
_PIPEDA_REFUSALS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "denial": ("denial", "access", {"reason_code": "other", "explanation": "The file concerns another person."}),
    "closed_unverified": ("closed_unverified", "access", {"expired_at": "2026-02-07T10:00:00+00:00"}),
    "cancellation": ("cancellation", "erasure", {"reason": "A duplicate of an earlier request.", "withdrawn": False}),
    "response-kept": ("response", "erasure", erasure_with_kept()),
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("case", sorted(_PIPEDA_REFUSALS))
async def test_a_pipeda_refusal_gives_the_time_limit_of_a_complaint(case, language):
    purpose, request_type, params = _PIPEDA_REFUSALS[case]
    letter = await as_sent(purpose, request_type, params, regime="pipeda", language=language, country="CA")
    for part in both(letter):
        assert _SIX_MONTHS[language] in part and "11(3)" in part, (case, language)


# --- 2b. A Colorado refusal promises the appeal's decision as the law times it (C.R.S. § 6-1-1306(3)(b))
# The decision on an appeal is due within 45 days, which the controller may extend by 60, telling
# the consumer within the 45 (the VCDPA's and the CTDPA's 60 days allow none). The workflow accepts
# that extension (an appeal's deadline: dsrflow/domain/deadlines.py); the refusal's appeal paragraph
# promised the decision "within 45 days" all the same.

_APPEAL_EXTENSION = ("In the cases the law sets out, we may extend this period once, by up to %(count)s further day; "
                     "if we do, we will tell you so, with our reasons, within the first %(days)s days.",
                     "In the cases the law sets out, we may extend this period once, by up to %(count)s further days; "
                     "if we do, we will tell you so, with our reasons, within the first %(days)s days.")
_REFUSALS = {**_PIPEDA_REFUSALS, "response-objection-refused": ("response", "objection", REFUSED)}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("case", sorted(_REFUSALS))
@pytest.mark.parametrize("regime", ["cpa", "vcdpa", "ctdpa"])
async def test_a_refusal_under_a_state_law_gives_the_appeals_period_with_its_extension(regime, case, language):
    purpose, request_type, params = _REFUSALS[case]
    letter = await as_sent(purpose, request_type, params, regime=regime, language=language, country="US")
    t = translations(language)
    extension = t.ngettext(*_APPEAL_EXTENSION, 60) % {"count": 60, "days": 45}
    if language != "en":
        assert extension != _APPEAL_EXTENSION[1] % {"count": 60, "days": 45}, "not translated"
    for part in both(letter):
        assert t.gettext("Your right to appeal") in part
        assert (said(extension) in part) is (regime == "cpa"), (regime, case, language)


# --- 3. A Californian refusal to correct cites the rule on correction (CCPA regulations) ------
# A business that denies a request to correct explains the basis of the denial (Cal. Code Regs.
# tit. 11, § 7023), as it does for a request to delete (§ 7022) or to know (§ 7024). The refusal's
# rule cited §§ 7022 and 7024 alone, also in a refusal to correct.

@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("purpose", ["denial", "closed_unverified"])
async def test_a_ccpa_refusal_to_correct_cites_the_regulation_on_correction(purpose, language):
    params = ({"reason_code": "other", "explanation": "The address you gave is the one we hold."}
              if purpose == "denial" else {"expired_at": "2026-02-07T10:00:00+00:00"})
    letter = await as_sent(purpose, "rectification", params, regime="ccpa", language=language, country="US")
    for part in both(letter):
        assert "7023" in part and "7022" in part and "7024" in part, (purpose, language)


# --- 4. A Brazilian acknowledgement says what the LGPD's 15 days are (LGPD Art. 18, 19) -------
# The LGPD sets 15 days for access (Art. 19, II); the other rights are to be met at once where
# possible, and otherwise the subject told what prevents it (Art. 18, §§ 3 and 4). dsrflow answers
# every LGPD request within 15 days (dsrflow/domain/deadlines.py); the acknowledgement of an
# erasure said that the LGPD obliges it to, and that the law allows no extension of a period the
# law does not set. The access request's own period is cited where it is set, Art. 19, II, as the
# other requests' sentence cites it (it cited nothing: hCM).

_FIFTEEN = "Under the LGPD, we must answer within 15 days of receiving your request (Art. 19, II LGPD)."
_NO_EXTENSION = "The law allows no extension of this period."
_AT_ONCE = ("The LGPD asks us to act on your request at once where we can and, where we cannot, to tell you what "
            "prevents it (Art. 18, §§ 3 and 4 LGPD).")
_ACCESS_DAYS = ("We apply to every request the period the LGPD sets for access to personal data, 15 days from "
                "receipt (Art. 19, II LGPD), and do not extend it.")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("request_type", [kind.value for kind in RequestType])
async def test_an_lgpd_acknowledgement_gives_its_15_days_as_the_law_of_access_only(request_type, language):
    letter = await as_sent("acknowledgement", request_type, {"verification_required": False}, regime="lgpd",
                           language=language, country="BR")
    t = translations(language)
    if language != "en":
        assert t.gettext(_AT_ONCE) != _AT_ONCE and t.gettext(_ACCESS_DAYS) != _ACCESS_DAYS, "not translated"
        assert t.gettext(_FIFTEEN) != _FIFTEEN and "19" in t.gettext(_FIFTEEN), "not translated"
    due = long_date(request_row("lgpd", request_type, language)["current_due_date"], language)
    access = request_type == "access"
    for part in both(letter):
        assert due in part
        assert (said(t.gettext(_FIFTEEN)) in part) is access and (said(t.gettext(_NO_EXTENSION)) in part) is access
        assert (said(t.gettext(_AT_ONCE)) in part) is not access, (request_type, language)
        assert (said(t.gettext(_ACCESS_DAYS)) in part) is not access


# --- 5. A Colorado appeal granted still names the Attorney General (C.R.S. § 6-1-1306(3)) -------
# The CPA has the controller tell the consumer they can contact the Attorney General if they have
# concerns about the result of the appeal, whatever it is; an appeal that now did all that was
# asked carried no remedies, so its letter named no one (hCM). The VCDPA and the CTDPA name the
# Attorney General where the appeal is denied, as the UK GDPR names the Commissioner after any
# complaint's outcome (tests/test_uk_complaint_letters.py).

_GRANTED = {"report": {"results": [{"system": "crm", "action": "erase", "status": "done", "found": 2, "changed": 2,
                                    "datasets": {"contacts": {"found": 2, "changed": 2, "deleted": 2}}}]}}


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("regime", ["cpa", "vcdpa", "ctdpa"])
async def test_a_granted_appeal_names_the_attorney_general_under_the_cpa_alone(regime, language):
    letter = await as_sent("response", "erasure", _GRANTED, regime=regime, language=language, country="US",
                           details={"appeal_of": APPEAL_OF})
    remedies = LOADED.in_language(language).remedies_for(regime, "US")
    assert remedies.appeal is not None and remedies.authority is not None
    after = said(remedies.appeal.complaint_after_appeal or "")
    for part in both(letter):
        assert (after in said(part)) is (regime == "cpa"), (regime, language)
        assert (remedies.authority.name in part) is (regime == "cpa")
    if regime == "cpa" and language == "en":
        assert "if you have concerns about its result, you can contact the Attorney General of Colorado" in after
