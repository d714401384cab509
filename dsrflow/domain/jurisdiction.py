"""Which subjects a law protects, where the law decides it by residence.

The four US state laws protect their own state's residents only: each defines the "consumer"
whose rights it gives as a resident of its state (Cal. Civ. Code § 1798.140, Va. Code § 59.1-575,
Conn. Gen. Stat. § 42-515, C.R.S. § 6-1-1303). A request records the subject's country, not a
state, so a request under one of them must be of a subject whose country is the United States:
before, staff could open a VCDPA request for a Belgian subject, and its letters promised them, under
a law that does not protect them, its 45 days and an appeal. The GDPR, the UK GDPR, the LGPD and PIPEDA apply
by where the controller is established and what it does, not by where the subject lives: they
go with any country.
"""

from __future__ import annotations

from schemas.vocabulary import Regime

_RESIDENTS_ONLY: dict[Regime, tuple[str, str]] = {
    Regime.ccpa: ("CCPA", "California"), Regime.vcdpa: ("VCDPA", "Virginia"),
    Regime.ctdpa: ("CTDPA", "Connecticut"), Regime.cpa: ("CPA", "Colorado"),
}


def not_protected(regime: Regime, country: str | None) -> str | None:
    """Why a subject of `country` cannot have a request under `regime` (None when they can, or
    when no country is given: the regime's own is then recorded)."""
    law = _RESIDENTS_ONLY.get(regime)
    if law is None or country is None or country == "US":
        return None
    name, state = law
    return (f"the {name} protects residents of {state} only, and {country} is not the United States: "
            f"give US (or no country), or choose the law that protects this subject")
