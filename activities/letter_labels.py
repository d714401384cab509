"""The names of a request's type and of a refusal's grounds, as the law of the request's regime
gives them: in the letters (activities/letters.py) and on the portal's and the console's pages
(api/pages.py `type_label`), so that a subject reads one name for one request wherever it is
shown. Each cites its article where the law is the GDPR or the UK GDPR (activities/citations.py).
"""

from __future__ import annotations

from activities.citations import AFTER_COMMA as _AFTER_COMMA
from activities.citations import IN_BRACKETS as _IN_BRACKETS
from activities.citations import citation, cited_label
from activities.staff_alert_words import action_label
from dsrflow.i18n import ENGLISH, N_, Translator, corrects, deletes

LETTER_TYPE_LABELS = {
    "access": (N_("access to your personal data%(citation)s"), "15", _IN_BRACKETS),
    "portability": (N_("a copy of your data in a portable format%(citation)s"), "20", _IN_BRACKETS),
    "erasure": (N_("erasure (right to be forgotten%(citation)s)"), "17", _AFTER_COMMA),
    "rectification": (N_("rectification of inaccurate data%(citation)s"), "16", _IN_BRACKETS),
    "restriction": (N_("restriction of processing%(citation)s"), "18", _IN_BRACKETS),
    "objection": (N_("objection to processing%(citation)s"), "21", _IN_BRACKETS),
}
# An erasure's name in a letter under the laws that know not the GDPR's "right to be forgotten"
# (Art. 17) but grant the deletion of personal data (dsrflow/i18n `deletes`: Va. Code §
# 59.1-577(A)(3); Conn. Gen. Stat. § 42-518(a)(3); the CPA alike; LGPD Art. 18, VI, "eliminação";
# Cal. Civ. Code § 1798.105). The CCPA and PIPEDA say "deletion of your personal information"
# through their catalog (personal_information.po).
_DELETION = N_("deletion of your personal data")
_STAFF_DELETION = N_("deletion")


def type_label(kind: str, regime: str | None, t: Translator) -> str:
    """A request type's name as the law of `regime` gives it, in `t`'s language (`worded` for that
    law's words: "deletion of your personal information" under the CCPA): the letters' and the
    pages' (api/pages.py `type_label`), so a subject reads one name for one request. No regime (a
    form before its country is known): the GDPR's name, citing no law."""
    if kind == "erasure" and deletes(regime):
        return t.gettext(_DELETION)
    return cited_label(LETTER_TYPE_LABELS[kind], regime, t)


# A rectification's, where the law grants the correction of inaccurate data (`corrects`): French
# and German say their ordinary words, "rectification" and "Berichtigung", under every law.
_STAFF_CORRECTION = N_("correction")


def kind_word(kind: str, regime: str | None, t: Translator = ENGLISH) -> str:
    """A request type's plain name as staff read it wherever a request is named (the console's
    queue, its request page, the evidence pack, the staff alerts): the law's word, "deletion" and
    "correction" where `regime`'s law grants those (`deletes`, `corrects`), not the GDPR's "erasure"
    and "rectification"; the type's own name otherwise. The REST API's `type` keeps the code."""
    if kind == "erasure" and deletes(regime):
        return t.gettext(_STAFF_DELETION)
    if kind == "rectification" and corrects(regime):
        return t.gettext(_STAFF_CORRECTION)
    return action_label(kind, t=t)


def staff_type_label(kind: str, regime: str, t: Translator) -> str:
    """A request type as staff read it in their alerts and the evidence pack: its plain name
    (`kind_word`), citing its article under the GDPR and the UK GDPR ("erasure (Art. 17 GDPR)";
    "deletion" under the other laws, which cite none). Not `type_label`: the subject's names
    speak to the subject ("access to your personal data", "deletion of your personal data"), and
    told staff of "your" data."""
    article = LETTER_TYPE_LABELS[kind][1]
    cited = citation(regime, article, t) if article else None
    return kind_word(kind, regime, t) + (_IN_BRACKETS % cited if cited else "")


# Each completes the denial letter's "This is because ...". An `other` refusal has none: under "Our
# reasons", compliance's explanation is the reason (the letter said "This is because of the reasons
# explained below." right above it).
LETTER_DENIAL_LABELS = {
    "manifestly_unfounded": (N_("the request is manifestly unfounded%(citation)s"), "12(5)", _IN_BRACKETS),
    "excessive": (N_("the request is manifestly excessive, in particular because of its repetitive character%(citation)s"),
                  "12(5)", _IN_BRACKETS),
    # Art. 12(6) lets us ask for more to confirm an identity; the refusal rests on Art. 11(2) and 12(2).
    "identity_not_established": (N_("we could not establish your identity%(citation)s"), "11(2) and 12(2)",
                                 _IN_BRACKETS),
}


def denial_label(code: str, regime: str | None, t: Translator = ENGLISH) -> str | None:
    """The words that complete the denial letter's "This is because ..." for the refusal's ground
    `code`, citing its article in the regime's law; None for `other`, whose explanation is the reason."""
    label = LETTER_DENIAL_LABELS.get(code)
    return cited_label(label, regime, t) if label else None
