"""CCPA regulations, Cal. Code Regs. tit. 11 § 7022(f)(4): a business that sells or shares personal
information and denies a request to delete in whole or in part asks the consumer whether they want
to opt out of the sale or sharing, with the notice of the right to opt out or a link to it (§ 7013).
The shipped controller sells and shares nothing ("we will not sell, share, or rent your
information": remedies.ccpa.sells_or_shares false); a policy that sets it true gives the question
and its link (`sale_opt_out`), and every refusal of a CCPA deletion then asks it, no other letter.
Built as the letter activity builds each letter (tests/letters_as_sent.py), in process."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from policy.model import LoadedPolicy, PolicyError, parse_policy
from tests.letters_as_sent import LOADED, as_sent, both, erasure_with_kept

LINK = "https://www.onetagger.com/privacy/do-not-sell-or-share"
# (heading, text) in each language, as a policy and its translations would give them.
ASKED = {
    "en": ("Your right to opt out of the sale or sharing of your personal information",
           "We sell or share personal information. Would you like to opt out of the sale or sharing of yours? "
           "If you have not already done so, you can opt out at any time; our notice of your right to opt out is at"),
    "fr": ("Votre droit de refuser la vente ou le partage de vos renseignements personnels",
           "Nous vendons ou partageons des renseignements personnels. Souhaitez-vous refuser la vente ou le partage "
           "des vôtres ? Si vous ne l'avez pas déjà fait, vous pouvez le refuser à tout moment ; notre avis relatif "
           "à ce droit se trouve à l'adresse"),
    "nl": ("Uw recht om de verkoop of het delen van uw persoonsgegevens te weigeren",
           "Wij verkopen of delen persoonsgegevens. Wilt u de verkoop of het delen van uw gegevens weigeren? Als u "
           "dat nog niet hebt gedaan, kunt u dat op elk moment doen; onze kennisgeving over dit recht staat op"),
    "de": ("Ihr Recht, dem Verkauf oder der Weitergabe Ihrer personenbezogenen Daten zu widersprechen",
           "Wir verkaufen oder teilen personenbezogene Daten. Möchten Sie dem Verkauf oder der Weitergabe Ihrer Daten "
           "widersprechen? Falls Sie dies noch nicht getan haben, können Sie es jederzeit tun; unseren Hinweis zu "
           "diesem Recht finden Sie unter"),
}
_EXPLANATION = "The records are needed for a pending claim."
_DONE = {"report": {"results": [{"system": "crm", "action": "erase", "status": "done", "found": 2, "changed": 2,
                                 "datasets": {"contacts": {"found": 2, "changed": 2, "deleted": 2, "kept": 0}}}]}}


def _content(**ccpa: Any) -> dict[str, Any]:
    """The shipped policy with `ccpa` set in its remedies.ccpa, and the question translated."""
    content = copy.deepcopy(LOADED.content)
    content["remedies"]["ccpa"] |= ccpa
    for language, translation in content["translations"].items():
        heading, text = ASKED[language]
        translation["remedies"]["ccpa"]["sale_opt_out"] = {"heading": heading, "text": text}
    return content


@cache
def selling() -> LoadedPolicy:
    heading, text = ASKED["en"]
    return parse_policy(_content(sells_or_shares=True, sale_opt_out={"heading": heading, "text": text, "link": LINK}))


async def _letter(purpose: str, request_type: str, params: dict[str, Any], loaded: LoadedPolicy,
                  language: str = "en") -> list[str]:
    return both(await as_sent(purpose, request_type, params, regime="ccpa", language=language, country="US",
                              loaded=loaded))


def _asks(parts: list[str], language: str = "en") -> bool:
    heading, text = ASKED[language]
    asked = [heading in part and f"{text} {LINK}" in part for part in parts]
    assert len(set(asked)) == 1, parts  # the plain text and the HTML alike
    return asked[0]


@pytest.mark.parametrize("language", list(ASKED))
async def test_a_deletion_refused_in_part_asks_whether_to_opt_out_of_the_sale(language):
    parts = await _letter("response", "erasure", erasure_with_kept(), selling(), language)
    assert _asks(parts, language)
    # After the reasons, before the authority.
    heading = ASKED[language][0]
    assert all(part.index("2033") < part.index(heading) < part.index("California Privacy Protection Agency")
               for part in parts)


@pytest.mark.parametrize(("purpose", "params"), [
    ("denial", {"reason_code": "other", "explanation": _EXPLANATION}),
    ("closed_unverified", {"expired_at": "2026-02-07T10:00:00+00:00"}),
    ("cancellation", {"reason": "A duplicate.", "withdrawn": False}),
])
async def test_a_deletion_refused_whole_asks_it_too(purpose, params):
    assert _asks(await _letter(purpose, "erasure", params, selling()))


async def test_no_other_letter_asks_it():
    # The shipped policy: we sell and share nothing.
    assert LOADED.policy.remedies["ccpa"].sells_or_shares is False
    assert not _asks(await _letter("response", "erasure", erasure_with_kept(), LOADED))
    # Selling, but nothing refused, or no deletion refused, or the subject withdrew.
    assert not _asks(await _letter("response", "erasure", _DONE, selling()))
    assert not _asks(await _letter("denial", "access", {"reason_code": "other", "explanation": _EXPLANATION},
                                   selling()))
    assert not _asks(await _letter("cancellation", "erasure", {"reason": "Withdrawn.", "withdrawn": True},
                                   selling()))


@pytest.mark.parametrize(("ccpa", "where", "regime"), [
    ({"sells_or_shares": True}, r"remedies\.ccpa: .*sale_opt_out\.link: needed", "ccpa"),
    ({"sells_or_shares": True, "sale_opt_out": {"heading": "H", "text": "T"}}, r"remedies\.ccpa\.sale_opt_out\.link",
     "ccpa"),
    ({"sells_or_shares": True, "sale_opt_out": {"heading": "H", "text": "T", "link": "opt-out"}},
     r"remedies\.ccpa\.sale_opt_out\.link", "ccpa"),
    ({"sells_or_shares": True, "sale_opt_out": {"heading": "H", "text": "T", "link": LINK}},
     r"remedies\.vcdpa\.sells_or_shares", "vcdpa"),
])
def test_the_setting_is_checked_when_the_policy_loads(ccpa, where, regime):
    content = _content()
    content["remedies"][regime] |= ccpa
    with pytest.raises(PolicyError, match=where):
        parse_policy(content)


def test_the_question_is_translated_or_the_policy_does_not_load():
    heading, text = ASKED["en"]
    content = _content(sells_or_shares=True, sale_opt_out={"heading": heading, "text": text, "link": LINK})
    del content["translations"]["nl"]["remedies"]["ccpa"]["sale_opt_out"]
    with pytest.raises(PolicyError, match=r"translations\.nl: missing remedies\.ccpa\.sale_opt_out\.heading"):
        parse_policy(content)


# A translation may give the notice in its language (policy/languages.py PER_LANGUAGE_LINKS: the
# notice is a disclosure § 7003(b)(2) wants in the languages we write to consumers in).
LINK_FR = "https://www.onetagger.com/fr/vie-privee/ne-pas-vendre"


def _selling_with(links: dict[str, Any]) -> dict[str, Any]:
    heading, text = ASKED["en"]
    content = _content(sells_or_shares=True, sale_opt_out={"heading": heading, "text": text, "link": LINK})
    for language, link in links.items():
        content["translations"][language]["remedies"]["ccpa"]["sale_opt_out"]["link"] = link
    return content


async def test_a_translation_may_link_the_notice_in_its_language():
    loaded = parse_policy(_selling_with({"fr": LINK_FR}))
    french = await _letter("response", "erasure", erasure_with_kept(), loaded, "fr")
    heading, text = ASKED["fr"]
    assert all(heading in part and f"{text} {LINK_FR}" in part and LINK not in part for part in french)
    # A language whose translation gives none links the policy's own, as English does.
    assert _asks(await _letter("response", "erasure", erasure_with_kept(), loaded, "nl"), "nl")
    assert _asks(await _letter("response", "erasure", erasure_with_kept(), loaded))


@pytest.mark.parametrize("link", ["ne-pas-vendre", "ftp://onetagger.com/opt-out", 42])
def test_a_translations_link_is_checked_when_the_policy_loads(link):
    with pytest.raises(PolicyError, match=r"translations\.fr\.remedies\.ccpa\.sale_opt_out\.link: expected an "
                                          r"http\(s\) URL of the page in fr"):
        parse_policy(_selling_with({"fr": link}))
