"""What a DPO reading the appeal, complaint and extension letters as sent found them to say wrongly
or vaguely (the letter activity's own context, our catalogs and the policy's translations, every
language): an extension notice under a law counted in days names the law, its one extension and
where it allows it (PIPEDA's in s. 8(4)), and a CPA appeal's extension speaks of the appeal; an
appeal's acknowledgement and decision say they are about an appeal; a decision maintained on
appeal, or on a UK complaint, no longer says we took no action on a request we had acted on in
part; a French letter names PIPEDA as its French version does (LPRPDE)."""

from __future__ import annotations

from datetime import date

import pytest

from dsrflow.domain.deadlines import compute_deadline
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date, translations
from tests.letters_as_sent import APPEAL_OF, LANGUAGES, LOADED, REQUEST_ID, as_sent, both, erasure_with_kept

_VAGUE = ("The law that applies to your request allows us to extend the period for answering it where this is "
          "necessary.")
_ON_REQUEST = ("Under %(law)s, we may extend the period for answering your request once, by up to %(days)d further "
               "days, in the cases the law sets out (%(provision)s).")
_LAWS = {"ccpa": ("the California Consumer Privacy Act", "Cal. Civ. Code § 1798.130(a)(2)", 45),
         "vcdpa": ("the Virginia Consumer Data Protection Act", "Va. Code § 59.1-577", 45),
         "ctdpa": ("the Connecticut Data Privacy Act", "Conn. Gen. Stat. § 42-518", 45),
         "cpa": ("the Colorado Privacy Act", "C.R.S. § 6-1-1306(2)", 45),
         "pipeda": ("the Personal Information Protection and Electronic Documents Act (PIPEDA)",
                    "PIPEDA, s. 8(4)", 30)}


def _said(text: str) -> str:
    return " ".join(text.split())


def _appeal_row(regime: str) -> dict:
    deadline = compute_deadline(regime, date(2026, 1, 31), appeal=True)
    return {"details": {"appeal_of": APPEAL_OF}, "due_date": deadline.due_date,
            "extended_due_date": deadline.extended_due_date, "current_due_date": deadline.due_date}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", sorted(_LAWS))
async def test_an_extension_notice_names_the_law_its_days_and_where_it_allows_them(regime, language):
    """Before, every law but the GDPR's read "the law that applies to your request allows us to
    extend ..." (no law, no days, no provision), and PIPEDA's extension is s. 8(4), not 8(3)."""
    t = translations(language)
    law, provision, days = _LAWS[regime]
    # PIPEDA's s. 8(4) extends an access request's period (another's: the test below).
    letter = await as_sent("extension", "access" if regime == "pipeda" else "erasure",
                           {"reason": "Our CRM migration.", "new_due_date": "2026-04-30"},
                           regime=regime, language=language, country="CA" if regime == "pipeda" else "US")
    rule = t.gettext(_ON_REQUEST) % {"law": t.gettext(law), "days": days, "provision": t.gettext(provision)}
    for part in both(letter):
        assert _said(rule) in part and t.gettext(_VAGUE) not in part
    if regime == "pipeda" and language == "fr":
        assert "LPRPDE, par. 8(4)" in letter.text


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_cpa_appeals_extension_speaks_of_the_appeal_and_its_provision(language):
    """C.R.S. § 6-1-1306(3)(b): 45 days to decide an appeal, extendable by 60 with notice and
    reasons. Before, the notice spoke of "your request" and gave no law."""
    t = translations(language)
    row = _appeal_row("cpa")
    letter = await as_sent("extension", "erasure", {"reason": "Many appeals at once.",
                                                    "new_due_date": str(row["extended_due_date"])},
                           regime="cpa", language=language, country="US", **row)
    assert letter.subject == t.gettext("We need more time to decide on your appeal (ref. %(ref)s)") % {
        "ref": short_reference(REQUEST_ID)}
    rule = t.gettext("Under %(law)s, we may extend the period for deciding on your appeal once, by up to %(days)d "
                     "further days, in the cases the law sets out (%(provision)s).") % {
        "law": t.gettext("the Colorado Privacy Act"), "days": 60, "provision": "C.R.S. § 6-1-1306(3)(b)"}
    now = t.gettext("We will now tell you our decision on your appeal by %(date)s at the latest (instead of "
                    "%(previous_date)s). We are sorry for the delay, and we will decide sooner if we can.") % {
        "date": long_date(row["extended_due_date"], language), "previous_date": long_date(row["due_date"], language)}
    for part in both(letter):
        assert _said(rule) in part and _said(now) in part and t.gettext(_VAGUE) not in part


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["vcdpa", "ctdpa", "cpa"])
async def test_an_appeal_is_acknowledged_and_decided_as_an_appeal(regime, language):
    """Before, an appeal's acknowledgement thanked the subject "for your request" under the subject
    line of a new request, and its decision came as "Our decision on your data protection request"."""
    t = translations(language)
    row = _appeal_row(regime)
    ref = short_reference(REQUEST_ID)
    ack = await as_sent("acknowledgement", "erasure", {"verification_required": False}, regime=regime,
                        language=language, country="US", **row)
    assert ack.subject == t.gettext("We have received your appeal (ref. %(ref)s)") % {"ref": ref}
    thanks = t.gettext("Thank you for your appeal of our decision on request %(id)s.") % {
        "id": short_reference(APPEAL_OF)}
    for part in both(ack):
        assert _said(thanks) in part
        assert t.gettext("Thank you for your request.") not in part
    for purpose, params in (("denial", {"reason_code": "other", "explanation": "Still needed.", "acted_in": [],
                                        "asked_in": []}), ("response", erasure_with_kept())):
        decided = await as_sent(purpose, "erasure", params, regime=regime, language=language, country="US", **row)
        assert decided.subject == t.gettext("Our decision on your appeal (ref. %(ref)s)") % {"ref": ref}


@pytest.mark.parametrize("regime", ["vcdpa", "ctdpa", "cpa", "uk_gdpr"])
async def test_a_decision_maintained_on_appeal_does_not_say_we_took_no_action(regime):
    """An appeal (or a UK complaint) may be about a refusal in part: records kept, an objection
    overridden. Its denial said "we maintain our decision not to take action on your request",
    untrue of a request we had acted on; it now maintains "that decision"."""
    letter = await as_sent("denial", "erasure", {"reason_code": "other", "explanation": "The invoices stay.",
                                                 "acted_in": [], "asked_in": []},
                           regime=regime, country="GB" if regime == "uk_gdpr" else "US", **_appeal_row(regime))
    for part in both(letter):
        assert "we maintain that decision" in part and "not to take action" not in part


@pytest.mark.parametrize("purpose", ["denial", "extension"])
async def test_a_french_pipeda_letter_names_the_act_as_its_french_version_does(purpose):
    """The French version of the Act is the LPRPDE: the acknowledgement said so, the remedies
    (policy/connexeon.fr.yaml) still wrote "PIPEDA" beside "la Loi sur la protection des
    renseignements personnels et les documents électroniques"."""
    params = ({"reason_code": "other", "explanation": "X.", "acted_in": [], "asked_in": []} if purpose == "denial"
              else {"reason": "X.", "new_due_date": "2026-04-30"})
    letter = await as_sent(purpose, "access", params, regime="pipeda", language="fr", country="CA")
    for part in both(letter):
        assert "LPRPDE" in part and "PIPEDA" not in part
    assert "PIPEDA" in LOADED.policy.remedies_for("pipeda", "CA").complaint  # the English keeps its name


async def test_a_german_complaint_paragraph_says_receipt_once():
    """German: "Wir bestätigen den Eingang Ihrer Beschwerde innerhalb von 30 Tagen nach ihrem Eingang"
    said receipt twice in one clause."""
    letter = await as_sent("denial", "erasure", {"reason_code": "other", "explanation": "X.", "acted_in": [],
                                                 "asked_in": []}, regime="uk_gdpr", language="de", country="GB")
    for part in both(letter):
        assert "den Erhalt Ihrer Beschwerde innerhalb von 30 Tagen nach ihrem Eingang" in part
        assert "den Eingang Ihrer Beschwerde" not in part


# PIPEDA s. 8(3) sets the period of an access request (Schedule 1, clause 4.9) alone: the
# acknowledgement of an erasure said "we must answer within 30 days", a duty the Act does not set.
_ACCESS_PERIOD = {"en": "a request for access to personal information must be answered within 30 days of its receipt "
                        "(PIPEDA, s. 8(3)). We apply this period to every request, yours included.",
                  "fr": "il doit être répondu à une demande d'accès à des renseignements personnels dans les 30 jours "
                        "suivant sa réception (LPRPDE, par. 8(3)). Nous appliquons ce délai à toute demande, y compris "
                        "la vôtre."}


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("request_type", ["erasure", "restriction", "objection", "portability"])
async def test_pipeda_sets_the_period_of_an_access_request_and_we_apply_it_to_others(request_type, language):
    other = await as_sent("acknowledgement", request_type, {"verification_required": True}, regime="pipeda",
                          language=language)
    access = await as_sent("acknowledgement", "access", {"verification_required": True}, regime="pipeda",
                           language=language)
    must = {"en": "we must answer", "fr": "nous devons vous répondre"}[language]
    for part in both(other):
        assert _ACCESS_PERIOD[language] in part, part
        assert must not in part
    for part in both(access):
        assert must in part and _ACCESS_PERIOD[language] not in part


_ACCESS_EXTENSION = {"en": "the period for answering a request for access to personal information, which we apply to "
                           "every request, may be extended once, by up to 30 further days, in the cases the law sets "
                           "out (PIPEDA, s. 8(4))",
                     "fr": "le délai de réponse à une demande d'accès à des renseignements personnels, que nous "
                           "appliquons à toute demande, peut être prolongé une fois, de 30 jours au plus, dans les cas "
                           "prévus par la loi (LPRPDE, par. 8(4))"}


@pytest.mark.parametrize("language", ["en", "fr"])
async def test_pipedas_extension_of_an_access_request_is_the_rule_we_apply_to_others(language):
    """Its notice of extension said "we may extend the period for answering your request" of an
    erasure, as if s. 8(4) extended it."""
    params = {"reason": "Twelve systems.", "new_due_date": "2026-04-01"}
    erasure = await as_sent("extension", "erasure", params, regime="pipeda", language=language)
    access = await as_sent("extension", "access", params, regime="pipeda", language=language)
    ours = {"en": "we may extend the period for answering your request", "fr": "nous pouvons, dans les cas"}[language]
    for part in both(erasure):
        assert _ACCESS_EXTENSION[language] in part and ours not in part, part
    for part in both(access):
        assert ours in part and _ACCESS_EXTENSION[language] not in part


# The US state laws set the period of the requests they grant (access, a copy, correction,
# deletion), not of a restriction or an objection to legitimate interests, which our privacy
# policy grants: those letters said "we must answer within 45 days" and "we may extend the period
# for answering your request" as if the Act did (hCM; activities/citations.py `law_grants`).
_RIGHTS_PERIOD = ("Under %(law)s, a request to exercise one of the rights it grants must be answered within %(days)d "
                  "days of its receipt (%(provision)s). We apply this period to every request, yours included.")
_RIGHTS_EXTENSION = ("Under %(law)s, the period for answering a request to exercise one of the rights it grants, which "
                     "we apply to every request, may be extended once, by up to %(days)d further days, in the cases "
                     "the law sets out (%(provision)s).")
_VIRGINIA = {"law": "the Virginia Consumer Data Protection Act", "days": 45, "provision": "Va. Code § 59.1-577"}


@pytest.mark.parametrize("language", ["en", "nl"])
@pytest.mark.parametrize("request_type", ["restriction", "objection", "erasure"])
async def test_a_us_law_sets_the_period_of_the_rights_it_grants_and_we_apply_it_to_others(request_type, language):
    t = translations(language)
    if language != "en":
        assert t.gettext(_RIGHTS_PERIOD) != _RIGHTS_PERIOD and t.gettext(_RIGHTS_EXTENSION) != _RIGHTS_EXTENSION
    words = {**_VIRGINIA, "law": t.gettext(_VIRGINIA["law"])}
    period, extension = t.gettext(_RIGHTS_PERIOD) % words, t.gettext(_RIGHTS_EXTENSION) % words
    acknowledgement = await as_sent("acknowledgement", request_type, {"verification_required": False},
                                    regime="vcdpa", language=language, country="US")
    notice = await as_sent("extension", request_type, {"reason": "Twelve systems.", "new_due_date": "2026-04-30"},
                           regime="vcdpa", language=language, country="US")
    granted = request_type == "erasure"
    for part in both(acknowledgement):
        assert (period in part) is not granted, part
    for part in both(notice):
        assert (extension in part) is not granted, part
    if language == "en":
        assert ("we must answer within 45 days" in both(acknowledgement)[0]) is granted
        assert ("we may extend the period for answering your request" in both(notice)[0]) is granted


# Every letter a subject can receive along an appeal (VCDPA, CTDPA, CPA) or a UK complaint
# (DPA 2018 s. 164A), now that one waits for compliance before anything it asks is done, read as a
# DPO reads them. The appeal (or complaint) was received on 31 January 2026.
_RECONSIDERS = {"vcdpa": "US", "ctdpa": "US", "cpa": "US", "uk_gdpr": "GB"}
# The law's days from receipt: the statutes' for an appeal, our target for a complaint's outcome.
_DUE = {"vcdpa": date(2026, 4, 1), "ctdpa": date(2026, 4, 1), "cpa": date(2026, 3, 17), "uk_gdpr": date(2026, 3, 2)}
_CODE = {"code": "482913", "link": "https://privacy.example.test/v", "expires_at": "2026-02-07T14:05:00+00:00",
         "max_attempts": 5}
_CLOSED = {"acted_in": [], "asked_in": []}
_STILL_REFUSED = "The records are needed to defend a pending claim."
_WAITING = {  # what a subject hears before compliance has decided: nothing is done yet
    "acknowledgement": {"verification_required": True},
    "verification": _CODE,
    "reminder": _CODE,
    "closed_unverified": {"expired_at": "2026-02-07T14:05:00+00:00"},
    "cancellation": {"withdrawn": True, "reason": "Withdrawn by the subject by e-mail."} | _CLOSED,
    "staff_cancellation": {"withdrawn": False, "reason": "A duplicate of appeal 7QK2."} | _CLOSED,
}
_AGAIN = {False: "If you still want us to reconsider our decision on request %(id)s, you can appeal again: reply to "
                 "this e-mail or write to %(email)s, saying that you appeal our decision on request %(id)s. We may "
                 "again ask you to confirm your identity.",
          True: "If you still want to complain about our decision on request %(id)s, you can complain again: reply to "
                "this e-mail or write to %(email)s, quoting request %(id)s. We may again ask you to confirm your "
                "identity."}
_NEW_REQUEST = ("If you still want to exercise your rights, you are welcome to make a new request at any time at "
                "%(url)s. We may again ask you to confirm your identity.")
_ERASED = {"report": {"results": [{"system": "crm", "action": "erase", "status": "done", "found": 1, "changed": 1}]}}
_OVERRIDDEN_AGAIN = {"report": {"results": []},
                     "decision": {"compelling_grounds": True, "explanation": "Fraud monitoring is required."}}


def _all_kept() -> dict:
    """An erasure approved on appeal whose every record a hold keeps: nothing erased."""
    crm = erasure_with_kept()["report"]["results"][1]
    return {"report": {"results": [crm]}}


def _appeal_of(regime: str, **details: str) -> dict:
    return {**_appeal_row(regime), "country": _RECONSIDERS[regime], "verified_at": "2026-01-31",
            "details": {"appeal_of": APPEAL_OF, **details}}


def _remedy(regime: str, language: str, decided: bool) -> tuple[str, str]:
    """The authority a decided (or undecided) appeal or complaint names, and its paragraph."""
    remedies = LOADED.in_language(language).remedies_for(regime, _RECONSIDERS[regime])
    assert remedies.appeal is not None and remedies.authority is not None
    said = remedies.appeal.complaint_after_appeal if decided else remedies.appeal.complaint_without_appeal
    assert said is not None
    return remedies.authority.name, _said(said)


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("regime", sorted(_RECONSIDERS))
async def test_every_letter_before_compliance_decides_names_the_refused_request_and_does_nothing(regime, language):
    """The acknowledgement, the confirmation e-mails, a close unverified, a withdrawal and a close
    by staff: each names the appeal (complaint) and the request it is about, promises the law's
    date, and none says the request is done; a close names the authority to turn to, a close
    unverified how to appeal (complain) again, a withdrawal no authority but that nothing was
    changed and the refusal stands (before: neither)."""
    t = translations(language)
    complaint = regime == "uk_gdpr"
    about = t.gettext("Complaint about" if complaint else "Appeal of")
    named = t.gettext("request %(id)s") % {"id": short_reference(APPEAL_OF)}
    for purpose, params in _WAITING.items():
        letter = await as_sent("cancellation" if purpose == "staff_cancellation" else purpose, "erasure", params,
                               regime=regime, language=language, **_appeal_of(regime))
        for part in both(letter):
            assert about in part and named in part, (purpose, part)
            assert t.gettext("We have now completed your request.") not in part, purpose
            if purpose == "acknowledgement":
                assert long_date(_DUE[regime], language) in part
            if purpose in ("closed_unverified", "staff_cancellation"):
                authority, paragraph = _remedy(regime, language, decided=False)
                assert authority in part and paragraph in part, (purpose, part)
            if purpose == "closed_unverified":  # before: "make a new request", the form of a new request
                assert t.gettext(_AGAIN[complaint]) % {"id": short_reference(APPEAL_OF),
                                                       "email": "privacy@onetagger.com"} in part.replace(" ,", ",")
                assert t.gettext(_NEW_REQUEST).split("%(url)s")[0] not in part
            if purpose == "cancellation":  # before, a withdrawn appeal left unsaid that the refusal stands
                assert t.gettext("Your right to complain to %(authority)s") % {"authority": ""} not in part
                assert t.gettext(f"Nothing was changed in our systems in response to your "
                                 f"{'complaint' if complaint else 'appeal'}, and our decision on request %(id)s "
                                 f"stands.") % {"id": short_reference(APPEAL_OF)} in part, part


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("regime", sorted(_RECONSIDERS))
async def test_a_refusal_maintained_gives_the_reasons_and_the_attorney_general_or_commissioner(regime, language):
    """Compliance refuses the appeal (complaint) again: the letter says so, gives the reasons and
    how to contact the Attorney General (VCDPA § 59.1-577(C), CTDPA § 42-518(d), CPA
    § 6-1-1306(3)(b)) or complain to the Information Commissioner (DPA 2018 s. 165)."""
    t = translations(language)
    letter = await as_sent("denial", "erasure", {"reason_code": "other", "explanation": _STILL_REFUSED} | _CLOSED,
                           regime=regime, language=language, **_appeal_of(regime))
    authority, paragraph = _remedy(regime, language, decided=True)
    for part in both(letter):
        assert t.gettext("Our reasons") in part and _STILL_REFUSED in part
        assert authority in part and paragraph in part
        assert t.gettext("We have now completed your request.") not in part


_IDENTITY_AGAIN = {
    False: "We could not establish that this appeal comes from you, and we cannot decide on an appeal unless we can "
           "identify you. If you can give us additional information that allows us to identify you, you can appeal "
           "again: write to %(email)s, saying that you appeal our decision on request %(id)s, and include that "
           "information.",
    True: "We could not establish that this complaint comes from you, and we cannot look into a complaint unless we "
          "can identify you. If you can give us additional information that allows us to identify you, you can "
          "complain again: write to %(email)s, quoting request %(id)s, and include that information."}


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("regime", sorted(_RECONSIDERS))
async def test_an_appeal_refused_for_want_of_identity_says_how_to_appeal_again(regime, language):
    """Before, it said "we could not establish that the request comes from ..." and invited a new
    request at the portal, whose form makes a new request, not an appeal of the refusal."""
    t = translations(language)
    letter = await as_sent("denial", "erasure", {"reason_code": "identity_not_established",
                                                 "explanation": "The address differs."} | _CLOSED,
                           regime=regime, language=language, **_appeal_of(regime))
    again = t.gettext(_IDENTITY_AGAIN[regime == "uk_gdpr"]) % {"email": "privacy@onetagger.com",
                                                              "id": short_reference(APPEAL_OF)}
    new_request = t.gettext("If you can give us additional information that allows us to identify you, you are "
                            "welcome to make a new request at %(url)s or to write to %(email)s.").split("%(url)s")[0]
    for part in both(letter):
        assert again in part.replace(" ,", ","), part
        assert new_request not in part


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("regime", sorted(_RECONSIDERS))
async def test_an_appeal_reconsidered_and_still_not_done_does_not_say_what_we_have_now_done(regime, language):
    """An objection overridden again on compelling grounds, or an erasure approved on appeal whose
    every record the law or a claim keeps: nothing was done. Before, the letter opened "we have
    reconsidered that decision, and what we have now done is set out below", as if it had been."""
    t = translations(language)
    ref = short_reference(APPEAL_OF)
    if regime == "uk_gdpr":
        done, not_done = (t.gettext(f"This is the outcome of your complaint about our decision on request %(id)s: we "
                                    f"have looked into it and reconsidered that decision, {rest}") % {"id": ref}
                          for rest in ("and what we have now done is set out below.",
                                       "but we have not done what you asked, for the reasons set out below."))
    else:
        done, not_done = (t.gettext(f"This is our decision on your appeal of our decision on request %(id)s: we have "
                                    f"reconsidered that decision, {rest}") % {"id": ref}
                          for rest in ("and what we have now done is set out below.",
                                       "but we have not done what you asked, for the reasons set out below."))
    authority, paragraph = _remedy(regime, language, decided=True)
    overridden = await as_sent("response", "objection", _OVERRIDDEN_AGAIN, regime=regime, language=language,
                               **_appeal_of(regime, objection_scope="legitimate_interests"))
    kept = await as_sent("response", "erasure", _all_kept(), regime=regime, language=language, **_appeal_of(regime))
    for letter in (overridden, kept):
        for part in both(letter):
            assert _said(not_done) in part and _said(done) not in part, part
            assert authority in part and paragraph in part
    erased = await as_sent("response", "erasure", _ERASED, regime=regime, language=language, **_appeal_of(regime))
    for part in both(erased):
        assert _said(done) in part and t.gettext("We have now completed your request.") in part


@pytest.mark.parametrize("regime", sorted(_RECONSIDERS))
@pytest.mark.parametrize("stage", ["changes", "release"])
async def test_compliance_is_told_an_approval_reconsiders_its_own_refusal(regime, stage):
    """The alert asking compliance to approve an appeal (complaint) read as any request's ("The
    request waits for compliance's approval ..."): nothing said it was a refusal of ours to reconsider,
    nor what approving or denying it does."""
    facts = {"kind": "needs_attention", "days_left": 50, "facts": {"what": "approval", "stage": stage}}
    kind = "complaint about" if regime == "uk_gdpr" else "appeal of"
    told = (f"This is the subject's {kind} request {short_reference(APPEAL_OF)}, which we refused: approving it "
            "carries out what that request asked; denying it maintains the refusal, and its letter gives the subject "
            "the reasons.")
    alert = await as_sent("staff_alert", "erasure", facts, regime=regime, **_appeal_of(regime))
    assert told in _said(alert.text)
    request = await as_sent("staff_alert", "erasure", facts, regime=regime, country=_RECONSIDERS[regime])
    assert "which we refused" not in request.text
