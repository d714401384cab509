"""The e-mails to processors cite the law of the request's regime, as the letters do
(tests/test_regime_citations.py has the pages and the package): the GDPR under `gdpr`, the UK GDPR
under `uk_gdpr`, no article under the other regimes, the processor's duty to assist in each law's
words. Rendered as the connector composes them and read as the processor reads them."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtplib.email import flatten_message

from activities.citations import citation
from activities.connectors.base import ConnectorEnv, Subject
from activities.connectors.manual_email import ManualEmailConnector
from activities.letter_templates import RenderedLetter
from activities.processor_mail import (
    REMINDER_PURPOSE,
    REQUEST_PURPOSE,
    SCOPES,
    TITLES,
    asked_of_processor,
    render_processor_mail,
)
from dsrflow.i18n import translations
from dsrflow.settings import Settings
from tests.test_letter_languages import _UNFILLED
from tests.test_regime_citations import (
    _ARTICLE,
    LANGUAGES,
    LOADED,
    OTHER_LAWS,
    REGIMES,
    REQUEST_ID,
    eu_gdpr_named,
    read,
)


def processor_mail(purpose: str, action: str, scope: str | None, regime: str, language: str) -> RenderedLetter:
    """A processor e-mail with the context `ManualEmailConnector._compose` gives it."""
    title, instruction = asked_of_processor(action, scope, regime, language)
    extra = {"reminder_number": 2, "first_sent_at": date(2026, 2, 3)} if purpose == REMINDER_PURPOSE else {}
    return render_processor_mail(purpose, {
        "controller": LOADED.policy.controller.model_dump(mode="json"),
        "processor": {"label": "Survey service provider", "contact_name": None},
        "request": {"id": REQUEST_ID, "due_date": date(2026, 3, 2), "regime": regime},
        "action": action, "action_title": title, "instruction": instruction,
        "corrections": [("city", "Gent")] if action == "rectify" else [], "subject_email": "jane@example.org",
        "confirm_url": "https://privacy.example.test/v1/callbacks/manual/tok", "reminder_days": 3,
        "upload": LOADED.policy.processor_exports.model_dump(mode="json") if action == "access" else None, **extra,
    }, language)


_EVERY_PROCESSOR_MAIL = [(purpose, action, scope) for purpose in (REQUEST_PURPOSE, REMINDER_PURPOSE)
                         for action in TITLES for scope in (SCOPES if action == "object" else [None])]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
def test_processor_emails_cite_only_the_regimes_law(regime, language):
    t = translations(language)
    for purpose, action, scope in _EVERY_PROCESSOR_MAIL:
        mail = processor_mail(purpose, action, scope, regime, language)
        for part in (mail.subject, mail.text, read(mail.html.split("<body", 1)[1])):
            where = (purpose, action, scope, regime, language)
            assert not _UNFILLED.search(part), (*where, _UNFILLED.search(part))
            assert not eu_gdpr_named(part, regime), (*where, part)
            if regime in OTHER_LAWS:
                assert not _ARTICLE.search(part), (*where, part)
            elif part != mail.subject:  # the assistance the processor owes, in the regime's law
                assert " ".join(citation(regime, "28(3)(e)", t).split()) in " ".join(part.split()), (*where, part)


def test_processor_emails_say_why_the_processor_assists_under_every_law():
    gdpr = processor_mail(REQUEST_PURPOSE, "erase", None, "gdpr", "en").text
    assert "as our data processing agreement and Art. 28(3)(e) GDPR provide, we ask you to assist us." in gdpr
    assert "and stop any processing of it (Art. 17 GDPR)." in gdpr
    uk = processor_mail(REQUEST_PURPOSE, "object", "direct_marketing", "uk_gdpr", "en").text
    assert "Art. 28(3)(e) UK GDPR provide" in uk and "direct marketing (Art. 21(2) and (3) UK GDPR): stop" in uk
    ccpa = " ".join(processor_mail(REQUEST_PURPOSE, "erase", None, "ccpa", "en").text.split())
    # In the CCPA's words too, citing its duty to assist (tests/test_processor_wording.py).
    assert ("A consumer has exercised a right under the privacy law that applies to their request; "
            "as our contract with you and Cal. Civ. Code § 1798.105(c)(3) provide, we ask you to assist us.") in ccpa
    assert "and stop any processing of it." in ccpa
    reminder = " ".join(processor_mail(REMINDER_PURPOSE, "access", None, "lgpd", "en").text.split())
    assert "is the controller; as our data processing agreement provides, please assist us without delay." in reminder
    assert "so that we can give it to them. Upload it" in reminder


class _Request:
    """The connection `_compose` reads the request's row from."""

    def __init__(self, regime: str) -> None:
        self.regime = regime

    async def fetchrow(self, query: str, *args: Any) -> dict[str, Any]:
        return {"details": {"objection_scope": "profiling"}, "current_due_date": date(2026, 3, 2),
                "regime": self.regime}


def _surveys(monkeypatch: pytest.MonkeyPatch) -> ManualEmailConnector:
    """The surveys processor's connector (asked by e-mail), composing only."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    policy = LOADED.policy
    return ManualEmailConnector(ConnectorEnv(
        system_name="surveys", system=policy.systems["surveys"], policy=policy, secret=b"k" * 32,
        settings=Settings(DSRFLOW_PUBLIC_URL="https://privacy.example.test"), callback_url="",
        pool=object(), mailer=object()))


async def composed_for_surveys(monkeypatch: pytest.MonkeyPatch, regime: str, action: str = "object") -> EmailMessage:
    """The e-mail the surveys processor gets for `action` of a request under `regime`."""
    return await _surveys(monkeypatch)._compose(_Request(regime), Subject(request_id=REQUEST_ID, email="jane@example.org"),
                                                REQUEST_PURPOSE, action, scope=None, key="k")


@pytest.mark.parametrize(("regime", "cited"), [
    ("gdpr", ["Art. 28(3)(e) GDPR", "profiling (Art. 21(1) GDPR)"]),
    ("uk_gdpr", ["Art. 28(3)(e) UK GDPR", "profiling (Art. 21(1) UK GDPR)"]),
    ("ccpa", []), ("pipeda", []),
])
async def test_the_connector_writes_to_the_processor_in_the_law_of_the_stored_request(monkeypatch, regime, cited):
    message = await composed_for_surveys(monkeypatch, regime)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    text = " ".join(body.get_content().split())
    assert all(c in text for c in cited), text
    if not cited:
        assert not eu_gdpr_named(text, regime) and not _ARTICLE.search(text), text
        person = {"ccpa": "consumer", "pipeda": "individual"}[regime]  # the law's word (tests/test_processor_wording.py)
        assert f"The {person} below objects to profiling: stop profiling the {person}." in text


@pytest.mark.parametrize("regime", ["gdpr", "ccpa"])
async def test_the_processor_reads_the_subject_line_as_written(monkeypatch, regime):
    """As the relay gets it (aiosmtplib's flattening) and a mail client shows it: before, a fold
    before an encoded word left two spaces ("(export)  — please send your export")."""
    for action in TITLES:
        message = await composed_for_surveys(monkeypatch, regime, action)
        written = str(message["Subject"])
        for cte_type in ("8bit", "7bit"):
            received = message_from_bytes(flatten_message(message, cte_type=cte_type), policy=email_policy.default)
            assert str(received["Subject"]) == written, (action, received["Subject"])
