"""Which law a text cites: the law of its request's regime, never another.

The GDPR under `gdpr`, the UK GDPR under `uk_gdpr` (the same article numbers), and no article under
the other regimes (ccpa, vcdpa, ctdpa, cpa, lgpd, pipeda), whose laws are numbered otherwise, nor
where no regime is known yet (the new-request forms: the country typed there decides it). Letters,
the package's summary, the e-mails to processors and the pages all cite through here: code calls
`citation` and `cited_label`; templates the `cite` filter (activities/letter_templates.py,
activities/package_summary.py) and the pages `type_label` (api/pages.py).
"""

from __future__ import annotations

from dsrflow.domain.deadlines import answer_days
from dsrflow.i18n import ENGLISH, N_, Translator

_LAWS = {"gdpr": N_("GDPR"), "uk_gdpr": N_("UK GDPR")}
# Each regime's law as a reader outside the team knows it: staff alerts, the console, the evidence pack.
_REGIME_NAMES = {**_LAWS, "ccpa": N_("CCPA (California)"), "vcdpa": N_("VCDPA (Virginia)"),
                 "ctdpa": N_("CTDPA (Connecticut)"), "cpa": N_("CPA (Colorado)"), "lgpd": N_("LGPD (Brazil)"),
                 "pipeda": N_("PIPEDA (Canada)")}


def regime_name(regime: str, t: Translator = ENGLISH) -> str:
    """The law `regime` is, by name ("CCPA (California)" for `ccpa`); an unknown code as it is."""
    return t.gettext(_REGIME_NAMES[regime]) if regime in _REGIME_NAMES else regime

ARTICLES = {
    # The lawful bases of processing: a policy category's legal bases (policy/disclosure.py).
    "6(1)(a)": N_("Art. 6(1)(a) %(law)s"), "6(1)(b)": N_("Art. 6(1)(b) %(law)s"),
    "6(1)(c)": N_("Art. 6(1)(c) %(law)s"), "6(1)(d)": N_("Art. 6(1)(d) %(law)s"),
    "6(1)(e)": N_("Art. 6(1)(e) %(law)s"), "6(1)(f)": N_("Art. 6(1)(f) %(law)s"),
    "11(2) and 12(2)": N_("Art. 11(2) and 12(2) %(law)s"),
    "12(5)": N_("Art. 12(5) %(law)s"),
    "15": N_("Art. 15 %(law)s"), "15 and 20": N_("Art. 15 and 20 %(law)s"),
    "15 to 21": N_("Art. 15 to 21 %(law)s"), "16": N_("Art. 16 %(law)s"),
    "17": N_("Art. 17 %(law)s"), "17(3)": N_("Art. 17(3) %(law)s"), "17(3)(b)": N_("Art. 17(3)(b) %(law)s"),
    "17(3)(e)": N_("Art. 17(3)(e) %(law)s"), "18": N_("Art. 18 %(law)s"),
    "18(1)(a)": N_("Art. 18(1)(a) %(law)s"), "18(1)(b)": N_("Art. 18(1)(b) %(law)s"),
    "18(1)(c)": N_("Art. 18(1)(c) %(law)s"), "18(1)(d)": N_("Art. 18(1)(d) %(law)s"),
    "18(2)": N_("Art. 18(2) %(law)s"), "18(3)": N_("Art. 18(3) %(law)s"), "19": N_("Art. 19 %(law)s"),
    "20": N_("Art. 20 %(law)s"), "20(1)": N_("Art. 20(1) %(law)s"), "20(2)": N_("Art. 20(2) %(law)s"),
    "21": N_("Art. 21 %(law)s"), "21(1)": N_("Art. 21(1) %(law)s"),
    "21(2) and (3)": N_("Art. 21(2) and (3) %(law)s"), "21(3)": N_("Art. 21(3) %(law)s"),
    "22": N_("Art. 22 %(law)s"),
    "28(3)(e)": N_("Art. 28(3)(e) %(law)s"),
}
IN_BRACKETS, AFTER_COMMA = " (%s)", ", %s"

# Where the law itself obliges a processor (the CCPA's service provider or contractor) to assist
# with what it is asked, when its law is not the GDPR's (whose Art. 28(3)(e) covers every action):
# the US state laws' duties cover the consumer's requests to know or access, correct and delete
# (Cal. Civ. Code § 1798.105(c)(3) for a deletion, § 1798.130(a)(3)(A) for access and correction;
# Conn. Gen. Stat. § 42-521(a)(1); C.R.S. § 6-1-1305(2)(a)), so a restriction, its end and an
# objection, none of them such a request, rest on the contract alone. The VCDPA's duty
# (Va. Code § 59.1-579) is not cited until its text is checked (docs/legal.md); the LGPD and
# PIPEDA oblige processors through the contract. Not translated: the codes' own citations.
_ASSISTED = ("access", "rectify", "erase")
PROCESSOR_DUTIES: dict[str, dict[str, str]] = {
    "ccpa": {"erase": "Cal. Civ. Code § 1798.105(c)(3)", "access": "Cal. Civ. Code § 1798.130(a)(3)(A)",
             "rectify": "Cal. Civ. Code § 1798.130(a)(3)(A)"},
    "ctdpa": dict.fromkeys(_ASSISTED, "Conn. Gen. Stat. § 42-521(a)(1)"),
    "cpa": dict.fromkeys(_ASSISTED, "C.R.S. § 6-1-1305(2)(a)"),
}

# A label: (message with %(citation)s, article or None, how the citation is set in it).
CitedLabel = tuple[str, str | None, str]


def cites_articles(regime: str) -> bool:
    """Whether letters under `regime` cite articles (its law is the GDPR's or the UK GDPR's)."""
    return regime in _LAWS


def citation(regime: str | None, article: str, t: Translator = ENGLISH) -> str | None:
    """"Art. 15 GDPR" under the GDPR, "Art. 15 UK GDPR" under the UK GDPR, in the letter's
    language; None under any other regime, or none."""
    if regime not in _LAWS:
        return None
    return t.gettext(ARTICLES[article]) % {"law": t.gettext(_LAWS[regime])}


def processor_duty(regime: str, action: str, t: Translator = ENGLISH) -> str | None:
    """The provision of `regime`'s law that obliges a processor to assist with `action` ("Art.
    28(3)(e) GDPR", "Cal. Civ. Code § 1798.105(c)(3)" for an erasure under the CCPA), in the
    e-mail's language; None where only the contract does (`PROCESSOR_DUTIES`)."""
    if cites_articles(regime):
        return citation(regime, "28(3)(e)", t)
    return PROCESSOR_DUTIES.get(regime, {}).get(action)


def cite(regime: str | None, article: str, wrap: str = "%s", t: Translator = ENGLISH) -> str:
    """The citation set in `wrap` (" (%s)": " (Art. 19 GDPR)"), or "" where the regime's law is
    not the GDPR's: what a sentence with a `%(citation)s` placeholder receives."""
    cited = citation(regime, article, t)
    return wrap % cited if cited else ""


def cited_label(label: CitedLabel, regime: str | None, t: Translator = ENGLISH) -> str:
    """A label (LETTER_TYPE_LABELS, LETTER_DENIAL_LABELS, GROUND_LABELS, the processor e-mails'
    instructions), citing its article where the regime's law is the GDPR's."""
    message, article, wrap = label
    return t.gettext(message) % {"citation": cite(regime, article, wrap, t) if article else ""}


# The laws that set their periods in days, as the acknowledgement states them (the GDPR's, the UK
# GDPR's and the LGPD's are worded in the template): the law's name and where it sets the period.
# The days come from dsrflow/domain/deadlines.py (`answer_days`), the table the due dates use.
# The evidence pack cites the same provisions for its deadline rules (api/read_models/evidence_deadlines.py).
PERIODS: dict[str, tuple[str, str]] = {
    "ccpa": (N_("the California Consumer Privacy Act"), "Cal. Civ. Code § 1798.130(a)(2)"),
    "vcdpa": (N_("the Virginia Consumer Data Protection Act"), "Va. Code § 59.1-577"),
    "ctdpa": (N_("the Connecticut Data Privacy Act"), "Conn. Gen. Stat. § 42-518"),
    "cpa": (N_("the Colorado Privacy Act"), "C.R.S. § 6-1-1306(2)"),
    "pipeda": (N_("the Personal Information Protection and Electronic Documents Act (PIPEDA)"),
               # Translators: the Act's own citation, as its official version in the language cites it
               # (French: "LPRPDE, par. 8(3)"); the English form where the Act has no version in it.
               N_("PIPEDA, s. 8(3)")),
}
# Where the law sets an appeal's period: VCDPA and CTDPA 60 days, no extension; CPA 45, extendable by 60.
APPEAL_PROVISIONS: dict[str, str] = {
    "vcdpa": "Va. Code § 59.1-577(C)",
    "ctdpa": "Conn. Gen. Stat. § 42-518(d)",
    "cpa": "C.R.S. § 6-1-1306(3)(b)",
}


# The requests the law of a regime governs, where it grants fewer rights than the GDPR's Art. 15
# to 21 (the LGPD's Art. 18 grants all six, blocking and opposition included): a refusal of another
# credits no rule of that law (`remedies.<regime>.refusal_rule`: activities/letter_refusals.py), and
# its acknowledgement and extension say the law's period is applied to it (`answer_period`):
# the US state laws grant access, a portable copy, correction and deletion (Cal. Civ. Code
# §§ 1798.105, 1798.106, 1798.110 and 1798.130(a)(3)(B)(iii), its regulations §§ 7022 to 7024; Va.
# Code § 59.1-577(A); Conn. Gen. Stat. § 42-518(a); C.R.S. § 6-1-1306(1)), not the restriction or
# the objection to legitimate interests that our privacy policy grants; PIPEDA s. 8 governs
# requests under clause 4.9 of Schedule 1, access (in an alternative format too, s. 8(4)(b)) and
# the amendment of inaccurate information (4.9.5), not the deletion of accurate information.
_US_RIGHTS = ("access", "portability", "erasure", "rectification")
GRANTED_REQUESTS: dict[str, tuple[str, ...]] = {
    "ccpa": _US_RIGHTS, "vcdpa": _US_RIGHTS, "ctdpa": _US_RIGHTS, "cpa": _US_RIGHTS,
    "pipeda": ("access", "portability", "rectification"),
}


def law_grants(regime: str, request_type: str | None) -> bool:
    """Whether `regime`'s law grants and governs a `request_type` request, its refusal and its
    period (None: a letter that does not say, as before)."""
    ruled = GRANTED_REQUESTS.get(regime)
    return ruled is None or request_type is None or request_type in ruled


# PIPEDA s. 8(3) sets the period of a request under clause 4.9 of Schedule 1, for access; the Act
# gives no right to erase, restrict, object or port, nor a period for answering one.
ACCESS_PERIOD_ONLY = {"pipeda"}


def answer_period(regime: str, appeal: bool, due: str, extended_to: str,
                  t: Translator = ENGLISH, request_type: str | None = None) -> tuple[str, str] | None:
    """The acknowledgement's account of the law's period (the US state laws and PIPEDA ss. 8(3) and
    8(4)): how many days the law gives to answer the request, or the appeal, and whether and by how
    much it may be extended, to `extended_to`, with the notice promised by `due` (the dates as the
    letter writes them). Under PIPEDA, a request other than for access is told the period is the
    access request's, which we apply to it (it read "we must answer within 30 days" of an erasure);
    under a US state law, a request it does not grant (`law_grants`) that the period is its rights',
    applied to it. None for the regimes the template words itself."""
    if regime not in PERIODS:
        return None
    # The US codes' citations are the same in every language and in no catalog: gettext leaves them.
    law, provision = t.gettext(PERIODS[regime][0]), t.gettext(PERIODS[regime][1])
    days, further = answer_days(regime, appeal=appeal)
    if appeal:
        provision = APPEAL_PROVISIONS[regime]
        period = t.gettext("Under %(law)s, we must tell you in writing what we decided on your appeal, and why, "
                           "within %(days)d days of receiving it (%(provision)s).")
    elif regime in ACCESS_PERIOD_ONLY and request_type != "access":
        period = t.gettext("Under %(law)s, a request for access to personal data must be answered within %(days)d "
                           "days of its receipt (%(provision)s). We apply this period to every request, yours "
                           "included.")
    elif not law_grants(regime, request_type):
        # A restriction or an objection under a US state law, which grants neither.
        period = t.gettext("Under %(law)s, a request to exercise one of the rights it grants must be answered "
                           "within %(days)d days of its receipt (%(provision)s). We apply this period to every "
                           "request, yours included.")
    else:
        period = t.gettext("Under %(law)s, we must answer within %(days)d days of receiving your request "
                           "(%(provision)s).")
    extension = (t.gettext("In the cases the law sets out, this period can be extended once, by up to %(days)d "
                           "further days, to %(extended)s. If we need to do this, we will tell you, with our "
                           "reasons, by %(date)s at the latest.") % {"days": further, "extended": extended_to,
                                                                       "date": due}
                 if further else t.gettext("The law allows no extension of this period."))
    return period % {"law": law, "days": days, "provision": provision}, extension
