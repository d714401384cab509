"""A statute of another country is no legal obligation under the UK GDPR, whose Art. 6(1)(c) and
17(3)(b) take one under domestic law only: Connexeon BV keeps its billing records because Belgian law
requires it, which the GDPR counts (Member State law) and the UK GDPR does not. A UK GDPR erasure's
letter said "Legal basis: Art. 17(3)(b) UK GDPR: compliance with a legal obligation". It now says
the basis the privacy policy gives for foreign laws (1.3 Payments, "in our legitimate interests to
comply with foreign laws as per Art. 6.1.f"), that the subject may object (Art. 21(1)) and complain
to the Information Commissioner (the policy's remedies). The records are kept all the same. Under
the GDPR nothing changes. The evidence pack and the console's request page give the same basis.
Pure rendering, as the letter activity builds each letter (tests/letters_as_sent.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from activities.citations import citation
from api.read_models.evidence import _as_told
from dsrflow.i18n import Translator, long_date, worded, wording_of
from tests.letters_as_sent import LANGUAGES, LOADED, as_sent, both, erasure_with_kept, kept_records

FIRST = "We could not erase the data listed below, because we must keep it to comply with %(law)s."
WITH_CLAIMS = ("We could not erase the data listed below, because we must keep it to comply with %(law)s or because "
               "we need it for the establishment, exercise or defence of legal claims%(citation)s.")
UK_LAW_ONLY = "Under the UK GDPR, only UK law can make keeping data a legal obligation of ours."
WHY = ("Our legal basis for keeping the data we must keep to comply with %(law)s is therefore our legitimate "
       "interests in complying with it%(citation)s, as our privacy policy says.")
BASIS = "%(citation)s: our legitimate interests in complying with %(law)s"
OBJECT = ("You can object to our keeping the data we must keep to comply with %(law)s, since we keep it in our "
          "legitimate interests%(citation)s. To object, write to %(email)s or make a new request at %(url)s, and tell "
          "us why, in your particular situation, we should not keep it. We will then erase that data, unless we can "
          "show compelling legitimate grounds for keeping it that override your interests, rights and freedoms. We "
          "will tell you what we decided, and why.")
COMPLAIN = "You can also complain to %(authority)s, as set out below."
# The closing letter's statement of what the statute keeps: under the UK GDPR we keep it to comply
# with Belgian law, said before the sentence that only UK law binds us; not "the law requires us".
KEPT_TO_COMPLY = ("We had kept some of your records %(where)s to comply with %(foreign)s (%(law)s): we keep them, "
                  "restricted and reduced to what that law needs, until %(date)s, and then delete them.")
KEPT_AS_REQUIRED = ("We had kept some of your records %(where)s because the law requires us to (%(law)s): we keep "
                    "them, restricted and reduced to what the law needs, until %(date)s, and then delete them.")


def _billing_only() -> dict[str, Any]:
    """The erasure of tests/letters_as_sent.py keeping two invoices under the Belgian statute."""
    report = erasure_with_kept()
    report["report"]["results"] = report["report"]["results"][:1]
    return report


def _said(t: Translator, message: str, **words: str) -> str:
    return " ".join((t.gettext(message) % words).split())


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_uk_letter_keeps_belgian_records_on_legitimate_interests_and_offers_the_objection(language):
    letter = await as_sent("response", "erasure", _billing_only(), regime="uk_gdpr", language=language)
    t = worded(language, wording_of("uk_gdpr"))
    policy = LOADED.in_language(language)
    law = policy.statutory_holds["be_accounting"].foreign_law
    assert law is not None
    portal = f"https://privacy.example.test/portal?lang={language}"
    for part in both(letter):
        part = part.replace(f"{portal} ,", f"{portal},")  # the HTML's link, its tags taken out
        assert _said(t, FIRST, law=law) in part
        assert _said(t, UK_LAW_ONLY) in part
        assert _said(t, WHY, law=law, citation=f" ({citation('uk_gdpr', '6(1)(f)', t)})") in part
        assert _said(t, BASIS, law=law, citation=citation("uk_gdpr", "6(1)(f)", t)) in part
        assert _said(t, OBJECT, law=law, citation=f" ({citation('uk_gdpr', '21(1)', t)})",
                     email="privacy@onetagger.com", url=portal) in part
        # The remedies' own words: the authority the policy names, its details set out below.
        assert _said(t, COMPLAIN, authority=policy.remedies["uk_gdpr"].authority_title) in part
        assert policy.remedies["uk_gdpr"].authority.name in part  # type: ignore[union-attr]
        # No obligation the UK GDPR does not count, and still kept until its period ends.
        assert citation("uk_gdpr", "17(3)(b)", t) not in part
        assert t.gettext("compliance with a legal obligation") not in part
        assert " ".join(policy.statutory_holds["be_accounting"].law.split()) in part
        assert t.gettext("Kept until") in part


async def test_the_uk_letter_in_english_reads_as_a_dpo_wrote_it():
    letter = await as_sent("response", "erasure", _billing_only(), regime="uk_gdpr")
    for part in both(letter):
        assert ("We could not erase the data listed below, because we must keep it to comply with Belgian law. "
                "Under the UK GDPR, only UK law can make keeping data a legal obligation of ours. Our legal basis "
                "for keeping the data we must keep to comply with Belgian law is therefore our legitimate interests "
                "in complying with it (Art. 6(1)(f) UK GDPR), as our privacy policy says.") in part
        assert "Legal basis: Art. 6(1)(f) UK GDPR: our legitimate interests in complying with Belgian law" in part
        assert "You can object to our keeping the data we must keep to comply with Belgian law, since we keep it in " \
               "our legitimate interests (Art. 21(1) UK GDPR)." in part
        assert "You can also complain to the Information Commissioner, as set out below." in part
        assert "Art. 17(3)(b)" not in part and "Kept until: 31 December 2033" in part


@pytest.mark.parametrize("language", LANGUAGES)
async def test_with_a_legal_claims_hold_the_claims_keep_their_article(language):
    letter = await as_sent("response", "erasure", erasure_with_kept(), regime="uk_gdpr", language=language)
    t = worded(language, wording_of("uk_gdpr"))
    law = LOADED.in_language(language).statutory_holds["be_accounting"].foreign_law
    for part in both(letter):
        assert _said(t, WITH_CLAIMS, law=law, citation=f" ({citation('uk_gdpr', '17(3)(e)', t)})") in part
        assert _said(t, UK_LAW_ONLY) in part and citation("uk_gdpr", "17(3)(b)", t) not in part


@pytest.mark.parametrize("language", LANGUAGES)
async def test_under_the_gdpr_belgian_law_stays_a_legal_obligation(language):
    letter = await as_sent("response", "erasure", _billing_only(), regime="gdpr", language=language)
    t = worded(language, wording_of("gdpr"))
    statute = LOADED.in_language(language).statutory_holds["be_accounting"]
    by_law = t.gettext("We could not erase the data listed below, because the law obliges us to keep it%(citation)s.")
    for part in both(letter):
        assert " ".join((by_law % {"citation": f" ({citation('gdpr', '17(3)(b)', t)})"}).split()) in part
        assert " ".join(statute.basis.split()) in part
        assert citation("gdpr", "6(1)(f)", t) not in part and citation("gdpr", "21(1)", t) not in part


def test_the_evidence_pack_and_the_console_give_the_basis_the_letter_gave():
    """The pack's `as_told`, which the console's request page shows: the basis in the request's law."""
    kept = next(k for k in kept_records() if k["hold_kind"] == "statutory")
    policy = LOADED.policy
    assert _as_told(kept, policy, "uk_gdpr") == {
        "basis": "Art. 6(1)(f) UK GDPR: our legitimate interests in complying with Belgian law",
        "law": policy.statutory_holds["be_accounting"].law}
    assert _as_told(kept, policy, "gdpr")["basis"] == "Art. 17(3)(b) GDPR: compliance with a legal obligation"


@pytest.mark.parametrize("regime", ["uk_gdpr", "gdpr"])
@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_uk_closing_letter_gives_the_basis_and_the_objection_for_what_belgian_law_keeps(language, regime):
    """The letter of an erasure withdrawn after Billing kept invoices (activities/letter_kept_closed.py):
    under the UK GDPR, as the response letter, our basis and the right to object (before, the law
    named as if it were our obligation, and no objection offered); a withdrawal refuses nothing, so
    no complaint "set out below". Under the GDPR, Belgian law is one: neither."""
    kept = [{"system": "billing", "whole": False, "kept": [k for k in kept_records() if k["system"] == "billing"]}]
    params = {"reason": "Withdrawn by phone", "withdrawn": True, "acted_in": ["billing"], "asked_in": []}
    letter = await as_sent("cancellation", "erasure", params, regime=regime, language=language,
                           kept_at_close=kept, stopped_runs=[], done_systems=[])
    t = worded(language, wording_of(regime))
    policy = LOADED.in_language(language)
    law = policy.statutory_holds["be_accounting"].foreign_law
    assert law is not None
    portal = f"https://privacy.example.test/portal?lang={language}"
    said = [_said(t, UK_LAW_ONLY), _said(t, WHY, law=law, citation=f" ({citation('uk_gdpr', '6(1)(f)', t)})"),
            _said(t, OBJECT, law=law, citation=f" ({citation('uk_gdpr', '21(1)', t)})",
                  email="privacy@onetagger.com", url=portal)]
    statute = {"where": policy.systems["billing"].where, "foreign": law, "date": long_date(date(2033, 12, 31), language),
               "law": policy.statutory_holds["be_accounting"].law}
    uk = regime == "uk_gdpr"
    kept, not_kept = (KEPT_TO_COMPLY, KEPT_AS_REQUIRED) if uk else (KEPT_AS_REQUIRED, KEPT_TO_COMPLY)
    for part in both(letter):
        part = part.replace(f"{portal} ,", f"{portal},")  # the HTML's link, its tags taken out
        assert all((words in part) is uk for words in said), part
        assert _said(t, COMPLAIN, authority=policy.remedies["uk_gdpr"].authority_title) not in part
        assert _said(t, kept, **statute) in part and _said(t, not_kept, **statute) not in part, part
        assert not uk or part.index(_said(t, kept, **statute)) < part.index(said[0]), part
