"""What the letter closing an appeal (a UK complaint) undecided says of the appeals closed for it.
One decision per refusal (activities/appeal_claims.py) closed them, their letters promising this
one's decision; this one now ends without it (withdrawn, cancelled by staff, closed unverified,
denied unidentified: dsrflow/domain/appeals_deferred.py), so its letter names each, says the
refusal was not reconsidered, and how to appeal (complain to us) again, as the refusal letters say
it under that law. Read from the audit trail with the request, not passed by the workflow: no workflow
command changes, and a letter of a workflow started before it says it too."""

from __future__ import annotations

from typing import Any

from dsrflow.domain.appeals import complaint_form
from dsrflow.domain.appeals_deferred import undecided_ending
from dsrflow.domain.references import short_reference

# The purposes of the letters that close a request without a decision on its merits.
_UNDECIDED = {"cancellation": "cancelled", "closed_unverified": "closed_unverified", "denial": "denied"}


def closed_for_context(row: dict[str, Any], purpose: str, params: dict[str, Any], base_url: str,
                       language: str) -> dict[str, Any] | None:
    """The letter's `closed_for`: the references of the appeals closed for this one (`appeals`) and
    the refused request's complaint form (`form_url`, the portal's, as a UK refusal letter gives it);
    None for a letter that decides, of a request that is not an appeal, or when none was closed for it."""
    appeal_of = (row["details"] or {}).get("appeal_of")
    status = _UNDECIDED.get(purpose)
    if not appeal_of or status is None:
        return None
    # The letter's params say how it closes: withdrawn or cancelled by staff, denied unidentified;
    # not closed for another appeal itself, nor denied on the merits (that decides the refusal).
    if undecided_ending(status, {"withdrawn_by_subject": params.get("withdrawn"),
                                 "decided_as": params.get("decided_as"),
                                 "reason_code": params.get("reason_code")}) is None:
        return None
    # The appeals closed for it, read with the request (CLOSED_FOR in dsrflow/domain/appeals_deferred.py).
    closed = row.get("closed_for") or []
    if not closed:
        return None
    return {"appeals": [short_reference(a) for a in closed],
            "form_url": complaint_form(short_reference(appeal_of), language, base_url)}
