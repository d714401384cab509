"""A correction refused in whole or in part tells the subject, by the law of the request, what they
can do about the data they say is wrong (hCQ): the CCPA's regulations have a business that denies
a request to correct offer to note the dispute, internally and to whom it discloses the
information (Cal. Code Regs. tit. 11, § 7023(f)); PIPEDA has the unresolved challenge recorded and,
when appropriate, made known to third parties (Schedule 1, clause 4.9.6); the GDPR and the UK GDPR
let the subject have processing restricted while accuracy is contested (Art. 18(1)(a)). Before,
the denial and the response that left records as they were said none of it. In-process renders."""

from __future__ import annotations

import re
from typing import Any

import pytest

from activities.citations import citation
from dsrflow.i18n import worded, wording_of
from tests.letters_as_sent import LANGUAGES, as_sent, both
from tests.test_dpo_rectification import _BILLING_LEFT, _CRM

_HEADING = "What you can do about data you consider inaccurate"
_EMAIL, _ID = "privacy@onetagger.com", "9WPSS9NUBP"
_SAID = {
    "restrict": ("If you contest the accuracy of the data we have not corrected, you can ask us to restrict "
                 "its processing for a period enabling us to verify its accuracy (%(rule)s): while it is restricted, "
                 "we only store it, unless you consent to more or the law allows it.",
                 "To ask, make a restriction request at %(url)s or write to %(email)s, quoting request %(id)s."),
    "note": ("If you ask us, we will note, both in our own records and to any person to whom we disclose, share or "
             "sell your personal information, that you contest its accuracy (%(rule)s).",
             "To ask, reply to this e-mail or write to %(email)s, quoting request %(id)s. You can include a written "
             "statement of why you contest it: we keep it with your request."),
    "recorded": ("We have recorded your challenge to the accuracy of this information, which we have not resolved: "
                 "the corrections you asked for are kept with your request. When appropriate, we will tell the third "
                 "parties who have access to the information that you challenge it (%(rule)s).",
                 "To add to what we recorded, for instance a written statement of why you challenge it, reply to this "
                 "e-mail or write to %(email)s, quoting request %(id)s."),
}
_LAWS = {"gdpr": "restrict", "uk_gdpr": "restrict", "ccpa": "note", "pipeda": "recorded"}
_RULES = {"ccpa": "Cal. Code Regs. tit. 11, § 7023(f)", "pipeda": "PIPEDA, Schedule 1, clause 4.9.6"}
_DENIED = {"reason_code": "other", "explanation": "The address you gave is not the one on your contract."}


def _expected(regime: str, language: str) -> tuple[str, list[str]]:
    t = worded(language, wording_of(regime))
    rule = _RULES.get(regime) or citation(regime, "18(1)(a)", t)
    values = {"rule": rule, "email": _EMAIL, "id": _ID, "url": f"https://privacy.example.test/portal?lang={language}"}
    heading = t.gettext(_HEADING)
    if language != "en":
        assert heading != _HEADING, "not translated"
    return heading, [" ".join((t.gettext(said) % values).split()) for said in _SAID[_LAWS[regime]]]


def _read(text: str) -> str:
    """What a reader sees, the HTML's links folded in (`both` leaves a space where a link's tag ended)."""
    return re.sub(r" ([,.:;])", r"\1", text)


def _assert_says(parts: list[str], regime: str, language: str) -> None:
    heading, sentences = _expected(regime, language)
    sentences = [_read(sentence) for sentence in sentences]
    for part in map(_read, parts):
        assert heading in part, (regime, language, part)
        for sentence in sentences:
            assert sentence in part, (regime, language, sentence, part)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", list(_LAWS))
async def test_a_refused_correction_says_what_the_law_lets_the_subject_do_about_the_data(regime, language):
    denial = await as_sent("denial", "rectification", _DENIED, regime=regime, language=language)
    _assert_says(both(denial), regime, language)
    # Refused in part: records an earlier erasure kept are left as they were, the rest corrected.
    part = await as_sent("response", "rectification", {"report": {"results": [_BILLING_LEFT, _CRM]}},
                         regime=regime, language=language)
    _assert_says(both(part), regime, language)


@pytest.mark.parametrize(("purpose", "request_type", "params", "regime"), [
    # A correction done in full refuses nothing.
    ("response", "rectification", {"report": {"results": [_CRM]}}, "gdpr"),
    # We could not identify the subject: nothing can be recorded against them.
    ("denial", "rectification", {**_DENIED, "reason_code": "identity_not_established"}, "ccpa"),
    # Another request refused.
    ("denial", "erasure", _DENIED, "gdpr"),
    # Laws that provide nothing of the kind (Virginia, Brazil): the letter promises nothing.
    ("denial", "rectification", _DENIED, "vcdpa"),
    ("denial", "rectification", _DENIED, "lgpd"),
])
async def test_no_other_letter_speaks_of_contested_data(purpose: str, request_type: str, params: dict[str, Any],
                                                        regime: str):
    letter = await as_sent(purpose, request_type, params, regime=regime)
    for part in both(letter):
        assert _HEADING not in part and "contest" not in part, (purpose, request_type, regime, part)
