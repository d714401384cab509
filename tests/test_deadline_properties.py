"""Deadline arithmetic's properties, checked over received dates from 2020 to 2035 (hypothesis):
every due date is a working day at or after the statutory period's end, and stops at the first one
(tests/test_deadlines.py has the hand-worked examples)."""

from __future__ import annotations

from datetime import date, timedelta

import holidays
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from dsrflow.domain.deadlines import Regime, compute_deadline, is_working_day

received_dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
eu_countries = st.sampled_from(["BE", "DE", "FR", "NL", "IE"])


@settings(max_examples=300, deadline=None)
@given(received=received_dates, country=eu_countries)
def test_gdpr_properties(received: date, country: str) -> None:
    deadline = compute_deadline(Regime.gdpr, received, establishment=country)
    one_month = received + relativedelta(months=1)  # relativedelta clamps to the month's end
    three_months = received + relativedelta(months=3)

    assert is_working_day(deadline.due_date, country)
    assert is_working_day(deadline.extended_due_date, country)
    assert deadline.due_date >= one_month
    assert deadline.extended_due_date >= three_months
    assert deadline.extended_due_date >= deadline.due_date
    assert deadline.due_date <= one_month + timedelta(days=10)
    assert deadline.due_date - received <= timedelta(days=31 + 10)
    # Rolling forward stops at the first working day: nothing in between was one.
    day = one_month
    while day < deadline.due_date:
        assert not is_working_day(day, country)
        day += timedelta(days=1)
    assert deadline.clock_start == received
    assert deadline.acknowledge_by is None


@settings(max_examples=200, deadline=None)
@given(received=received_dates, delay=st.integers(min_value=0, max_value=60))
def test_uk_gdpr_clock_starts_at_verification(received: date, delay: int) -> None:
    verified = received + timedelta(days=delay)
    deadline = compute_deadline("uk_gdpr", received, verified=verified)
    assert deadline.clock_start == verified
    assert deadline.due_date >= verified + relativedelta(months=1)
    assert deadline.extended_due_date >= verified + relativedelta(months=3)
    assert is_working_day(deadline.due_date, "GB", "ENG")
    # The EU regime ignores verification entirely.
    assert compute_deadline("gdpr", received, verified=verified) == compute_deadline("gdpr", received)


@settings(max_examples=200, deadline=None)
@given(
    received=received_dates,
    regime=st.sampled_from(["ccpa", "vcdpa", "ctdpa", "cpa", "lgpd"]),
    delay=st.none() | st.integers(min_value=0, max_value=60),
)
def test_calendar_day_regimes(received: date, regime: str, delay: int | None) -> None:
    verified = None if delay is None else received + timedelta(days=delay)
    deadline = compute_deadline(regime, received, verified=verified)
    days, extended = {"lgpd": (15, 15)}.get(regime, (45, 90))
    assert deadline.due_date - received == timedelta(days=days)
    assert deadline.extended_due_date - received == timedelta(days=extended)
    assert deadline.clock_start == received
    if regime == "ccpa":
        ack = deadline.acknowledge_by
        assert ack is not None and is_working_day(ack, "US", "CA")
        # Two full working weeks (12 days from a Sunday to the second Friday) plus a few holidays.
        assert received + timedelta(days=12) <= ack <= received + timedelta(days=21)
        assert sum(is_working_day(received + timedelta(days=n), "US", "CA")
                   for n in range(1, (ack - received).days + 1)) == 10
    else:
        assert deadline.acknowledge_by is None


def _holiday_in_canada(day: date) -> bool:
    return day.weekday() == 6 or day in holidays.country_holidays("CA", years=day.year)


@settings(max_examples=200, deadline=None)
@given(received=received_dates, delay=st.none() | st.integers(min_value=0, max_value=60))
def test_pipeda_moves_past_sundays_and_holidays(received: date, delay: int | None) -> None:
    verified = None if delay is None else received + timedelta(days=delay)
    deadline = compute_deadline("pipeda", received, verified=verified)
    for days, moved in ((30, deadline.due_date), (60, deadline.extended_due_date)):
        day = received + timedelta(days=days)
        assert day <= moved <= day + timedelta(days=4)
        # It stops at the first day that is not a Sunday or holiday: a Saturday counts as one.
        while day < moved:
            assert _holiday_in_canada(day)
            day += timedelta(days=1)
        assert not _holiday_in_canada(moved)
    assert deadline.clock_start == received and deadline.acknowledge_by is None
