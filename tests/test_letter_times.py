"""The times a subject (or staff) reads in a letter, and on the portal pages its links open, are
the controller's: in the timezone of the policy version the request runs under, the zone named
with its offset from UTC. Before, they were written in UTC, and a datetime printed as a date was
its UTC date: a link expiring at 23:30 UTC on 30 December was said to expire on 30 December to a
subject in Amsterdam, where it was 00:30 on the 31st.

Each moment is near midnight UTC, so that the controller's date differs from UTC's, in winter and
in summer (the offset changes with daylight saving time), under a policy in Europe/Amsterdam and
one in America/Los_Angeles, in every language."""

from __future__ import annotations

import copy
import secrets
import types
import uuid
from datetime import UTC, datetime

import pytest

import activities.letter_context as letter_context
from activities.letter_templates import render_letter
from activities.mailbox_alerts import _staff_mail
from dsrflow.crypto.hashing import token_hash
from dsrflow.i18n import long_datetime
from dsrflow.stores.requests_store import record_policy_version
from policy.model import LoadedPolicy, load_policy, parse_policy
from schemas.vocabulary import Language
from schemas.workflow import LetterJob
from tests.letter_contexts import full_context
from tests.letters_as_sent import LANGUAGES, LOADED, REQUEST_ID, both, request_row
from tests.support import api_client, stored_request
from tests.yaml_files import dump_yaml

# The date each moment falls on where the controller is, as each language writes it.
_DAYS = {
    "31 Dec": {"en": "31 December 2026", "nl": "31 december 2026", "fr": "31 décembre 2026", "de": "31. Dezember 2026"},
    "30 Dec": {"en": "30 December 2026", "nl": "30 december 2026", "fr": "30 décembre 2026", "de": "30. Dezember 2026"},
    "1 Jul": {"en": "1 July 2026", "nl": "1 juli 2026", "fr": "1er juillet 2026", "de": "1. Juli 2026"},
    "30 Jun": {"en": "30 June 2026", "nl": "30 juni 2026", "fr": "30 juin 2026", "de": "30. Juni 2026"},
}

# (the controller's zone, the moment in UTC, its UTC date, the date and the time read there)
MOMENTS = [
    # Amsterdam is ahead of UTC: just before midnight UTC is already the next day there.
    ("Europe/Amsterdam", datetime(2026, 12, 30, 23, 30, tzinfo=UTC), "30 Dec", "31 Dec", "00:30 CET (UTC+1)"),
    ("Europe/Amsterdam", datetime(2026, 6, 30, 23, 30, tzinfo=UTC), "30 Jun", "1 Jul", "01:30 CEST (UTC+2)"),
    # Los Angeles is behind: just after midnight UTC is still the day before there.
    ("America/Los_Angeles", datetime(2026, 12, 31, 0, 30, tzinfo=UTC), "31 Dec", "30 Dec", "16:30 PST (UTC\u22128)"),
    ("America/Los_Angeles", datetime(2026, 7, 1, 0, 30, tzinfo=UTC), "1 Jul", "30 Jun", "17:30 PDT (UTC\u22127)"),
]
_IDS = ["amsterdam-winter", "amsterdam-summer", "los-angeles-winter", "los-angeles-summer"]


def in_zone(loaded: LoadedPolicy, timezone: str) -> LoadedPolicy:
    """`loaded` with the controller in `timezone`: another policy version."""
    content = copy.deepcopy(loaded.content)
    content.setdefault("defaults", {})["timezone"] = timezone
    return parse_policy(content)


class _Versions:
    """What `build_context` reads of the activity context: the policy by version, as the letter
    activity loads the one the request runs under."""

    settings = types.SimpleNamespace(base_url="https://privacy.example.test")
    pool = None

    def __init__(self, *policies: LoadedPolicy) -> None:
        self.versions = {p.version: p for p in policies}

    async def policy(self, version: str) -> LoadedPolicy:
        return self.versions[version]


_ZONED = {zone: in_zone(LOADED, zone) for zone in ("Europe/Amsterdam", "America/Los_Angeles")}
_VERSIONS = _Versions(LOADED, *_ZONED.values())


def read_at(language: str, day: str, clock: str) -> str:
    return f"{_DAYS[day][language]}, {clock}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("zone", "moment", "utc_day", "day", "clock"), MOMENTS, ids=_IDS)
@pytest.mark.parametrize(("purpose", "param"), [
    ("verification", "expires_at"), ("reminder", "expires_at"), ("closed_unverified", "expired_at")])
async def test_a_code_expiry_is_written_in_the_controllers_zone(purpose, param, zone, moment, utc_day, day, clock,
                                                               language):
    """The code's expiry (verification, reminder) and the end of the time to confirm
    (closed_unverified), with the params as the workflow sends them (ISO strings), built by the
    letter activity for a request whose policy version puts the controller in `zone`."""
    params = {param: moment.isoformat()}
    if purpose != "closed_unverified":
        params["max_attempts"] = 5
    version = _ZONED[zone].version
    job = LetterJob(request_id=REQUEST_ID, purpose=purpose, key="1", params=params)
    context = await letter_context.build_context(_VERSIONS, request_row("gdpr", "access", language, policy_version=version),  # type: ignore[arg-type]
                                          job, language)
    secrets_ = {"code": "482913", "link": "https://privacy.example.test/verify?token=abc"}
    letter = render_letter(purpose, {**context, **(secrets_ if purpose != "closed_unverified" else {})}, language)
    for part in both(letter):
        assert read_at(language, day, clock) in part
        # Not the UTC date, nor the UTC time.
        assert _DAYS[utc_day][language] not in part
        assert moment.strftime("%H:%M") not in part


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("zone", "moment", "utc_day", "day", "clock"), MOMENTS, ids=_IDS)
def test_a_package_link_expiry_is_written_in_the_controllers_zone(zone, moment, utc_day, day, clock, language):
    ctx = full_context("response", timezone=zone)
    ctx["request"].update(type="access", type_label="access (Art. 15 GDPR)")
    ctx["outcome"].update(actions=[{"system": "crm", "category": "account", "action": "exported", "records": 2}],
                          kept=[], package_link="https://privacy.example.test/portal/packages/tok",
                          package_expires_at=moment)
    letter = render_letter("response", ctx, language)
    for part in both(letter):
        assert read_at(language, day, clock) in part
        assert _DAYS[utc_day][language] not in part


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("zone", "moment", "utc_day", "day", "clock"), MOMENTS, ids=_IDS)
def test_the_unreadable_mailbox_alert_says_since_when_in_the_controllers_zone(zone, moment, utc_day, day, clock,
                                                                              language):
    """Staff read when the privacy mailbox stopped being read in their own time, in their language."""
    policy = _ZONED[zone].policy
    policy = policy.model_copy(update={"languages": policy.languages.model_copy(update={"staff": Language(language)})})
    message = _staff_mail(policy, "k", "mailbox_unreadable", {
        "since": moment, "failure": "LOGIN refused", "folder": "INBOX", "host": "imap.example.net"})
    for part in message.iter_parts():
        text = " ".join(part.get_content().split())
        assert read_at(language, day, clock) in text
        assert _DAYS[utc_day][language] not in text


@pytest.mark.parametrize(("zone", "moment", "utc_day", "day", "clock"), MOMENTS, ids=_IDS)
async def test_the_portal_writes_the_requests_times_as_its_letters_do(http, pool, settings, zone, moment, utc_day,
                                                                      day, clock):
    """The status page's received and closed dates and the package page's expiry, for a request
    whose policy version puts the controller in `zone`, while the policy in force is in Brussels:
    the request's version decides, as it does for the letters."""
    loaded = in_zone(load_policy(settings.policy_path), zone)
    assert load_policy(settings.policy_path).policy.defaults.timezone == "Europe/Brussels"
    async with pool.acquire() as conn:
        await record_policy_version(conn, loaded)
    rid = await stored_request(pool, settings, "times")
    await pool.execute("UPDATE dsr_requests SET policy_version = $2, received_at = $3, closed_at = $3 WHERE id = $1",
                       uuid.UUID(rid), loaded.version, moment)
    status = await http.get(f"/portal/requests/{rid}?lang=fr")
    assert status.status_code == 200
    received, closed = (status.text.split(f"<dt>{label}</dt><dd>", 1)[1].split("</dd>", 1)[0]
                        for label in ("Reçue le", "Clôturée le"))
    assert received == closed == _DAYS[day]["fr"]

    # The package's link, at the same time of day in a year still ahead.
    token, expires = secrets.token_hex(32), moment.replace(year=2099)
    await pool.execute(
        """INSERT INTO packages (id, request_id, kind, path, size_bytes, records, token_hash, expires_at)
           VALUES ($1, $2, 'access', '/nonexistent', 20480, 42, $3, $4)""",
        uuid.uuid4(), uuid.UUID(rid), token_hash(token), expires)
    page = await http.get(f"/portal/packages/{token}?lang=en")
    assert page.status_code == 200
    until = page.text.split("Available until</dt><dd>", 1)[1].split("</dd>", 1)[0]
    assert until == read_at("en", day, clock).replace("2026", "2099")


async def test_a_request_whose_policy_version_is_not_on_record_reads_in_the_policy_in_force(
        pool, settings, dev_server, task_queue, tmp_path):
    """A request whose policy version row is gone (a partial restore; intake records it first)
    had its portal dates written in the policy model's default zone, Brussels, whoever the
    controller is. Now in the zone of the policy in force (Los Angeles here): received at 00:30
    UTC on 31 December, it was received on the 30th there."""
    in_force = tmp_path / "policy.yaml"
    in_force.write_text(dump_yaml(in_zone(load_policy(settings.policy_path), "America/Los_Angeles").content,
                                       sort_keys=False))
    ours = settings.model_copy(update={"policy_path": in_force})
    rid = await stored_request(pool, settings, "lost-version")
    await pool.execute("UPDATE dsr_requests SET policy_version = 'a-version-never-recorded', received_at = $2 "
                       "WHERE id = $1", uuid.UUID(rid), datetime(2026, 12, 31, 0, 30, tzinfo=UTC))
    async with api_client(ours, dev_server.client, task_queue) as http:
        status = await http.get(f"/portal/requests/{rid}?lang=fr")
    assert status.status_code == 200, status.text
    received = status.text.split("<dt>Reçue le</dt><dd>", 1)[1].split("</dd>", 1)[0]
    assert received == _DAYS["30 Dec"]["fr"]


@pytest.mark.parametrize(("zone", "moment", "written"), [
    # One abbreviation, two zones: the offset tells them apart.
    ("America/Chicago", datetime(2026, 12, 30, 12, 0, tzinfo=UTC), "30 December 2026, 06:00 CST (UTC\u22126)"),
    ("Asia/Shanghai", datetime(2026, 12, 30, 12, 0, tzinfo=UTC), "30 December 2026, 20:00 CST (UTC+8)"),
    ("Asia/Kolkata", datetime(2026, 12, 30, 20, 0, tzinfo=UTC), "31 December 2026, 01:30 IST (UTC+5:30)"),
    # A zone without an abbreviation of its own: the offset alone.
    ("Europe/Istanbul", datetime(2026, 12, 30, 22, 0, tzinfo=UTC), "31 December 2026, 01:00 UTC+3"),
    # At offset zero the abbreviation says it all.
    ("Europe/London", datetime(2026, 12, 30, 23, 30, tzinfo=UTC), "30 December 2026, 23:30 GMT"),
    ("Europe/London", datetime(2026, 6, 30, 23, 30, tzinfo=UTC), "1 July 2026, 00:30 BST (UTC+1)"),
    ("UTC", datetime(2026, 6, 30, 23, 30, tzinfo=UTC), "30 June 2026, 23:30 UTC"),
])
def test_the_zone_is_named_so_that_a_reader_anywhere_can_convert(zone, moment, written):
    assert long_datetime(moment, "en", zone) == written
