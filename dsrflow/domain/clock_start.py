"""Whether a request's time to answer has started yet. Under the UK GDPR the month starts on the day
the subject completes the identity verification we asked for (DESIGN.md, Deadlines; the workflow
moves the dates then: workflows/verification_clock.py). Until they verify, the dates stored with the
request are counted from receipt: the earliest the request can be due, not the day it is due. The
portal tells the subject what the acknowledgement told them (within one month of confirming their
identity), the console labels the date as provisional, and an extension is refused: its letter would
give a date that verification then moves later."""

from __future__ import annotations

from schemas.requests import RequestStatus
from schemas.vocabulary import Regime

# Why an extension is refused meanwhile (workflows/extension.py): the API answers 409 with it.
EXTEND_ONCE_VERIFIED = ("the month of a UK GDPR request starts when the subject confirms their identity; "
                        "extend once verified (its due date is not known before)")


def clock_waits_for_verification(regime: str, status: RequestStatus | str, *, appeal: bool = False) -> bool:
    """A UK GDPR request awaiting its subject's verification: its month has not started. Not a
    complaint to us (`appeal`: DPA 2018 s. 164A counts from its receipt), not an attested request
    (verified at receipt, so never awaiting verification), and under no other law (GDPR Art. 12(3)
    and the others run from receipt whatever verification takes)."""
    return regime == Regime.uk_gdpr and not appeal and RequestStatus(status) == RequestStatus.awaiting_verification
