"""The evidence pack's deadlines: what they were, how they were computed, and whether the request
was answered and its extension announced in time, all counted as the workflow counts them.

Deadlines are dates in the controller's calendar (dsrflow/domain/deadlines.py): the day of receipt
is the local date in the timezone of the policy the request ran under, not UTC's. The pack used to
compare the UTC date of closing with the due date, so a request closed at 00:30 in Brussels on the
day after its due date (23:30 UTC on the due date) read as answered on time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from dsrflow.domain.deadlines import answer_days, appeal_days, country_of_law, receipt_date
from dsrflow.i18n import long_date
from policy.model import Defaults
from schemas.vocabulary import Regime


def _in_days(regime: Regime, rule: str) -> str:
    """`rule` of a regime counted in days, with its days (`days`, `further`, `all`) from the table
    the due dates are computed with (dsrflow/domain/deadlines.py `answer_days`), not written again."""
    days, further = answer_days(regime)
    return rule.format(days=days, further=further, all=days + further)


# How each regime's deadline is computed, as dsrflow/domain/deadlines.py computes it, for a reader
# who has not seen the code: what counts, and what moves it. The regime names the law.
_RULES: dict[str, str] = {
    Regime.gdpr: "one month from the day of receipt (Art. 12(3) GDPR); a day that does not exist in that month is "
                 "its last day; a Saturday, Sunday or public holiday moves it to the next working day. Extension: "
                 "three months from receipt by the same rules, announced with reasons before the first due date",
    Regime.uk_gdpr: "one month from the day of receipt or, where identity verification was asked for, from the day "
                    "it was completed (Art. 12(3) UK GDPR; ICO guidance); moved to the next working day like the "
                    "GDPR's. Extension: three months from the same day",
    Regime.ccpa: _in_days(Regime.ccpa, "{days} calendar days from receipt; receipt confirmed within 10 business "
                                       "days. Extension: once, by {further} days ({all} in all), announced within "
                                       "the first {days}"),
    **{regime: _in_days(regime, "{days} calendar days from receipt. Extension: once, by {further} days")
       for regime in (Regime.vcdpa, Regime.ctdpa, Regime.cpa)},
    Regime.lgpd: _in_days(Regime.lgpd, "{days} days from receipt; no extension"),
    Regime.pipeda: _in_days(Regime.pipeda, "{days} days from receipt; a deadline on a Sunday or holiday moves to the "
                                           "next working day (Interpretation Act ss. 26, 35). Extension: once, by "
                                           "{further} days"),
}


def _rule(regime: str, appeal: bool) -> str:
    if appeal:
        return (f"an appeal of a refused request: {appeal_days(regime)} calendar days from receipt of the appeal, "
                "under the regime's appeal rule (dsrflow/domain/deadlines.py)")
    return _RULES.get(regime, "")


async def policy_defaults(conn: asyncpg.Connection, version: str) -> Defaults:
    """The timezone and country of the policy the request ran under (editing the policy later
    does not change what its evidence says)."""
    content = await conn.fetchval("SELECT content FROM policy_versions WHERE version = $1", version)
    return Defaults.model_validate((content or {}).get("defaults") or {})


def _local(moment: datetime | None, timezone: str) -> date | None:
    return receipt_date(moment, timezone) if moment else None


def _day(value: Any) -> date | None:
    """A date an event holds as an ISO string (an extension's, an alert's due date); the JSON writes it alike."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def controller_time(moment: datetime, timezone: str, language: str, *, seconds: bool = False) -> str:
    """A moment as the pack's page and the console write it (api/pages.py `controller_time`): in
    the controller's timezone, the one its deadline days are counted in, with the zone named
    ("5 January 2027, 00:30 CET"). Before, they wrote UTC beside days counted in Brussels, so a
    letter sent at 00:30 on the 5th read as the 4th."""
    local = moment.astimezone(ZoneInfo(timezone))
    clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{long_date(local.date(), language)}, {clock} {local.tzname()}"


def on_time(moment: datetime | None, due: date | None, timezone: str) -> bool | None:
    """Whether `moment` fell by the due date, on the controller's calendar (None: not yet, or no date)."""
    day = _local(moment, timezone)
    return None if day is None or due is None else day <= due


def deadlines(row: dict[str, Any], events: list[dict[str, Any]], letters: list[dict[str, Any]],
              defaults: Defaults) -> dict[str, Any]:
    """The deadlines section: the dates, their basis, the extension and when the subject was
    told of it, the staff alerts, and whether the request was closed by its due date."""
    tz = defaults.timezone
    extension = next((e for e in events if e["event_type"] == "deadline.extended"), None)
    notice = next((letter for letter in letters if letter["purpose"] == "extension"), None)
    closed_on = _local(row["closed_at"], tz)
    appeal = bool((row["details"] or {}).get("appeal_of"))
    return {
        "received_at": row["received_at"], "acknowledge_by": row["acknowledge_by"],
        "due_date": row["due_date"], "extended_due_date": row["extended_due_date"],
        "current_due_date": row["current_due_date"], "extended": row["extended"],
        "basis": {
            "timezone": tz, "received_on": _local(row["received_at"], tz),
            "calendar": country_of_law(row["regime"], defaults.country),
            "appeal": appeal, "rule": _rule(row["regime"], appeal),
        },
        "extension": None if extension is None else {
            "at": extension["occurred_at"], "by": extension["actor"], "reason": extension["data"].get("reason"),
            "from": _day(extension["data"].get("from")), "to": _day(extension["data"].get("to")),
            # The law asks that the subject be told, with the reasons, within the first period.
            "subject_told_at": notice["sent_at"] if notice else None,
            "told_before_due_date": on_time(notice["sent_at"] if notice else None, row["due_date"], tz)},
        "alerts": [{"at": e["occurred_at"], "event": e["event_type"], "due_date": _day(e["data"].get("due_date"))}
                   for e in events if e["event_type"].startswith("deadline.") and e is not extension],
        "closed_on": closed_on,
        "answered_on_time": on_time(row["closed_at"], row["current_due_date"], tz),
    }
