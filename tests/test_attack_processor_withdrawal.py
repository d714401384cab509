"""The e-mail that tells a processor asked by e-mail that its request closed unanswered
(activities/connectors/manual_email.py `_withdraw`, processor_withdrawal templates), attacked from
the subject's side (a name and an address carrying header lines and markup) and from the policy's
(a contact that is a list, a display name posing as another address, a name with a line break).
Composed as the connector composes it, on the request's real row (PostgreSQL), and read back as the
relay receives it: its bytes, parsed."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes, policy
from email.utils import getaddresses

import pytest

from activities.connectors.base import ConnectorEnv, PermanentConnectorError, Subject
from activities.connectors.manual_email import ManualEmailConnector
from activities.processor_mail import WITHDRAWAL_PURPOSE
from dsrflow.settings import Settings
from tests.letters_as_sent import LOADED
from tests.support import stored_request

CONTACT = "privacy@surveys.example"
# What a subject may type into a name, or slip into an address a mailbox reader took as theirs.
HOSTILE_NAME = "Jane\r\nBcc: x@evil.example\r\nSubject: pwned <script>alert(1)</script>"
HOSTILE_EMAIL = "jane\r\nBcc: x@evil.example@example.org"


def _surveys(monkeypatch: pytest.MonkeyPatch, pool=None, **config: str) -> ManualEmailConnector:
    """The surveys processor's connector (asked by e-mail), its config changed by `config`."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", CONTACT)
    system = LOADED.policy.systems["surveys"]
    system = system.model_copy(update={"config": {**system.config, **config}})
    return ManualEmailConnector(ConnectorEnv(
        system_name="surveys", system=system, policy=LOADED.policy, secret=b"k" * 32,
        settings=Settings(DSRFLOW_PUBLIC_URL="https://privacy.example.test"), callback_url="",
        pool=pool or object(), mailer=object()))


async def test_nothing_of_the_subject_reaches_the_withdrawal_whatever_they_typed(pool, settings, monkeypatch):
    """The withdrawal carries our reference and what we had asked, nothing about the subject (by
    design): a name or address with header lines and markup adds no header, no recipient and no
    markup, and is nowhere in the message, its text or its HTML."""
    rid = await stored_request(pool, settings, "withdrawal-hostile", type_="erasure")
    connector = _surveys(monkeypatch)
    subject = Subject(request_id=rid, email=HOSTILE_EMAIL, name=HOSTILE_NAME, closed=True)
    async with pool.acquire() as conn:
        composed = await connector._compose(conn, subject, WITHDRAWAL_PURPOSE, "erase", scope=None, key="k",
                                            extra={"first_sent_at": date(2026, 12, 1)}, in_reply_to="<asked@x>")
    wire = composed.as_bytes()
    sent = message_from_bytes(wire, policy=policy.default)
    # The headers as sent, and each part decoded (a part's transfer encoding hides nothing).
    read = [wire.decode("ascii", "replace")] + [part.get_content() for part in sent.walk() if not part.is_multipart()]
    for said in read:
        for trace in ("evil", "<script", "alert(1)", "Bcc", "pwned", "jane", "Jane"):
            assert trace not in said, (trace, said)
    recipients = getaddresses([str(v) for h in ("To", "Cc", "Bcc") for v in sent.get_all(h, [])])
    assert recipients == [("Privacy team", CONTACT)]
    assert (sent["X-DSR-Purpose"], sent["X-DSR-Request-Id"], sent["In-Reply-To"]) == (
        WITHDRAWAL_PURPOSE, rid, "<asked@x>")


@pytest.mark.parametrize("contact", [
    "privacy@surveys.example, x@evil.example",  # a list: both would be asked
    "privacy@surveys.example;x@evil.example",
    "Surveys <x@evil.example>",  # a display name: the e-mail read as the processor's
    '"privacy@surveys.example" <x@evil.example>',  # the name posing as the address staff configured
    "privacy@surveys.example (x@evil.example)",
    "privacy@surveys.example\r\nBcc: x@evil.example",
])
def test_a_contact_that_is_not_one_address_is_refused_before_any_email(monkeypatch, contact):
    """The policy's contact_email: one address, or the connector is not built (the task needs staff,
    naming the config), so no e-mail, request or withdrawal, goes anywhere."""
    with pytest.raises(PermanentConnectorError, match="needs config.contact_email, one e-mail address"):
        _surveys(monkeypatch, contact_email=contact)


async def test_a_contact_name_with_a_line_break_is_refused_and_one_with_addresses_stays_a_name(
        pool, settings, monkeypatch):
    """Before, a contact_name with a line break was a ValueError at each e-mail's composing, naming
    neither the system nor the key; now the connector is refused, naming the key. A name holding addresses
    and a comma is quoted: the e-mail still has one recipient, the contact."""
    with pytest.raises(PermanentConnectorError, match="config.contact_name must be one line of text"):
        _surveys(monkeypatch, contact_name="Privacy\r\nBcc: x@evil.example")
    rid = await stored_request(pool, settings, "withdrawal-named", type_="erasure")
    connector = _surveys(monkeypatch, contact_name="x@evil.example, y@evil.example")
    async with pool.acquire() as conn:
        composed = await connector._compose(conn, Subject(request_id=rid, email="jane@example.org", closed=True),
                                            WITHDRAWAL_PURPOSE, "erase", scope=None, key="k",
                                            extra={"first_sent_at": date(2026, 12, 1)})
    sent = message_from_bytes(composed.as_bytes(), policy=policy.default)
    assert [address for _, address in getaddresses([str(sent["To"])])] == [CONTACT]
    assert sent.get_all("Cc") is None and sent.get_all("Bcc") is None
