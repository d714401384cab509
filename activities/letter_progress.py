"""What a UK complaint's progress letter says besides its facts (workflows/complaint_progress.py):
the Commissioner, and when we write next."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from policy.model import Policy


def progress_context(policy: Policy, regime: str, received: date, params: dict[str, Any],
                     remedies: dict[str, Any]) -> dict[str, Any]:
    """`complaint`: the Commissioner (`remedies`, as a complaint closed undecided names them: the
    letter decides nothing); `next_date`: the day of the next progress letter, should the
    complaint still be undecided then (the n-th goes `n * progress_days` after receipt)."""
    every = policy.complaint_progress_days(regime)
    later = received + timedelta(days=every * (params["number"] + 1)) if every else None
    return {"complaint": remedies, "next_date": later}
