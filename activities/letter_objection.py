"""The response to an objection (Art. 21(1) GDPR and its counterparts): its account of compliance's
decision on whether compelling legitimate grounds override the subject's interests."""

from __future__ import annotations

from typing import Any

from activities.citations import cite
from dsrflow.i18n import ENGLISH, Translator


def decision_summary(decision: dict[str, Any], regime: str, t: Translator = ENGLISH) -> str:
    """The objection response's account of compliance's Art. 21(1) decision (the explanation is
    compliance's own words, in the language they wrote it), citing the regime's law."""
    if decision["compelling_grounds"]:
        said = t.gettext("We have considered your objection to the processing of your personal data based on "
                         "our legitimate interests%(citation)s. We may continue that processing only where "
                         "we have compelling legitimate grounds for it which override your interests, rights "
                         "and freedoms, or where it is needed for the establishment, exercise or defence of "
                         "legal claims. We have concluded that this is the case, so the processing continues. "
                         "Our reasons: %(explanation)s")
    else:
        said = t.gettext("We considered your objection to processing based on our legitimate interests"
                         "%(citation)s. We found no compelling grounds to continue, so we have stopped "
                         "that processing. %(explanation)s")
    # Outside the GDPR and the UK GDPR no law gives this right or sets this test: the privacy
    # policy does, and the letter says so rather than state a test as if the subject's law set it.
    where = cite(regime, "21(1)", " (%s)", t) or t.gettext(" (a right our privacy policy gives you)")
    return said % {"explanation": decision["explanation"], "citation": where}
