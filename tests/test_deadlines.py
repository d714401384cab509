"""Deadline arithmetic: hand-worked examples, input errors and the CLI (properties over 2020-2035:
tests/test_deadline_properties.py).

Every expected date in EXAMPLES was worked out by hand from the rules and checked against a
calendar (weekday noted) and the holiday lists of the `holidays` package; none is produced by
running the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from dsrflow.domain.deadlines import (
    Deadline,
    DeadlineError,
    Regime,
    compute_deadline,
    default_country,
    grants_appeal,
    is_working_day,
    receipt_date,
)
from policy.model import DEFAULT_POLICY
from tests.yaml_files import dump_yaml, read_yaml

D = date.fromisoformat

# (regime, controller's establishment, received, verified, due, extended, acknowledge_by, clock_start)
EXAMPLES = [
    pytest.param(
        "gdpr", None, "2026-01-31", None, "2026-03-02", "2026-04-30", None, "2026-01-31",
        # +1 month clamps to Sat 28 Feb -> Mon 2 Mar; +3 months = Thu 30 Apr, a working day.
        id="gdpr-be-month-end-clamp-weekend",
    ),
    pytest.param(
        "gdpr", "BE", "2028-01-31", None, "2028-02-29", "2028-05-02", None, "2028-01-31",
        # Leap year: clamps to Tue 29 Feb. +3 months = Sun 30 Apr -> Mon 1 May (Labour Day) -> Tue 2 May.
        id="gdpr-be-leap-year-and-labour-day",
    ),
    pytest.param(
        "gdpr", "BE", "2026-06-21", None, "2026-07-22", "2026-09-21", None, "2026-06-21",
        # Tue 21 Jul is the Belgian National Day -> Wed 22 Jul; extended Mon 21 Sep.
        id="gdpr-be-national-day",
    ),
    pytest.param(
        "gdpr", "BE", "2026-10-11", None, "2026-11-12", "2027-01-11", None, "2026-10-11",
        # Wed 11 Nov is Armistice Day -> Thu 12 Nov; extended Mon 11 Jan 2027.
        id="gdpr-be-armistice",
    ),
    pytest.param(
        "gdpr", "BE", "2026-03-06", None, "2026-04-07", "2026-06-08", None, "2026-03-06",
        # Mon 6 Apr is Easter Monday -> Tue 7 Apr; extended Sat 6 Jun -> Mon 8 Jun.
        id="gdpr-be-easter-monday",
    ),
    pytest.param(
        "gdpr", "BE", "2026-04-23", None, "2026-05-26", "2026-07-23", None, "2026-04-23",
        # Sat 23 May -> Sun 24 (Pentecost) -> Mon 25 (Whit Monday) -> Tue 26 May; extended Thu 23 Jul.
        id="gdpr-be-weekend-then-whit-monday",
    ),
    pytest.param(
        "gdpr", "BE", "2026-03-10", "2026-03-20", "2026-04-10", "2026-06-10", None, "2026-03-10",
        # EU clock runs from receipt even though identity was verified later: Fri 10 Apr, Wed 10 Jun.
        id="gdpr-verification-does-not-pause",
    ),
    pytest.param(
        "gdpr", "BE", "2026-03-03", None, "2026-04-03", "2026-06-03", None, "2026-03-03",
        # Fri 3 Apr (Good Friday) is a working day in Belgium; extended Wed 3 Jun.
        id="gdpr-be-good-friday-is-working",
    ),
    pytest.param(
        "gdpr", "DE", "2026-03-03", None, "2026-04-07", "2026-06-03", None, "2026-03-03",
        # Same receipt by a controller in Germany: Fri 3 Apr Good Friday -> Sat, Sun -> Mon 6 Easter Monday -> Tue 7 Apr.
        id="gdpr-de-good-friday-and-easter-monday",
    ),
    pytest.param(
        "gdpr", "fr", "2026-04-08", None, "2026-05-11", "2026-07-08", None, "2026-04-08",
        # A controller in France (lower-case code accepted): Fri 8 May is Victory Day -> Mon 11 May;
        # extended Wed 8 Jul.
        id="gdpr-fr-victory-day",
    ),
    pytest.param(
        "uk_gdpr", None, "2026-07-31", None, "2026-09-01", "2026-11-02", None, "2026-07-31",
        # Mon 31 Aug is the Late Summer Bank Holiday -> Tue 1 Sep; extended Sat 31 Oct -> Mon 2 Nov.
        id="uk-gdpr-bank-holiday",
    ),
    pytest.param(
        "uk_gdpr", None, "2026-03-20", "2026-04-03", "2026-05-05", "2026-07-03", None, "2026-04-03",
        # Clock starts at verification (3 Apr): Sun 3 May -> Mon 4 May (May Day) -> Tue 5 May;
        # extended Fri 3 Jul.
        id="uk-gdpr-clock-starts-at-verification",
    ),
    pytest.param(
        "uk_gdpr", "GB", "2026-11-26", None, "2026-12-29", "2027-02-26", None, "2026-11-26",
        # Sat 26 Dec -> Sun 27 -> Mon 28 (Boxing Day observed) -> Tue 29 Dec; extended Fri 26 Feb.
        id="uk-gdpr-boxing-day-observed",
    ),
    pytest.param(
        "ccpa", None, "2026-11-20", "2026-12-01", "2027-01-04", "2027-02-18", "2026-12-08", "2026-11-20",
        # Received Fri 20 Nov. Business days: 23, 24, 25 Nov (1-3); 26 Thanksgiving and 27 (CA day
        # after Thanksgiving) skipped, then the weekend; 30 Nov, 1, 2, 3, 4 Dec (4-8); 7, 8 Dec (9-10).
        # 45 days = 4 Jan 2027, 90 days = 18 Feb 2027. Verification later changes nothing.
        id="ccpa-thanksgiving",
    ),
    pytest.param(
        "ccpa", "us", "2026-01-01", None, "2026-02-15", "2026-04-01", "2026-01-15", "2026-01-01",
        # 45 days lands on Sun 15 Feb and stays there (calendar days, no roll); 90 days = Wed 1 Apr.
        # Ack: Fri 2 Jan, 5-9 Jan, 12-15 Jan -> 10th business day Thu 15 Jan.
        id="ccpa-no-roll-forward",
    ),
    pytest.param(
        "vcdpa", None, "2026-03-01", None, "2026-04-15", "2026-05-30", None, "2026-03-01",
        # +45 = 15 Apr; +90 = Sat 30 May (no roll).
        id="vcdpa",
    ),
    pytest.param(
        "ctdpa", None, "2026-12-20", None, "2027-02-03", "2027-03-20", None, "2026-12-20",
        # +45 across the year end = 3 Feb 2027; +90 = 20 Mar 2027.
        id="ctdpa",
    ),
    pytest.param(
        "cpa", None, "2028-02-01", None, "2028-03-17", "2028-05-01", None, "2028-02-01",
        # Leap February has 29 days: +45 = 17 Mar; +90 = 1 May.
        id="cpa-leap-year",
    ),
    pytest.param(
        "lgpd", None, "2026-12-20", None, "2027-01-04", "2027-01-04", None, "2026-12-20",
        # +15 = 4 Jan 2027; no extension, so extended == due.
        id="lgpd",
    ),
    pytest.param(
        "pipeda", None, "2026-02-10", None, "2026-03-12", "2026-04-11", None, "2026-02-10",
        # +30 = Thu 12 Mar; +60 = Sat 11 Apr, which is not a holiday (Interpretation Act s. 35).
        id="pipeda",
    ),
    pytest.param(
        "pipeda", None, "2026-02-06", None, "2026-03-09", "2026-04-07", None, "2026-02-06",
        # +30 = Sun 8 Mar -> Mon 9 Mar (Interpretation Act s. 26); +60 = Tue 7 Apr.
        id="pipeda-sunday-moves",
    ),
    pytest.param(
        "pipeda", "CA", "2026-06-01", None, "2026-07-02", "2026-07-31", None, "2026-06-01",
        # +30 = Wed 1 Jul (Canada Day) -> Thu 2 Jul; +60 = Fri 31 Jul.
        id="pipeda-canada-day-moves",
    ),
    pytest.param(
        "pipeda", None, "2026-03-04", None, "2026-04-04", "2026-05-04", None, "2026-03-04",
        # +30 = Fri 3 Apr (Good Friday) -> Sat 4 Apr, the next day that is not a holiday;
        # +60 = Sun 3 May -> Mon 4 May.
        id="pipeda-good-friday-to-saturday",
    ),
]


@pytest.mark.parametrize(
    "regime, establishment, received, verified, due, extended, ack, clock_start", EXAMPLES
)
def test_worked_examples(
    regime: str,
    establishment: str | None,
    received: str,
    verified: str | None,
    due: str,
    extended: str,
    ack: str | None,
    clock_start: str,
) -> None:
    deadline = compute_deadline(
        regime, D(received), establishment=establishment, verified=D(verified) if verified else None
    )
    assert deadline == Deadline(
        due_date=D(due),
        extended_due_date=D(extended),
        acknowledge_by=D(ack) if ack else None,
        clock_start=D(clock_start),
    )


def test_as_json_dict() -> None:
    deadline = compute_deadline(Regime.ccpa, D("2026-11-20"))
    assert deadline.as_json_dict() == {
        "due_date": "2027-01-04",
        "extended_due_date": "2027-02-18",
        "acknowledge_by": "2026-12-08",
    }
    assert compute_deadline("gdpr", D("2026-01-31")).as_json_dict()["acknowledge_by"] is None


def test_regime_accepts_enum_and_any_case() -> None:
    received = D("2026-01-31")
    assert compute_deadline(Regime.gdpr, received) == compute_deadline(" GDPR ", received)
    assert [r.value for r in Regime] == [
        "gdpr", "uk_gdpr", "ccpa", "vcdpa", "ctdpa", "cpa", "lgpd", "pipeda",
    ]


@pytest.mark.parametrize(
    "regime, country",
    [
        ("gdpr", "BE"), ("uk_gdpr", "GB"), ("ccpa", "US"), ("vcdpa", "US"), ("ctdpa", "US"),
        ("cpa", "US"), ("lgpd", "BR"), ("pipeda", "CA"),
    ],
)
def test_default_country(regime: str, country: str) -> None:
    assert default_country(regime) == country
    assert default_country(Regime(regime)) == country


def test_is_working_day() -> None:
    assert is_working_day(D("2026-07-22"), "BE")
    assert not is_working_day(D("2026-07-21"), "BE")  # National Day
    assert is_working_day(D("2026-07-21"), "de")  # not a German holiday; code is case-insensitive
    assert not is_working_day(D("2026-02-28"), "BE")  # Saturday
    assert not is_working_day(D("2026-08-31"), "GB", "ENG")  # Late Summer Bank Holiday
    assert not is_working_day(D("2026-11-27"), "US", "CA")  # CA day after Thanksgiving
    assert is_working_day(D("2026-11-27"), "US")  # not a federal holiday


# --- receipt date and the CLI -----------------------------------------------------------------


def test_receipt_date_is_the_controllers_local_date() -> None:
    # Winter: Brussels is UTC+1, so 23:30 UTC is already the next day there.
    assert receipt_date(datetime(2026, 2, 9, 23, 30, tzinfo=UTC), "Europe/Brussels") == D("2026-02-10")
    # Summer: UTC+2, so 21:59 UTC is still the same day and 22:00 the next.
    assert receipt_date(datetime(2026, 7, 9, 21, 59, tzinfo=UTC), "Europe/Brussels") == D("2026-07-09")
    assert receipt_date(datetime(2026, 7, 9, 22, 0, tzinfo=UTC), "Europe/Brussels") == D("2026-07-10")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", "deadline", *args],
                          check=False, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_cli_country_is_the_controllers_establishment() -> None:
    # Default: the Belgian controller, for whom Fri 8 May is a working day.
    default = _cli("--regime", "gdpr", "--received", "2026-04-08")
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["due_date"] == "2026-05-08"
    # A controller established in France: 8 May is Victory Day there.
    french = _cli("--regime", "gdpr", "--country", "FR", "--received", "2026-04-08")
    assert french.returncode == 0, french.stderr
    assert json.loads(french.stdout)["due_date"] == "2026-05-11"
    # A controller outside the EU/EEA has no GDPR member-state calendar.
    refused = _cli("--regime", "gdpr", "--country", "GB", "--received", "2026-04-08")
    assert refused.returncode == 2
    assert "country: 'GB' is not an EU/EEA member state code" in refused.stderr


def test_cli_counts_in_the_calendar_of_the_policys_country(tmp_path: Path) -> None:
    """Without --country, the controller's country is the policy's, as for the service's own
    deadlines. Before, Belgium's whatever the policy said: a French controller was told 8 May
    (Victory Day) where the service's letters said 11 May."""
    content = read_yaml(DEFAULT_POLICY)
    content["defaults"]["country"] = "FR"
    french = tmp_path / "french.yaml"
    french.write_text(dump_yaml(content, sort_keys=False))
    told = _cli("--regime", "gdpr", "--received", "2026-04-08", env={"DSRFLOW_POLICY": str(french)})
    assert told.returncode == 0, told.stderr
    assert json.loads(told.stdout)["due_date"] == "2026-05-11"
    # Another regime keeps its own calendar whatever the controller's country.
    ccpa = _cli("--regime", "ccpa", "--received", "2026-04-08", env={"DSRFLOW_POLICY": str(french)})
    assert ccpa.returncode == 0, ccpa.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("defaults: [")
    refused = _cli("--regime", "gdpr", "--received", "2026-04-08", env={"DSRFLOW_POLICY": str(broken)})
    assert refused.returncode != 0 and "policy" in refused.stderr and "Traceback" not in refused.stderr


# --- errors -----------------------------------------------------------------------------------


def test_unknown_regime() -> None:
    with pytest.raises(DeadlineError, match=r"^regime: unknown 'foo'; expected one of gdpr, uk_gdpr"):
        compute_deadline("foo", D("2026-01-01"))
    with pytest.raises(DeadlineError, match=r"^regime:"):
        default_country("hipaa")


@pytest.mark.parametrize("country", ["XX", "GB", "US", "", "be-x"])
def test_gdpr_rejects_non_member_state(country: str) -> None:
    with pytest.raises(DeadlineError, match=r"^country:"):
        compute_deadline("gdpr", D("2026-01-01"), establishment=country)


def test_other_regimes_reject_foreign_country() -> None:
    with pytest.raises(DeadlineError, match=r"^country:"):
        compute_deadline("ccpa", D("2026-01-01"), establishment="DE")
    with pytest.raises(DeadlineError, match=r"^country:"):
        compute_deadline("uk_gdpr", D("2026-01-01"), establishment="BE")


def test_is_working_day_unknown_calendar() -> None:
    with pytest.raises(DeadlineError, match=r"^country: no holiday calendar for 'XX'"):
        is_working_day(D("2026-01-05"), "XX")
    with pytest.raises(DeadlineError, match=r"^subdivision:"):
        is_working_day(D("2026-01-05"), "US", "ZZ")


@pytest.mark.parametrize("regime", list(Regime))
def test_verified_before_received(regime: Regime) -> None:
    with pytest.raises(DeadlineError, match=r"^verified: 2026-01-09 is earlier than received 2026-01-10"):
        compute_deadline(regime, D("2026-01-10"), verified=D("2026-01-09"))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"received": datetime(2026, 1, 10, 12, 0)}, "received"),
        ({"received": "2026-01-10"}, "received"),
        ({"received": D("2026-01-10"), "verified": datetime(2026, 1, 11)}, "verified"),
    ],
)
def test_rejects_non_dates(kwargs: dict, name: str) -> None:
    with pytest.raises(DeadlineError, match=rf"^{name}: expected a datetime.date"):
        compute_deadline("gdpr", **kwargs)


def test_deadline_error_is_value_error() -> None:
    assert issubclass(DeadlineError, ValueError)


@pytest.mark.parametrize(
    "regime, due, extended",
    [
        ("vcdpa", "2026-03-13", "2026-03-13"),  # Va. Code § 59.1-577(C): 60 days, no extension
        ("ctdpa", "2026-03-13", "2026-03-13"),  # Conn. Gen. Stat. § 42-518(d): 60 days
        ("cpa", "2026-02-26", "2026-04-27"),  # C.R.S. § 6-1-1306(3)(b): 45 days, +60
    ],
)
def test_appeal_deadlines(regime: str, due: str, extended: str) -> None:
    result = compute_deadline(regime, D("2026-01-12"), appeal=True)
    assert (result.due_date, result.extended_due_date) == (D(due), D(extended))
    assert grants_appeal(regime)


# The UK GDPR has a complaint to us instead (DPA 2018 s. 164A): tests/test_uk_complaint_letters.py.
@pytest.mark.parametrize("regime", ["gdpr", "ccpa", "lgpd", "pipeda"])
def test_no_appeal_outside_the_us_state_laws_that_grant_one(regime: str) -> None:
    assert not grants_appeal(regime)
    with pytest.raises(DeadlineError, match=rf"^regime: {regime} grants no appeal"):
        compute_deadline(regime, D("2026-01-12"), appeal=True)


def test_cli_appeal() -> None:
    result = _cli("--regime", "cpa", "--received", "2026-01-12", "--appeal")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["due_date"] == "2026-02-26"
