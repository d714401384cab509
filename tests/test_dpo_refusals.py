"""Refusals read as a data protection officer reads them (tests/test_dpo_letters.py for the
responses): what a refusal under each regime must say that the other letter tests do not check."""

from __future__ import annotations

import re

import pytest

from dsrflow.i18n import translations
from tests.letters_as_sent import LANGUAGES, as_sent, both

# --- The CCPA's refusal rule reads as one sentence ---------------------------------------------
# "As the California Consumer Privacy Act and its regulations (...) requires": a plural subject
# with a singular verb, in English, Dutch and French; the rule is the policy's text
# (`remedies.ccpa.refusal_rule`), set into "As %(rule)s requires, we set out below our reasons" (a
# denial) or "..., we have given you our reasons" (a closure): the regulations require the reasons,
# not the remedies (tests/test_dpo_refusal_rule.py).

_CCPA_RULE = {
    "en": "As the California Consumer Privacy Act, read with its regulations (Cal. Code Regs. tit. 11, §§ 7022, "
          "7023 and 7024), requires, we ",
    "nl": "Zoals de California Consumer Privacy Act, gelezen in samenhang met de uitvoeringsbepalingen ervan (Cal. "
          "Code Regs. tit. 11, §§ 7022, 7023 en 7024), voorschrijft, ",
    "fr": "Comme l'exige le California Consumer Privacy Act, lu en combinaison avec ses règlements d'application "
          "(Cal. Code Regs. tit. 11, §§ 7022, 7023 et 7024), nous vous ",
    # Then "legen wir Ihnen ... dar" (a denial) or "haben wir Ihnen ... dargelegt" (a closure).
    "de": "Gemäß Cal. Code Regs. tit. 11, §§ 7022, 7023 und 7024 in Verbindung mit dem California Consumer Privacy Act ",
}


@pytest.mark.parametrize("language", sorted(_CCPA_RULE))
@pytest.mark.parametrize(("purpose", "params"), [
    ("denial", {"reason_code": "other", "explanation": "The records are needed for a pending claim."}),
    ("closed_unverified", {"expired_at": "2026-02-07T10:00:00+00:00"}),
    ("cancellation", {"reason": "A duplicate of an earlier request.", "withdrawn": False}),
], ids=["denial", "closed_unverified", "cancellation"])
async def test_a_ccpa_refusal_names_its_rule_in_a_grammatical_sentence(purpose, params, language):
    letter = await as_sent(purpose, "erasure", params, regime="ccpa", language=language)
    for part in both(letter):
        assert _CCPA_RULE[language] in part, (purpose, language)
        assert "7024) requires" not in part and "7024) voorschrijft" not in part


# --- CCPA: a request to know refused for want of verification (Cal. Code Regs. tit. 11, § 7024) -
# A business that cannot verify the requestor "shall inform the requestor that it cannot verify
# their identity" and, denying the request, "shall provide or direct the consumer to its
# information practices set forth in its privacy policy" (§ 7024(b)). The letters said the first
# only. A request to delete has no such rule (§ 7022), nor has any other regime.

_PRACTICES = ("Our privacy policy describes our information practices: the categories of personal information "
              "we collect, the sources we collect it from, the purposes for which we use it and the categories "
              "of third parties to whom we disclose it (Cal. Code Regs. tit. 11, § 7024(b)). It is published on "
              "our website, and we will send you a copy if you ask us at %(email)s.")
_UNVERIFIED = {
    "closed_unverified": {"expired_at": "2026-02-07T10:00:00+00:00"},
    "denial": {"reason_code": "identity_not_established", "explanation": "The code was never entered."},
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("request_type", ["access", "portability", "erasure"])
@pytest.mark.parametrize("purpose", sorted(_UNVERIFIED))
@pytest.mark.parametrize("regime", ["ccpa", "gdpr", "vcdpa"])
async def test_a_ccpa_request_to_know_refused_unverified_points_to_the_privacy_policy(
        regime, purpose, request_type, language):
    letter = await as_sent(purpose, request_type, _UNVERIFIED[purpose], regime=regime, language=language)
    t = translations(language)
    practices = t.gettext(_PRACTICES) % {"email": "privacy@onetagger.com"}
    owed = regime == "ccpa" and request_type in ("access", "portability")
    if owed and language != "en":
        assert t.gettext(_PRACTICES) != _PRACTICES, "not translated"
    for part in both(letter):  # the HTML's e-mail link is set apart from its full stop
        assert (_folded(practices) in _folded(part)) is owed, (regime, purpose, request_type, language)


def _folded(text: str) -> str:
    return re.sub(r" ([.,;])", r"\1", " ".join(text.split()))
