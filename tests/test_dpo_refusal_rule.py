"""What a refusal says its law requires of it (docs/legal.md, "Refusals and remedies"). The CCPA's
regulations (§§ 7022(f), 7023(f), 7024) and the LGPD (Art. 18 § 4) oblige a refusal to give its
basis, not to name the authority or the courts; their letters said "As <rule> requires, we set
out below our reasons and the remedies available to you", crediting the rule with both (a DPO
review). They now credit it with the reasons alone and still give the remedies
(`remedies.<regime>.refusal_rule_requires: reasons`); under the laws that do require the remedies
(GDPR Art. 12(4), the UK GDPR, PIPEDA s. 8(7), the US appeal laws) the sentence is unchanged.

A refusal credits a law only with the refusals it governs (hCM). The CCPA's regulations on requests
to delete, correct and know, the US state laws' duty to explain a decline (Va. Code §
59.1-577(B)(2) and the like) and PIPEDA s. 8(7) (a request under clause 4.9 of Schedule 1: access,
correction) say nothing of an objection or a restriction our privacy policy grants, nor PIPEDA of
a deletion; the letters said "As the California Consumer Privacy Act, read with its regulations
(...), requires, we have given you our reasons" of a refused objection, and "As section 8(7) of
... PIPEDA requires" of a deletion that kept records. They now give the reasons and the remedies
crediting no law (activities/citations.py `law_grants`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from activities.citations import law_grants
from dsrflow.i18n import translations, worded, wording_of
from policy.model import PolicyError, parse_policy
from policy.remedies import Remedies
from schemas.requests import DenialReason
from tests.letters_as_sent import APPEAL_OF, LANGUAGES, LOADED, REFUSED, REGIMES, as_sent, both, erasure_with_kept

# The regimes whose rule requires the reasons alone, as the shipped policy says.
REASONS_ONLY = {"ccpa", "lgpd"}

# A denial's sentence after its opening one, and the one after a closing or partial refusal's lead.
_BOTH = "As %(rule)s requires, we set out below our reasons and the remedies available to you."
_REASONS = "As %(rule)s requires, we set out below our reasons. We also set out the remedies available to you."
_CREDITED = "As %(rule)s requires, we set out below the remedies available to you."
_GIVEN = ("As %(rule)s requires, we have given you our reasons. We also set out below the remedies available "
          "to you.")

_EXPLANATION = "The records are needed for a pending claim."
# A refusal of a request its law does not grant (`law_grants`) credits no rule with anything.
UNRULED_DENIAL = "We set out below our reasons and the remedies available to you."
UNRULED_LEAD = "We also set out below the remedies available to you."


def _refusals(regime: str) -> dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(purpose, request type, params, row) of every path that refuses: a denial on each ground and
    after part was done (and of an appeal, where the law grants one), a closure, a response
    refusing in part. Where the sentence is unchanged one ground stands for all (no ground touches
    it), which keeps the module's 32 letter sets cheap."""
    grounds = list(DenialReason) if regime in REASONS_ONLY else [DenialReason.other]
    cases = {f"denial-{reason}": ("denial", "access", {"reason_code": reason, "explanation": _EXPLANATION}, {})
             for reason in grounds}
    cases["denial-after-part"] = ("denial", "erasure", {"reason_code": "other", "explanation": _EXPLANATION,
                                                        "acted_in": ["crm"]}, {})
    if LOADED.policy.remedies[regime].appeal is not None:
        cases["denial-of-an-appeal"] = ("denial", "erasure", {"reason_code": "other", "explanation": _EXPLANATION},
                                        {"details": {"appeal_of": APPEAL_OF}})
    cases |= {
        "closed_unverified": ("closed_unverified", "erasure", {"expired_at": "2026-02-07T10:00:00+00:00"}, {}),
        "cancellation-by-staff": ("cancellation", "erasure", {"reason": "A duplicate.", "withdrawn": False}, {}),
        "response-erasure-kept": ("response", "erasure", erasure_with_kept(), {}),
        "response-objection-refused": ("response", "objection", REFUSED, {}),
    }
    return cases


def _said(text: str) -> str:
    return " ".join(text.split())


def test_the_shipped_policy_credits_the_ccpa_and_the_lgpd_with_the_reasons_alone():
    requires = {regime: remedies.refusal_rule_requires for regime, remedies in LOADED.policy.remedies.items()}
    assert {regime for regime, what in requires.items() if what == "reasons"} == REASONS_ONLY
    # The setting is not a text: each language's policy keeps it.
    for language in LANGUAGES:
        assert LOADED.in_language(language).remedies["lgpd"].refusal_rule_requires == "reasons"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_a_refusal_credits_its_rule_with_no_more_than_it_requires(regime, language):
    t = worded(language, wording_of(regime))
    remedies = LOADED.in_language(language).remedies_for(regime, "BE")
    rule = {"rule": remedies.refusal_rule}
    credits_both, reasons_only = _said(t.gettext(_BOTH) % rule), _said(t.gettext(_REASONS) % rule)
    credits_remedies, given = _said(t.gettext(_CREDITED) % rule), _said(t.gettext(_GIVEN) % rule)
    if language != "en":
        assert t.gettext(_REASONS) != _REASONS and t.gettext(_GIVEN) != _GIVEN, "not translated"
    exact = regime in REASONS_ONLY
    unruled = {"denial": _said(t.gettext(UNRULED_DENIAL)), "lead": _said(t.gettext(UNRULED_LEAD))}
    for case, (purpose, request_type, params, row) in _refusals(regime).items():
        letter = await as_sent(purpose, request_type, params, regime=regime, language=language, **row)
        denial = purpose == "denial"
        for part in both(letter):
            where = (case, regime, language)
            if not law_grants(regime, request_type):
                # A request the law does not grant: the reasons and remedies, no rule credited.
                assert unruled["denial" if denial else "lead"] in part and rule["rule"] not in part, where
                assert remedies.authority is not None and remedies.authority.name in part, where
                continue
            if exact:
                assert credits_both not in part and credits_remedies not in part, where
            if denial:
                # The reasons, under their heading, and the rule credited with them alone where so.
                assert t.gettext("Our reasons") in part and _EXPLANATION in part, where
                assert (reasons_only in part) is exact and (credits_both in part) is not exact, where
            else:
                # Its lead gives the reason (the closure's, the reasons above in a response): the rule
                # is still cited, for them alone (docs/legal.md: the CCPA refusal cites §§ 7022-7024).
                assert (given in part) is exact and (credits_remedies in part) is not exact, where
            # The remedies themselves, whatever the rule requires.
            assert remedies.authority is not None and remedies.authority.name in part, where
            assert _said(remedies.judicial) in part, where


async def test_the_setting_not_the_regime_decides_the_sentence():
    """A DPO who finds another rule requires the reasons alone sets it so: the GDPR's letters then
    say it, with the remedies still given."""
    content = copy.deepcopy(LOADED.content)
    content["remedies"]["gdpr"]["refusal_rule_requires"] = "reasons"
    loaded = parse_policy(content)
    denial = await as_sent("denial", "access", {"reason_code": "other", "explanation": _EXPLANATION}, loaded=loaded)
    closed = await as_sent("closed_unverified", "erasure", {"expired_at": "2026-02-07T10:00:00+00:00"}, loaded=loaded)
    for part in both(denial):
        assert _REASONS % {"rule": "Article 12(4) GDPR"} in part
        assert "Autorité de protection des données" in part
    for part in both(closed):
        assert "personal data it concerns. " + _GIVEN % {"rule": "Article 12(4) GDPR"} in part


def test_a_misspelt_setting_fails_the_load_naming_it():
    content = copy.deepcopy(LOADED.content)
    content["remedies"]["ccpa"]["refusal_rule_requires"] = "remedies"
    with pytest.raises(PolicyError, match=r"remedies\.ccpa\.refusal_rule_requires"):
        parse_policy(content)
    # A policy stored before the setting existed keeps its letters as they were.
    stored = {k: v for k, v in LOADED.content["remedies"]["ccpa"].items() if k != "refusal_rule_requires"}
    assert Remedies.model_validate(stored).refusal_rule_requires == "reasons_and_remedies"


# --- The requests a law does not grant ----------------------------------------------------------

_DENIAL = {"reason_code": "other", "explanation": _EXPLANATION}
_RULES = {"ccpa": "As the California Consumer Privacy Act, read with its regulations",
          "vcdpa": "As the Virginia Consumer Data Protection Act", "cpa": "As the Colorado Privacy Act",
          "pipeda": "As section 8(7) of the Personal Information Protection and Electronic Documents Act",
          "lgpd": "As Article 18, § 4 LGPD", "gdpr": "As Article 12(4) GDPR requires"}
# The lead without a rule: the reasons given above, then the remedies (a rule's sentence ends alike).
_AFTER_LEAD = "for the reasons given above. " + UNRULED_LEAD


async def _parts(purpose: str, request_type: str, params: dict[str, Any], regime: str,
                 language: str = "en") -> list[str]:
    return [_said(part) for part in both(await as_sent(purpose, request_type, params, regime=regime,
                                                        language=language))]


@pytest.mark.parametrize("regime", ["ccpa", "vcdpa", "cpa", "pipeda"])
async def test_a_refused_objection_or_restriction_credits_no_law_that_grants_neither(regime):
    for part in await _parts("response", "objection", REFUSED, regime):
        assert _RULES[regime] not in part and _AFTER_LEAD in part, part
    for part in await _parts("denial", "restriction", _DENIAL, regime):
        assert _RULES[regime] not in part and UNRULED_DENIAL in part, part
        # The US state laws' appeal is still offered: the product takes one of any refusal.
        assert ("Your right to appeal" in part) is (regime in ("vcdpa", "cpa"))


async def test_pipeda_credits_section_8_7_with_access_and_correction_not_a_deletion():
    for part in await _parts("response", "erasure", erasure_with_kept(), "pipeda"):
        assert _RULES["pipeda"] not in part and _AFTER_LEAD in part, part
    for request_type in ("access", "rectification"):
        for part in await _parts("denial", request_type, _DENIAL, "pipeda"):
            assert _RULES["pipeda"] in part and UNRULED_DENIAL not in part, part


@pytest.mark.parametrize("regime", ["ccpa", "lgpd", "gdpr"])
async def test_the_laws_own_requests_still_credit_its_rule(regime):
    """A deletion under the CCPA; under the LGPD (whose Art. 18 grants opposition and blocking)
    and the GDPR an objection and a restriction as well."""
    for part in await _parts("response", "erasure", erasure_with_kept(), regime):
        assert _RULES[regime] in part and _AFTER_LEAD not in part, part
    if regime != "ccpa":
        for part in [*await _parts("response", "objection", REFUSED, regime),
                     *await _parts("denial", "restriction", _DENIAL, regime)]:
            assert _RULES[regime] in part, part


@pytest.mark.parametrize("language", ["fr", "nl", "de"])
async def test_the_sentences_crediting_no_law_are_translated(language):
    t = translations(language)
    lead, denial = _said(t.gettext(UNRULED_LEAD)), _said(t.gettext(UNRULED_DENIAL))
    assert lead != UNRULED_LEAD and denial != UNRULED_DENIAL
    for part in await _parts("response", "objection", REFUSED, "ccpa", language):
        assert lead in part, part
    for part in await _parts("denial", "restriction", _DENIAL, "vcdpa", language):
        assert denial in part, part
