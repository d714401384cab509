"""The evidence pack's deadlines: what they were, how they were computed, and whether the request
was answered and its extension announced in time, all counted as the workflow counts them.

Deadlines are dates in the controller's calendar (dsrflow/domain/deadlines.py): the day of receipt
is the local date in the timezone of the policy the request ran under, not UTC's, or the law's
place's where that is earlier (`receipt_date_for`; the pack names both then). The pack used to
compare the UTC date of closing with the due date, so a request closed at 00:30 in Brussels on the
day after its due date (23:30 UTC on the due date) read as answered on time.

Each rule cites the law's provision (a UK complaint's, s. 164A, with our target for its outcome), and the
calendar is named only where its holidays count: the US state laws and the LGPD count plain days.
A UK request's pack also says when its month started and why (`basis.clock`): the day its identity
was verified by code, with the dates counted from receipt that it replaced (the workflow's
`deadline.clock_started` event, workflows/verification_clock.py), or receipt, and why.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import asyncpg

# The provisions the acknowledgement cites for each law's period (activities/citations.py): one
# table for the letter and the pack.
from activities.citations import APPEAL_PROVISIONS, PERIODS
from api.read_models.event_words import country_words
from dsrflow.domain.deadlines import (
    answer_days,
    country_of_law,
    grants_appeal,
    law_zone,
    receipt_date,
    receipt_date_for,
    takes_complaints,
)
from dsrflow.i18n import long_datetime
from policy.controller import Defaults
from schemas.clock_start import clock_waits_for_verification
from schemas.vocabulary import Regime


def _in_days(regime: Regime, rule: str, *, appeal: bool = False) -> str:
    """`rule` of a regime counted in days, with its days (`days`, `further`, `all`) from the table
    the due dates are computed with (dsrflow/domain/deadlines.py `answer_days`), not written again,
    and the provision that sets them (`provision`) as the acknowledgement cites it."""
    days, further = answer_days(regime, appeal=appeal)
    provision = APPEAL_PROVISIONS.get(regime) if appeal else PERIODS.get(regime, ("", None))[1]
    return rule.format(days=days, further=further, all=days + further, provision=provision)


# How each regime's deadline is computed, as dsrflow/domain/deadlines.py computes it, for a reader
# who has not seen the code: what counts, what moves it, and the law's provision for each (a DPO
# or an authority reads the law, not the source file the pack used to cite for an appeal).
_US_STATE_RULE = ("{days} calendar days from receipt ({provision}). Extension: once, by {further} days ({all} in "
                  "all) where reasonably necessary, the subject told within the first {days} (same provision)")
_RULES: dict[str, str] = {
    Regime.gdpr: "one month from the day of receipt (Art. 12(3) GDPR); a day that does not exist in that month is "
                 "its last day, and a Saturday, Sunday or public holiday moves it to the next working day "
                 "(Regulation 1182/71, Art. 3(2)(c) and 3(4)). Extension: by two further months, to three months "
                 "from receipt by the same rules, the subject told with the reasons within the first month "
                 "(Art. 12(3) GDPR)",
    # As the workflow applies it (workflows/verification_clock.py): counted from receipt, then from
    # the day the subject verified by code. Where and why it started is `basis.clock`.
    Regime.uk_gdpr: "one month from the day of receipt or, where we asked the subject to verify their identity, "
                    "from the day they completed it (Art. 12(3) UK GDPR; the ICO's guidance on the right of "
                    "access); a Saturday, Sunday or bank holiday moves it to the next working day. Extension: by "
                    "two further months, to three months from the same day, the subject told with the reasons "
                    "within the first month (Art. 12(3) UK GDPR)",
    Regime.ccpa: _in_days(Regime.ccpa, "{days} calendar days from receipt ({provision}); receipt confirmed within "
                                       "10 business days (Cal. Code Regs. tit. 11, § 7021(a)). Extension: once, by "
                                       "{further} days ({all} in all), the subject told within the first {days} "
                                       "({provision})"),
    **{regime: _in_days(regime, _US_STATE_RULE) for regime in (Regime.vcdpa, Regime.ctdpa, Regime.cpa)},
    # The LGPD sets 15 days for a full account of the data (Art. 19, II); dsrflow answers every
    # right within it, since the regulation the law refers the other rights to (Art. 18 § 5) sets none.
    Regime.lgpd: _in_days(Regime.lgpd, "{days} days from receipt (Art. 19, II LGPD, applied to every right); "
                                       "no extension"),
    # PIPEDA s. 8(3) sets the period of an access request; dsrflow answers every request within it
    # (activities/citations.py `answer_period`, as the acknowledgement says).
    Regime.pipeda: _in_days(Regime.pipeda, "{days} days from receipt ({provision}, for access, applied to every "
                                           "request); a deadline on a Sunday or a "
                                           "holiday moves to the next day that is neither (Interpretation Act, "
                                           "ss. 26 and 35). Extension: once, by {further} days, the subject told "
                                           "within the first {days} (PIPEDA, s. 8(4))"),
}

# An appeal of a refusal, where the law grants one (dsrflow/domain/deadlines.py `grants_appeal`).
_APPEAL_RULES: dict[str, str] = {
    **{regime: _in_days(regime, "{days} calendar days from receipt of the appeal ({provision}); no extension",
                        appeal=True) for regime in (Regime.vcdpa, Regime.ctdpa)},
    Regime.cpa: _in_days(Regime.cpa, "{days} calendar days from receipt of the appeal ({provision}). Extension: "
                                     "once, by {further} days ({all} in all) where reasonably necessary, the "
                                     "subject told within the first {days} (same provision)", appeal=True),
}

# Whose holidays count, per regime: only where a deadline is counted in working days or moved off
# a holiday (the calendars of dsrflow/domain/deadlines.py). `{country}`: the controller's member
# state under the GDPR. The US state laws and the LGPD count plain calendar days.
_CALENDAR_DAYS_ONLY = "All days count, weekends and public holidays included, and a deadline stays on the day it falls."
_HOLIDAYS: dict[str, str] = {
    Regime.gdpr: "The public holidays are those of {country}, the member state where the controller acts "
                 "(Regulation 1182/71, Art. 2(1)).",
    Regime.uk_gdpr: "The bank holidays are those of England.",
    Regime.ccpa: "Weekends and public holidays count toward the 45 days; the 10 business days to confirm "
                 "receipt leave out weekends and the public holidays of California.",
    Regime.pipeda: "The holidays are Sundays and the public holidays of Canada; Saturdays count like any other day.",
}


# A complaint to us about a refusal, where the law makes us hear one (dsrflow/domain/deadlines.py
# `takes_complaints`): the Act's 30 days to acknowledge, and our target for the outcome, whose days
# are the policy's (those of the request's policy version).
_COMPLAINT_RULE = ("a complaint to us about a refused request (Data Protection Act 2018, s. 164A): acknowledged "
                   "within the 30 days beginning with its receipt, the day of receipt the first (s. 164A(3)); its "
                   "outcome told without undue delay (s. 164A(4)), which the Act puts in no number of days: the due "
                   "date is our target, {days} days from receipt (policy remedies.{regime}.appeal.answer_days). "
                   "Neither date is moved off a weekend or a holiday; no extension: the Act sets no period to "
                   "extend")


def _rule(regime: str, appeal: bool, target_days: int | None = None) -> str:
    if appeal and takes_complaints(regime):
        days, _ = answer_days(regime, appeal=True, target_days=target_days)
        return _COMPLAINT_RULE.format(days=days, regime=regime)
    if appeal and grants_appeal(regime):
        return f"an appeal of a refused request: {_APPEAL_RULES[regime]}"
    return _RULES.get(regime, "")


def _holidays(regime: str, country: str, appeal: bool = False) -> str:
    """Which calendar's days count and whose holidays move a deadline, in a sentence."""
    if appeal and takes_complaints(regime):
        return _CALENDAR_DAYS_ONLY
    return _HOLIDAYS.get(regime, _CALENDAR_DAYS_ONLY).format(country=country_words(country))


def _complaint(row: dict[str, Any]) -> bool:
    return bool((row["details"] or {}).get("appeal_of") and takes_complaints(row["regime"]))


async def _complaint_days(conn: asyncpg.Connection, row: dict[str, Any], setting: str) -> int | None:
    if not _complaint(row):
        return None
    days = await conn.fetchval("SELECT content->'remedies'->$2->'appeal'->>$3 FROM policy_versions "
                               "WHERE version = $1", row["policy_version"], row["regime"], setting)
    return int(days) if days else None


async def complaint_target(conn: asyncpg.Connection, row: dict[str, Any]) -> int | None:
    """Our target in days for the outcome of the complaint `row` (UK GDPR), as the policy version
    it ran under set it (None: that version set none, so the default; or `row` is no complaint)."""
    return await _complaint_days(conn, row, "answer_days")


async def complaint_progress_days(conn: asyncpg.Connection, row: dict[str, Any]) -> int | None:
    """How often the complaint `row` undecided gets a progress letter under its policy version
    (`remedies.uk_gdpr.appeal.progress_days`; None: none, or `row` is no complaint)."""
    return await _complaint_days(conn, row, "progress_days")


def kept_informed(row: dict[str, Any], letters: list[dict[str, Any]], every_days: int | None) -> dict[str, Any] | None:
    """A UK complaint's progress letters (DPA 2018 s. 164A(5)(b): the complainant informed of its
    progress), each with who sent it where staff did (`letters` as the pack gives them, with
    `by_hand`), and the policy's interval; None for any other request. The pack had them only among
    the letters, nothing under the deadlines to say how often they were owed."""
    if not _complaint(row):
        return None
    return {"every_days": every_days,
            "letters": [{"sent_at": letter["sent_at"], "by_hand_by": (letter.get("by_hand") or {}).get("by")}
                        for letter in letters if letter["purpose"] == "complaint_progress"]}


async def policy_defaults(conn: asyncpg.Connection, version: str) -> Defaults:
    """The timezone and country of the policy the request ran under (editing the policy later
    does not change what its evidence says)."""
    content = await conn.fetchval("SELECT content FROM policy_versions WHERE version = $1", version)
    return Defaults.model_validate((content or {}).get("defaults") or {})


def _local(moment: datetime | None, timezone: str) -> date | None:
    return receipt_date(moment, timezone) if moment else None


def _received(row: dict[str, Any], timezone: str) -> dict[str, Any]:
    """The day the request's clock counts from (`received_on`): the earlier of its date in the
    controller's zone and in the zone of the law's place (`receipt_date_for`); `received_in` names
    the zone whose date that is, `controller_received_on` the controller's date (the pack said the
    controller's alone, a day late for a request sent in the Californian evening)."""
    here = receipt_date(row["received_at"], timezone)
    counted = receipt_date_for(row["received_at"], timezone, row["regime"])
    return {"received_on": counted, "received_in": timezone if counted == here else law_zone(row["regime"]),
            "controller_received_on": here}


def _day(value: Any) -> date | None:
    """A date an event holds as an ISO string (an extension's, an alert's due date); the JSON writes it alike."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def controller_time(moment: datetime, timezone: str, language: str, *, seconds: bool = False) -> str:
    """A moment as the pack's page and the console write it (api/pages.py `controller_time`): in
    the controller's timezone, the one its deadline days are counted in, with the zone named
    as the letters name it ("5 January 2027, 00:30 CET (UTC+1)", `dsrflow.i18n.zone_name`: an
    abbreviation alone was ambiguous, "CST", or none, "+03"). Before, they wrote UTC beside days
    counted in Brussels, so a letter sent at 00:30 on the 5th read as the 4th."""
    return long_datetime(moment, language, timezone, seconds=seconds)


def on_time(moment: datetime | None, due: date | None, timezone: str) -> bool | None:
    """Whether `moment` fell by the due date, on the controller's calendar (None: not yet, or no date)."""
    day = _local(moment, timezone)
    return None if day is None or due is None else day <= due


CLOCK_STARTED = "deadline.clock_started"  # activities/lifecycle.py `start_clock_at_verification`


def _clock(row: dict[str, Any], events: list[dict[str, Any]], timezone: str, appeal: bool) -> dict[str, Any] | None:
    """When a UK request's month started, and why (`because`): `identity_verified` (with the days
    and the dates counted from receipt it replaced), or on receipt: `identity_attested` (staff
    attested it, so it was verified at receipt), `identity_not_verified` (not yet, or never: the
    month then runs from receipt), `counted_from_receipt` (verified by a workflow older than the
    rule, which kept the earlier dates). None under another law, and for a complaint to us (its
    days run from its own receipt, s. 164A)."""
    if row["regime"] != Regime.uk_gdpr or appeal:
        return None
    started = next((e["data"] for e in events if e["event_type"] == CLOCK_STARTED), None)
    if started is not None:
        return {"start": _day(started["clock_start"]), "because": "identity_verified",
                "verified_on": _day(started["verified_on"]),
                **{key: _day(started[key]) for key in ("from", "to", "extended_from", "extended_to")}}
    because = ("identity_attested" if row["attested_by"] else "counted_from_receipt" if row["verified_at"]
               else "identity_not_verified")
    return {"start": receipt_date_for(row["received_at"], timezone, row["regime"]), "because": because}


def deadlines(row: dict[str, Any], events: list[dict[str, Any]], letters: list[dict[str, Any]],
              defaults: Defaults, target_days: int | None = None) -> dict[str, Any]:
    """The deadlines section: the dates, their basis, the extension and when the subject was
    told of it, the staff alerts, and whether the request was closed by its due date.
    `target_days`: a UK complaint's target for its outcome (`complaint_target`)."""
    tz = defaults.timezone
    extension = next((e for e in events if e["event_type"] == "deadline.extended"), None)
    notice = next((letter for letter in letters if letter["purpose"] == "extension"), None)
    # Where the law sets a date to acknowledge by (the CCPA's 10 business days, a UK complaint's 30
    # days), whether the acknowledgement went by it: the pack gave the date alone.
    acknowledged = next((letter["sent_at"] for letter in letters if letter["purpose"] == "acknowledgement"), None)
    closed_on = _local(row["closed_at"], tz)
    appeal = bool((row["details"] or {}).get("appeal_of"))
    calendar = country_of_law(row["regime"], defaults.country)
    return {
        "received_at": row["received_at"], "acknowledge_by": row["acknowledge_by"],
        "acknowledged_at": acknowledged, "acknowledged_on": _local(acknowledged, tz),
        "acknowledged_on_time": on_time(acknowledged, row["acknowledge_by"], tz),
        "due_date": row["due_date"], "extended_due_date": row["extended_due_date"],
        "current_due_date": row["current_due_date"], "extended": row["extended"],
        "basis": {
            "timezone": tz, **_received(row, tz),
            "calendar": calendar, "holidays": _holidays(row["regime"], calendar, appeal),
            "appeal": appeal, "rule": _rule(row["regime"], appeal, target_days),
            "clock": _clock(row, events, tz, appeal),
        },
        "extension": None if extension is None else {
            "at": extension["occurred_at"], "by": extension["actor"], "reason": extension["data"].get("reason"),
            "from": _day(extension["data"].get("from")), "to": _day(extension["data"].get("to")),
            # The law asks that the subject be told, with the reasons, within the first period.
            "subject_told_at": notice["sent_at"] if notice else None,
            "told_before_due_date": on_time(notice["sent_at"] if notice else None, row["due_date"], tz)},
        "alerts": [{"at": e["occurred_at"], "event": e["event_type"], "due_date": _day(e["data"].get("due_date"))}
                   for e in events if e["event_type"].startswith("deadline.") and e is not extension
                   and e["event_type"] != CLOCK_STARTED],
        "closed_on": closed_on,
        "answered_on_time": on_time(row["closed_at"], row["current_due_date"], tz),
        # Still open past its due date (a task waiting for staff holds the response back): the
        # pack said "not answered yet" only, as if there were time left. Not a UK GDPR request
        # awaiting verification: its month has not started, whatever its date counted from receipt.
        "overdue": closed_on is None and not on_time(datetime.now(UTC), row["current_due_date"], tz)
        and row["current_due_date"] is not None
        and not clock_waits_for_verification(row["regime"], row["status"], appeal=appeal),
    }
