"""The product's vocabularies, each defined once and imported wherever it is used: privacy regimes,
languages, letter purposes, staff-alert kinds and connector kinds. (Request types, statuses and denial reasons
live beside the request they describe, in schemas/requests.py.)"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Regime(StrEnum):
    gdpr = "gdpr"
    uk_gdpr = "uk_gdpr"
    ccpa = "ccpa"
    vcdpa = "vcdpa"
    ctdpa = "ctdpa"
    cpa = "cpa"
    lgpd = "lgpd"
    pipeda = "pipeda"


class Language(StrEnum):
    """The languages dsrflow writes to subjects in (a catalog under dsrflow/i18n/locales/ each;
    English is the source language). The policy picks the controller's supported subset."""

    en = "en"
    nl = "nl"
    fr = "fr"
    de = "de"


class LetterPurpose(StrEnum):
    acknowledgement = "acknowledgement"
    verification = "verification"
    reminder = "reminder"
    # An LGPD access request's simplified confirmation, at once (Art. 19, I; activities/letter_confirmation.py).
    simplified_confirmation = "simplified_confirmation"
    extension = "extension"
    # A UK complaint undecided: where it stands (DPA 2018 s. 164A(5)(b); workflows/complaint_progress.py).
    complaint_progress = "complaint_progress"
    response = "response"
    denial = "denial"
    closed_unverified = "closed_unverified"
    cancellation = "cancellation"
    restriction_lift = "restriction_lift"
    staff_alert = "staff_alert"


#: Every letter purpose, in the order letters are usually sent.
PURPOSES: tuple[str, ...] = tuple(LetterPurpose)
#: Purposes whose letter goes to the data subject (the rest go to staff).
SUBJECT_PURPOSES: tuple[str, ...] = tuple(p for p in PURPOSES if p != LetterPurpose.staff_alert)


class ConnectorKind(StrEnum):
    """How dsrflow reaches a system that holds personal data (one module each under
    activities/connectors/)."""

    sql = "sql"
    opendsr = "opendsr"
    http = "http"
    manual_email = "manual_email"


# Staff alerts: a warning N days before the due date (one per policy `deadline_warnings_days` entry),
# the deadline passed, or a step that needs a person.
ALERT_OVERDUE = "overdue"
ALERT_NEEDS_ATTENTION = "needs_attention"


def warning_alert_kind(days: int) -> str:
    """The alert kind of the warning sent `days` before the due date (0: the deadline passed)."""
    return f"due_in_{days}_days" if days else ALERT_OVERDUE


def staff_alert_kinds(warning_days: Iterable[int]) -> tuple[str, ...]:
    """The staff alerts a policy can cause: one warning per `deadline_warnings_days` entry."""
    return (*(warning_alert_kind(days) for days in warning_days), ALERT_OVERDUE, ALERT_NEEDS_ATTENTION)
