"""Statutory response deadlines for data-subject requests, per privacy regime.

Pure date arithmetic: no I/O and no reading of the clock, so the same inputs always give the same
deadline (workflow code can call it as long as the `holidays` package version is pinned: a new
release that adds a holiday can move a deadline).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from dateutil.relativedelta import relativedelta

from schemas.vocabulary import Regime


class DeadlineError(ValueError):
    """Bad input to the deadline calculation; the message starts with the offending argument."""


@dataclass(frozen=True)
class Deadline:
    due_date: date
    extended_due_date: date
    acknowledge_by: date | None
    clock_start: date

    def as_json_dict(self) -> dict[str, str | None]:
        return {
            "due_date": self.due_date.isoformat(),
            "extended_due_date": self.extended_due_date.isoformat(),
            "acknowledge_by": self.acknowledge_by.isoformat() if self.acknowledge_by else None,
        }


# Holiday calendar (country, subdivision) each regime counts working days in. For `gdpr` it is the
# default only: the controller's member state replaces it (see `compute_deadline`).
_CALENDARS: dict[Regime, tuple[str, str | None]] = {
    Regime.gdpr: ("BE", None),
    Regime.uk_gdpr: ("GB", "ENG"),
    Regime.ccpa: ("US", "CA"),
    Regime.vcdpa: ("US", "VA"),
    Regime.ctdpa: ("US", "CT"),
    Regime.cpa: ("US", "CO"),
    Regime.lgpd: ("BR", None),
    Regime.pipeda: ("CA", None),
}

# The time zone of the place whose law each regime is, where it is not the controller's (the GDPR
# has no one place: the controller's own zone, `defaults.timezone`, counts). A request sent at
# 21:30 in California reaches a controller in Brussels the next morning; the regulator counts the
# day it was sent. Canada spans six zones: the westernmost, whose date is the earliest.
_LAW_ZONES: dict[Regime, str] = {
    Regime.uk_gdpr: "Europe/London",
    Regime.ccpa: "America/Los_Angeles",
    Regime.vcdpa: "America/New_York",
    Regime.ctdpa: "America/New_York",
    Regime.cpa: "America/Denver",
    Regime.lgpd: "America/Sao_Paulo",
    Regime.pipeda: "America/Vancouver",
}

# EU member states plus Iceland, Liechtenstein and Norway, where the GDPR applies through the EEA
# Agreement. The UK is deliberately absent: its requests belong to `uk_gdpr`.
_EEA = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IS IT LI LT LU LV MT NL NO PL PT RO SE SI SK".split()
)

# Regimes counted in plain calendar days: (days to respond, days including the one extension).
_CALENDAR_DAYS: dict[Regime, tuple[int, int]] = {
    **dict.fromkeys((Regime.ccpa, Regime.vcdpa, Regime.ctdpa, Regime.cpa), (45, 90)),
    Regime.lgpd: (15, 15),  # the LGPD allows no extension
    Regime.pipeda: (30, 60),
}

# Appeals of a refusal, where a US state law grants one: (days to answer from receipt of the
# appeal, days including the one extension). VCDPA § 59.1-577(C) and CTDPA § 42-518(d): 60 days,
# no extension; CPA § 6-1-1306(3)(b): 45 days, extendable by 60.
_APPEAL_DAYS: dict[Regime, tuple[int, int]] = {
    Regime.vcdpa: (60, 60),
    Regime.ctdpa: (60, 60),
    Regime.cpa: (45, 105),
}

# A complaint to the controller about a refusal, where the law makes the controller hear one (UK:
# Data Protection Act 2018 s. 164A, inserted by the Data (Use and Access) Act 2025 s. 103, in force
# 19 June 2026): acknowledged within the 30 days beginning with its receipt (s. 164A(3)), the outcome
# told "without undue delay" (s. 164A(4)), which the Act puts in no number of days. The days here are
# our target for that outcome by default, the due date staff and the deadline watch see; the policy
# sets its own (`remedies.uk_gdpr.appeal.answer_days`, 1 to 90: `target_days` below). No extension
# (a target the law does not set cannot be extended under it).
_COMPLAINT_DAYS: dict[Regime, int] = {Regime.uk_gdpr: 30}
MAX_COMPLAINT_DAYS = 90
COMPLAINT_ACKNOWLEDGEMENT_DAYS = 30

# Canada's Interpretation Act s. 26 moves a time limit that ends on a holiday to the next day that
# is not one, and s. 35 makes every Sunday a holiday (but not Saturday). The US state laws and the
# LGPD are applied as plain calendar days: their deadline stays where it lands.
_SUNDAY_AND_HOLIDAYS_MOVE = frozenset({Regime.pipeda})


def default_country(regime: Regime | str) -> str:
    return _CALENDARS[_parse_regime(regime)][0]


def country_of_law(regime: Regime | str, controller_country: str) -> str:
    """The country whose law `regime` is: under the GDPR the controller's member state
    (`controller_country`, the policy's defaults.country), otherwise the regime's own (US for the
    VCDPA). A request's country when it gives none, and the calendar its deadline counts in."""
    return controller_country if _parse_regime(regime) == Regime.gdpr else default_country(regime)


def grants_appeal(regime: Regime | str) -> bool:
    """Whether the law of `regime` lets the subject appeal a refusal to the controller (the US
    state laws, each with its statutory days)."""
    return _parse_regime(regime) in _APPEAL_DAYS


def takes_complaints(regime: Regime | str) -> bool:
    """Whether the law of `regime` makes the controller hear the subject's complaint (UK: DPA 2018
    s. 164A), acknowledged within 30 days and answered without undue delay."""
    return _parse_regime(regime) in _COMPLAINT_DAYS


def reconsiders(regime: Regime | str) -> str | None:
    """What a subject refused under `regime` can ask of us, a request that refers to the refused one
    (dsrflow/domain/appeals.py): "appeal" (VCDPA, CTDPA, CPA), "complaint" (UK GDPR), or None."""
    return "appeal" if grants_appeal(regime) else "complaint" if takes_complaints(regime) else None


def answer_days(regime: Regime | str, *, appeal: bool = False, target_days: int | None = None) -> tuple[int, int]:
    """The calendar days the law of `regime` gives to answer a request (or an appeal of a refusal,
    or our target for a complaint's outcome: `target_days`, the policy's, else 30), and the further
    days its one extension adds (0: none). Only the regimes counted in plain days (not the GDPR's
    months): KeyError for the others."""
    reg = _parse_regime(regime)
    if appeal and reg in _COMPLAINT_DAYS:
        return target_days or _COMPLAINT_DAYS[reg], 0
    days, extended = (_APPEAL_DAYS if appeal else _CALENDAR_DAYS)[reg]
    return days, extended - days


def is_working_day(day: date, country: str, subdivision: str | None = None) -> bool:
    return day.weekday() < 5 and day not in _holidays(country.upper(), subdivision, day.year)


def receipt_date(received_at: datetime, timezone: str) -> date:
    """The day a moment fell on in `timezone`: its local date, not UTC's. A subject's request
    counts its clock from `receipt_date_for`, which also asks the law's own place."""
    return received_at.astimezone(ZoneInfo(timezone)).date()


def law_zone(regime: Regime | str) -> str | None:
    """The time zone of the place whose law `regime` is (None: the GDPR's, the controller's own)."""
    return _LAW_ZONES.get(_parse_regime(regime))


def receipt_date_for(received_at: datetime, controller_tz: str, regime: Regime | str) -> date:
    """The day a request under `regime` was received, the day its clock counts from: the earlier
    of its date in the controller's zone and in the zone of the law's place (`law_zone`), so that
    no deadline runs later than either place counts it (a request sent at 21:30 on 1 March in
    California, 06:30 on 2 March in Brussels, was received on 1 March)."""
    zone = law_zone(regime)
    here = receipt_date(received_at, controller_tz)
    return here if zone is None else min(here, receipt_date(received_at, zone))


def compute_deadline(
    regime: Regime | str,
    received: date,
    establishment: str | None = None,
    verified: date | None = None,
    *,
    appeal: bool = False,
    target_days: int | None = None,
) -> Deadline:
    """Deadlines of a request received on `received` (the controller's local date).

    `establishment` is the country where the controller is established, never the subject's: under
    Reg. 1182/71 Art. 2(1) and 3(4) the public holidays that move a GDPR deadline are those of the
    member state where the controller acts. Only `gdpr` varies by member state; the other regimes
    have one calendar each and refuse any other country. `appeal`: the deadlines of an appeal of
    a refused request, or of a complaint about it, under a regime that grants one (`reconsiders`);
    a complaint's outcome is due `target_days` after receipt (the policy's target, else 30).
    """
    reg = _parse_regime(regime)
    _check_date("received", received)
    if verified is not None:
        _check_date("verified", verified)
        if verified < received:
            raise DeadlineError(
                f"verified: {verified.isoformat()} is earlier than received {received.isoformat()}"
            )
    cal_country, subdiv = _calendar(reg, establishment)
    if appeal and reg in _COMPLAINT_DAYS:
        if target_days is not None and not 1 <= target_days <= MAX_COMPLAINT_DAYS:
            raise DeadlineError(f"target_days: {target_days} is not between 1 and {MAX_COMPLAINT_DAYS}")
        # "Within the period of 30 days beginning when the complaint is received": the day of
        # receipt is the first of the 30 (the earlier of the readings), not moved off a weekend.
        due = received + timedelta(days=answer_days(reg, appeal=True, target_days=target_days)[0])
        return Deadline(due_date=due, extended_due_date=due, clock_start=received,
                        acknowledge_by=received + timedelta(days=COMPLAINT_ACKNOWLEDGEMENT_DAYS - 1))
    if appeal:  # calendar days, like the regime's own deadline
        if reg not in _APPEAL_DAYS:
            raise DeadlineError(f"regime: {reg} grants no appeal to the controller")
        days, extended_days = _APPEAL_DAYS[reg]
        return Deadline(due_date=received + timedelta(days=days),
                        extended_due_date=received + timedelta(days=extended_days),
                        acknowledge_by=None, clock_start=received)

    if reg in (Regime.gdpr, Regime.uk_gdpr):
        # The ICO starts the UK clock once identity is confirmed; EU Art. 12(3) runs from receipt
        # whatever happens afterwards, so an EU `verified` date must not buy the controller time.
        start = max(received, verified) if reg is Regime.uk_gdpr and verified else received
        return Deadline(
            due_date=_roll_forward(start + relativedelta(months=1), cal_country, subdiv),
            # "Two further months" extend the original period, so count 3 months from the start,
            # not 2 months from a due date that may already have rolled past a weekend.
            extended_due_date=_roll_forward(start + relativedelta(months=3), cal_country, subdiv),
            acknowledge_by=None,
            clock_start=start,
        )

    days, extended_days = _CALENDAR_DAYS[reg]
    acknowledge_by = None
    if reg is Regime.ccpa:  # CCPA regulations s. 7021(a): confirm receipt within 10 business days
        acknowledge_by = _add_working_days(received, 10, cal_country, subdiv)
    due, extended = received + timedelta(days=days), received + timedelta(days=extended_days)
    if reg in _SUNDAY_AND_HOLIDAYS_MOVE:
        due = _past_sundays_and_holidays(due, cal_country, subdiv)
        extended = _past_sundays_and_holidays(extended, cal_country, subdiv)
    # Verification does not pause these clocks: they always run from receipt.
    return Deadline(
        due_date=due,
        extended_due_date=extended,
        acknowledge_by=acknowledge_by,
        clock_start=received,
    )


def _parse_regime(regime: Regime | str) -> Regime:
    try:
        return Regime(regime.strip().lower()) if isinstance(regime, str) else Regime(regime)
    except ValueError:
        expected = ", ".join(r.value for r in Regime)
        raise DeadlineError(f"regime: unknown {regime!r}; expected one of {expected}") from None


def _check_date(name: str, value: object) -> None:
    # A datetime is a date subclass, but its time zone decides which day it is: the caller must.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise DeadlineError(f"{name}: expected a datetime.date, got {type(value).__name__}")


def _calendar(regime: Regime, establishment: str | None) -> tuple[str, str | None]:
    default, subdiv = _CALENDARS[regime]
    if establishment is None:
        return default, subdiv
    code = establishment.strip().upper() if isinstance(establishment, str) else establishment
    if regime is Regime.gdpr:
        if code not in _EEA:
            raise DeadlineError(f"country: {establishment!r} is not an EU/EEA member state code")
        return code, None
    if code != default:
        raise DeadlineError(f"country: {regime} uses the {default} calendar, got {establishment!r}")
    return default, subdiv


@lru_cache(maxsize=1024)
def _holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    if country not in holidays.list_supported_countries():
        raise DeadlineError(f"country: no holiday calendar for {country!r}")
    try:
        return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))
    except NotImplementedError:
        raise DeadlineError(f"subdivision: {subdivision!r} unknown for {country!r}") from None


def _roll_forward(day: date, country: str, subdivision: str | None) -> date:
    while not is_working_day(day, country, subdivision):
        day += timedelta(days=1)
    return day


def _past_sundays_and_holidays(day: date, country: str, subdivision: str | None) -> date:
    while day.weekday() == 6 or day in _holidays(country, subdivision, day.year):
        day += timedelta(days=1)
    return day


def _add_working_days(start: date, count: int, country: str, subdivision: str | None) -> date:
    # The day of receipt itself is not counted, whether or not it is a working day.
    day = start
    while count:
        day += timedelta(days=1)
        if is_working_day(day, country, subdivision):
            count -= 1
    return day


def working_days_after(start: date, count: int, country: str) -> date:
    """The `count`th working day after `start` in `country` (the day itself not counted)."""
    return _add_working_days(start, count, country.upper(), None)
