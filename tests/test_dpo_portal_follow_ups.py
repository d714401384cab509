"""The portal's status page of an appeal (VCDPA, CTDPA, CPA) or a UK complaint, as a data
protection officer reads it beside its letters. Closed unconfirmed, the page said "This request was
closed because it was not confirmed in time. You are welcome to send a new one." with a "Send a new
request" button, whose form makes a new request, not an appeal: the letter (fixed in db8652e)
says the decision stands and how to appeal (complain) again by writing to us. Denied, it said "We
have refused your request", of an appeal whose letter says we maintain our decision."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from api.pages import render
from api.public.status_words import STATUS_WORDS, Said, status_words
from dsrflow.i18n import translations
from schemas.requests import RequestStatus
from tests.letters_as_sent import APPEAL_OF, LANGUAGES
from tests.test_regime_citations import REQUEST_ID, app, page_request, read  # noqa: F401 (app: the fixture)

_FOLLOW_UPS = {"vcdpa": "appeal", "ctdpa": "appeal", "cpa": "appeal", "uk_gdpr": "complaint"}
_SAID = {
    ("appeal", RequestStatus.closed_unverified): [
        "This appeal was closed because it was not confirmed in time: our decision on the request it is about stands.",
        "Our e-mail says how you can appeal again."],
    ("complaint", RequestStatus.closed_unverified): [
        "This complaint was closed because it was not confirmed in time: our decision on the request it is about "
        "stands.", "Our e-mail says how you can complain again."],
    ("appeal", RequestStatus.denied): ["We have denied your appeal: our decision on the request it is about stands.",
                                       "Our e-mail explains why, and what you can do next."],
    ("complaint", RequestStatus.denied): [
        "We have decided on your complaint: our decision on the request it is about stands.",
        "Our e-mail explains why, and what you can do next."],
}


def _row(regime: str, appeal_of: str | None) -> dict:
    return {"id": REQUEST_ID, "request_type": "erasure", "regime": regime, "received_at": datetime(2026, 1, 30, tzinfo=UTC),
            "current_due_date": date(2026, 3, 2), "extended": False, "closed_at": datetime(2026, 2, 7, tzinfo=UTC),
            "details": {"appeal_of": appeal_of} if appeal_of else {}, "clock_waits": False}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("status", [RequestStatus.closed_unverified, RequestStatus.denied])
@pytest.mark.parametrize("regime", list(_FOLLOW_UPS))
async def test_an_appeal_or_complaint_closed_or_denied_is_said_of_itself(regime, status, language):
    t = translations(language)
    said = await status_words(None, _row(regime, APPEAL_OF), status, None, t)  # type: ignore[arg-type]
    expected = [t.gettext(sentence) for sentence in _SAID[(_FOLLOW_UPS[regime], status)]]
    if language != "en":
        assert expected != _SAID[(_FOLLOW_UPS[regime], status)], "not translated"
    assert said == Said(expected), (regime, status, language)  # and no form to complain on
    # The request's own words stay for a request (the GDPR has no appeal: its follow-up is a request).
    assert await status_words(None, _row(regime, None), status, None, t) == Said([  # type: ignore[arg-type]
        t.gettext(sentence) for sentence in STATUS_WORDS[status]])
    assert await status_words(None, _row("gdpr", APPEAL_OF), status, None, t) == Said([  # type: ignore[arg-type]
        t.gettext(sentence) for sentence in STATUS_WORDS[status]])


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_appeal_closed_unconfirmed_offers_no_new_request(app, language):  # noqa: F811
    """Its page names the refused request and offers no "Send a new request" button; a request's does."""
    t = translations(language)
    button = t.gettext("Send a new request")

    def page(appeal_of: str | None) -> str:
        row = _row("vcdpa", appeal_of)
        response = render(page_request(app, f"/portal/requests/{REQUEST_ID}", language), "portal/status.html", {
            "row": row, "status_words": "Closed.", "verified": False, "awaiting_verification": False,
            "status": RequestStatus.closed_unverified, "reference": "9WPSS9NUBP", "received_on": date(2026, 1, 30),
            "appeal_of": "46AK46B46B" if appeal_of else None, "complaint": False})
        return read(bytes(response.body).decode())

    assert button not in page(APPEAL_OF), language
    assert button in page(None), language
