"""What each letter says in the regime of its request: the recipients Art. 19 reached, named once;
the remedies a refusal names, and the letters that carry none; the processor whose export is
missing; the CCPA's record of the request; where an objection's test comes from; and no law cited
but its regime's. The letters are the cases of tests/letter_cases.py, rendered as tests/test_letter_reading.py reads them."""

from __future__ import annotations

import re
from functools import partial
from html import unescape

import pytest

from activities.letter_objection import decision_summary
from schemas.vocabulary import Regime
from tests.letter_cases import LETTER_CASES, _render_case, applies
from tests.test_letter_reading import _html_as_text


def test_response_names_the_recipients_art19_reached_once():
    letter = _render_case("response-erasure-kept", "gdpr")
    for part in (letter.text, unescape(letter.html)):
        assert part.count("Financial services and accounting provider") == 1
        assert "who these recipients are" not in part  # they are named: nothing left to ask
        assert "4 records of invoices in our billing system" in part and "support requests" in part


@pytest.mark.parametrize(("regime", "authority", "court", "appeal"), [
    ("gdpr", "Gegevensbeschermingsautoriteit", "Court of First Instance", None),
    ("uk_gdpr", "Information Commissioner's Office", "High Court", None),
    ("ccpa", "California Privacy Protection Agency", "§ 1798.150", None),
    ("vcdpa", "Attorney General of Virginia", "no private right of action", "within 60 days"),
    ("ctdpa", "Attorney General of Connecticut", "no private right of action", "within 60 days"),
    ("cpa", "Colorado Department of Law", "no private right of action", "within 45 days"),
    ("lgpd", "Autoridade Nacional de Proteção de Dados", "Art. 22 LGPD", None),
    ("pipeda", "Office of the Privacy Commissioner of Canada", "Federal Court", None),
])
def test_a_refusal_names_the_remedies_of_its_regime(regime, authority, court, appeal):
    for case in ("denial-other", "closed_unverified", "cancellation-by-staff", "response-erasure-kept"):
        letter = _render_case(case, regime)
        for part in (letter.text, unescape(letter.html)):
            assert authority in part and court in part, (case, regime)
            assert ("Your right to appeal" in part) is bool(appeal), (case, regime)
            if appeal:
                assert appeal in part
    others = {n for n in ("Gegevensbeschermingsautoriteit", "Information Commissioner", "Privacy Commissioner")
              if n not in authority}
    assert not any(name in _render_case("denial-other", regime).text for name in others)


def test_a_withdrawal_and_an_upheld_objection_carry_no_remedies():
    for case in ("cancellation-withdrawn", "response-objection-upheld", "response-rectification"):
        assert "Your right to complain" not in _render_case(case, "gdpr").text, case
    assert "Your right to complain" not in _render_case("extension", "gdpr").text  # only PIPEDA's notice
    assert "Privacy Commissioner of Canada" in _render_case("extension", "pipeda").text


def test_access_response_names_the_processor_whose_export_is_missing():
    """Staff resolved a processor's export task without its files: the letter names it and why,
    lists the files the other processor sent, and never claims the download is complete."""
    letter = _render_case("response-access-processor-missing", "gdpr")
    for part in (letter.text, _html_as_text(letter.html)):
        assert "What your download does not include" in part
        assert "Work management provider: this processor of ours did not send us the copy of your data" in part
        assert "2 files" in part
        assert "for each of our systems" not in part
        assert "Your right to complain to the supervisory authority" in part
    complete = _render_case("response-access-package", "gdpr")
    assert "for each of our systems" in complete.text and "does not include" not in complete.text
    assert "Your right to complain" not in complete.text


def test_a_ccpa_erasure_response_says_the_request_is_kept_on_record():
    """Cal. Code Regs. tit. 11, §§ 7022 and 7101: a consumer whose data was deleted is told that a
    record of the request is kept; no other law's response, nor another CCPA response, says so."""
    said = "We keep a record of your request and of how we answered it for at least 24 months"
    letter = _render_case("response-erasure-kept", "ccpa")
    for part in (" ".join(letter.text.split()), " ".join(_html_as_text(letter.html).split())):
        assert said in part and "§§ 7022 and 7101" in part
    assert said not in " ".join(_render_case("response-erasure-kept", "gdpr").text.split())
    assert said not in " ".join(_render_case("response-rectification", "ccpa").text.split())


@pytest.mark.parametrize(("regime", "source"), [
    ("gdpr", "(Art. 21(1) GDPR)"), ("uk_gdpr", "(Art. 21(1) UK GDPR)"),
    ("ccpa", "(a right our privacy policy gives you)"), ("vcdpa", "(a right our privacy policy gives you)"),
])
def test_an_objection_decision_says_where_its_test_comes_from(regime, source):
    """The compelling-grounds test is Art. 21(1)'s under the GDPR and the UK GDPR; elsewhere only
    the privacy policy sets it, and the decision says so instead of stating it as the law's."""
    for grounds in (True, False):
        said = decision_summary({"compelling_grounds": grounds, "explanation": "Fraud checks."}, regime)
        assert source in said and "Fraud checks." in said
        assert ("GDPR" in said) is (regime in ("gdpr", "uk_gdpr"))


# The law a letter may name, by regime: its own, never another's (activities/citations.py).
_OTHER_LAW = {"gdpr": re.compile(r"UK GDPR"), "uk_gdpr": re.compile(r"(?<!UK )GDPR")}


@pytest.mark.parametrize("regime", [r.value for r in Regime])
def test_every_letter_cites_only_the_law_of_its_regime(regime):
    """What a letter's parts cite (a kept record's basis, a lift's grounds, an objection's test)
    is built in the request's regime: no GDPR article in a US, Brazilian or Canadian letter, no EU
    GDPR in a UK one."""
    other = _OTHER_LAW.get(regime, re.compile(r"GDPR"))
    for case in filter(partial(applies, regime=regime), LETTER_CASES):
        letter = _render_case(case, regime)
        for part in (letter.subject, letter.text, unescape(letter.html)):
            found = other.search(part)
            assert found is None, (case, part[max(found.start() - 120, 0):found.end() + 40])
