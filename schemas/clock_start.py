"""Whether a request's time to answer has started yet. Under the UK GDPR the month starts on the day
the subject completes the identity verification we asked for (DESIGN.md, Deadlines; the workflow
moves the dates then: workflows/verification_clock.py). Until they verify, the dates stored with the
request are counted from receipt: the earliest the request can be due, not the day it is due. The
portal tells the subject what the acknowledgement told them (within one month of confirming their
identity), the console labels the date as provisional, and an extension is refused: its letter would
give a date that verification then moves later. Nor is the request due or overdue meanwhile: the
staff queue gives it no days left and leaves it out of its overdue and due-before filters, the
dashboard out of its due weeks and the metrics out of their overdue gauges (`clock_waits_sql`), and
the deadline watch sends no warning until the clock starts (workflows/deadline_watch.py)."""

from __future__ import annotations

from schemas.requests import RequestStatus
from schemas.vocabulary import Regime
from schemas.workflow import RequestFacts

# Why an extension is refused meanwhile (workflows/extension.py): the API answers 409 with it.
EXTEND_ONCE_VERIFIED = ("the month of a UK GDPR request starts when the subject confirms their identity; "
                        "extend once verified (its due date is not known before)")


def clock_waits_sql(row: str = "r") -> str:
    """`clock_waits_for_verification` in SQL, of the `dsr_requests` row named `row`: a complaint
    to us is a request whose details name the request it complains of (`appeal_of`)."""
    return (f"({row}.regime = '{Regime.uk_gdpr.value}' AND {row}.status = '{RequestStatus.awaiting_verification.value}'"
            f" AND NOT ({row}.details ? 'appeal_of'))")


def clock_waits_for_verification(regime: str, status: RequestStatus | str, *, appeal: bool = False) -> bool:
    """A UK GDPR request awaiting its subject's verification: its month has not started. Not a
    complaint to us (`appeal`: DPA 2018 s. 164A counts from its receipt), not an attested request
    (verified at receipt, so never awaiting verification), and under no other law (GDPR Art. 12(3)
    and the others run from receipt whatever verification takes)."""
    return regime == Regime.uk_gdpr and not appeal and RequestStatus(status) == RequestStatus.awaiting_verification


def facts_clock_waits(facts: RequestFacts, status: RequestStatus) -> bool:
    """`clock_waits_for_verification` as a request's workflow knows it: its facts do not say
    whether it is a complaint to us, but under the UK GDPR a complaint alone has no extension (its
    due date is our target, which the Act does not let us extend: dsrflow/domain/deadlines.py),
    as workflows/extension.py tells one too."""
    return clock_waits_for_verification(facts.regime, status, appeal=facts.extended_due_date <= facts.due_date)
