"""What the e-mails to a processor asked by e-mail (activities/connectors/manual_email.py) say:
what each action asks of it, and the e-mails rendered from the letters' templates.

Processors read the controller's working language (the policy's `languages.staff`). The e-mails
cite the articles of the request's law (its `regime`) where it is the GDPR's or the UK GDPR's, and
none otherwise, but for the provision that obliges the processor to assist where the law has one
(the CCPA's, the CTDPA's and the CPA's for access, correction and deletion); and they name the person, us and the processor as that law does: "consumer",
"business" and "service provider or contractor" under the CCPA (dsrflow/i18n `wording_of(...,
to_processor=True)`), through the one question `letter_wording` asks for the templates and for
the sentences written into them here (`processor_words`), and for the pages their links open
(api/callbacks/processor_pages.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activities.citations import IN_BRACKETS, CitedLabel, cited_label, processor_duty
from activities.letter_templates import PROCESSOR_PURPOSES, RenderedLetter, letter_wording, render_template_set
from dsrflow.i18n import N_, SOURCE_LANGUAGE, Translator, worded

REQUEST_PURPOSE, REMINDER_PURPOSE, WITHDRAWAL_PURPOSE = PROCESSOR_PURPOSES

# What each action asks of the processor, citing the article of the request's law where it is the
# GDPR's or the UK GDPR's (activities/citations.py); an objection's instruction names its scope,
# which cites it. Marked for the catalogs here, translated when the mail is written:
# `asked_of_processor`.
SCOPES: dict[str, CitedLabel] = {
    "direct_marketing": (N_("direct marketing%(citation)s: stop using the data subject's data for direct "
                            "marketing, including profiling related to it, and suppress the address so it is "
                            "not contacted again"), "21(2) and (3)", IN_BRACKETS),
    "profiling": (N_("profiling%(citation)s: stop profiling the data subject"), "21(1)", IN_BRACKETS),
    "legitimate_interest": (N_("processing based on our legitimate interests%(citation)s: stop that processing "
                               "of the data subject's data, keeping it stored only, until we tell you otherwise"),
                            "21(1)", IN_BRACKETS),
}
TITLES = {
    "erase": N_("erasure"), "rectify": N_("rectification"), "restrict": N_("restriction of processing"),
    "lift_restriction": N_("end of a restriction of processing"), "object": N_("objection"),
    "access": N_("copy of the data (export)"),
}
_OBJECTION = N_("The data subject below objects to %(scope)s.")
_INSTRUCTIONS: dict[str, CitedLabel] = {
    "erase": (N_("Erase all personal data of the data subject below that you process on our behalf, including "
                 "copies, and stop any processing of it%(citation)s."), "17", IN_BRACKETS),
    "rectify": (N_("Correct the personal data of the data subject below that you process on our behalf, replacing "
                   "it with the corrected values listed here%(citation)s."), "16", IN_BRACKETS),
    "restrict": (N_("Restrict the processing of the personal data of the data subject below: keep it stored, but do "
                    "not otherwise process it until we tell you the restriction has ended%(citation)s."),
                 "18", IN_BRACKETS),
    "lift_restriction": (N_("The restriction of processing of the data subject below has ended: you may again "
                            "process their personal data as our instructions provide%(citation)s."),
                         "18(3)", IN_BRACKETS),
    "access": (N_("Send us a copy of all personal data of the data subject below that you process on our behalf, "
                  "so that we can give it to them%(citation)s. Upload it on the page the link below opens, in a "
                  "form they can read: JSON, CSV, PDF or plain-text files, or a ZIP archive of them."),
               "15 and 20", IN_BRACKETS),
}


def processor_words(language: str, regime: str | None) -> Translator:
    """What a processor reads: `language` (the controller's staff language) in the words `regime`'s
    law names the parties with; the GDPR's where no request says which law (None: a link's page
    before its request is known). The e-mails' sentences and the links' pages ask here."""
    return worded(language, letter_wording(REQUEST_PURPOSE, regime) if regime else None)


def asked_of_processor(action: str, scope: str | None, regime: str, language: str) -> tuple[str, str]:
    """The title and the instruction of `action`'s e-mail in `language`, in the words of `regime`'s
    law and citing its articles (none outside the GDPR's and the UK GDPR's). An objection's scope
    is one of `SCOPES`, or shown as it is named."""
    t = processor_words(language, regime)
    if action != "object":
        return t.gettext(TITLES[action]), cited_label(_INSTRUCTIONS[action], regime, t)
    scoped = SCOPES.get(scope or "")
    return t.gettext(TITLES[action]), t.gettext(_OBJECTION) % {
        "scope": cited_label(scoped, regime, t) if scoped else scope}


def render_processor_mail(purpose: str, context: Mapping[str, Any], language: str = SOURCE_LANGUAGE,
                          ) -> RenderedLetter:
    """Subject line, text and HTML of a processor e-mail, through the letters' (strict, escaping)
    Jinja environment, in the controller's working language and the words of the request's law
    (`context["request"]["regime"]`). Not a letter purpose: these go to processors, not to data
    subjects."""
    if purpose not in PROCESSOR_PURPOSES:
        raise ValueError(f"unknown processor mail purpose {purpose!r}")
    regime = context["request"]["regime"]
    # Why the processor must assist: the contract, and the provision of the law that obliges it
    # to, where there is one for this action (activities/citations.py `PROCESSOR_DUTIES`).
    duty = processor_duty(regime, context["action"], processor_words(language, regime))
    return render_template_set(purpose, {**context, "assistance_duty": duty}, language,
                               letter_wording(purpose, regime))


__all__ = ["REMINDER_PURPOSE", "REQUEST_PURPOSE", "SCOPES", "WITHDRAWAL_PURPOSE", "TITLES", "asked_of_processor", "processor_words",
           "render_processor_mail"]
