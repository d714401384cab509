"""One decision per refusal (workflows/appeal_claim.py, activities/appeal_claims.py). The intake
refuses an appeal of a refusal while another is being decided, but not while that other awaits its
subject's confirmation (a stranger's, in the subject's name, must not hold the subject's own back).
So a subject who appealed twice, both appeals awaiting confirmation, confirmed both, and both were
decided: two in compliance's queue, two outcomes. Now the first appeal confirmed is decided, and a
later one is closed with a letter naming it; also when both are confirmed at the same instant.

The real app in-process over ASGI with a worker on the test's queue, PostgreSQL and the Temporal
dev server; appeals wait for compliance (`approval_required_for: appeal`, as the shipped policy),
so the one decided stays in their queue."""

from __future__ import annotations

import asyncio
import html
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.worker import Replayer

from api.public.status_words import DECIDED_INSTEAD
from dsrflow.crypto.keys import load_keyring
from dsrflow.domain.references import short_reference
from dsrflow.i18n import translations
from dsrflow.infra.temporal_client import build_data_converter
from schemas.workflow import workflow_id_for
from tests.letters_as_sent import APPEAL_OF, LANGUAGES, LOADED, as_sent, both
from tests.refused_requests import appeals_held, public_appeal, stored_refusal
from tests.support import (
    letters_for,
    live_view,
    served,
    staff_headers,
    text_of,
    unique_email,
    wait_for_letter,
)
from workflows.dsr import DataSubjectRequestWorkflow

OTHER = "22222222-3333-4444-8555-666666666666"
# The letter's opening, by (complaint, decided): the catalogs' msgids.
OPENINGS = {
    (False, False): "We have closed your appeal of our decision on request %(id)s without deciding on it "
                    "separately: your appeal %(other)s of the same decision is already being decided. Our decision "
                    "on appeal %(other)s, which we will send you, answers this appeal too.",
    (False, True): "We have closed your appeal of our decision on request %(id)s without deciding on it "
                   "separately: we have already decided your appeal %(other)s of the same decision, and our "
                   "decision on it, which we sent you, is final.",
    (True, False): "We have closed your complaint about our decision on request %(id)s without considering it "
                   "separately: we are already considering your complaint %(other)s about the same decision. The "
                   "outcome of complaint %(other)s, which we will send you, answers this complaint too.",
    (True, True): "We have closed your complaint about our decision on request %(id)s without considering it "
                  "separately: we have already considered your complaint %(other)s about the same decision, and "
                  "told you its outcome.",
}


@pytest.fixture
def gated(settings, lifecycle_policy, tmp_path: Path):
    return appeals_held(settings, lifecycle_policy, tmp_path)


@pytest.fixture
async def http(gated, pool, dev_server, task_queue):
    async with served(gated, pool, dev_server.client, task_queue) as client:
        yield client


async def _confirm(http, appeal: str, code: str) -> None:
    r = await http.post(f"/v1/public/requests/{appeal}/verify", json={"code": code})
    assert r.status_code == 200, r.text


async def _settled(http, pool, *appeals: str) -> dict[str, str]:
    """Each appeal's status once it has left verification: waiting for compliance, or closed."""
    staff = await staff_headers(pool, "compliance")
    views = [await live_view(http, staff, a, lambda v: v["status"] in ("awaiting_approval", "cancelled"))
             for a in appeals]
    return {a: v["status"] for a, v in zip(appeals, views, strict=True)}


async def _closed_for(pool, mail_sink, loser: str, winner: str) -> str:
    """The closed appeal's record names the one decided, and it got a cancellation letter (no
    request to compliance); the letter's text."""
    data = await pool.fetchval("SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'status.cancelled'",
                               uuid.UUID(loser))
    assert (data["decided_as"], data["decided"], data["withdrawn_by_subject"]) == (winner, False, False), data
    assert short_reference(winner) in data["reason"]
    letter = await wait_for_letter(mail_sink, loser, "cancellation")
    assert letters_for(mail_sink, loser, "staff_alert") == []
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 ORDER BY seq", uuid.UUID(loser))]
    assert "status.in_progress" not in events and "status.awaiting_approval" not in events, events
    return " ".join(text_of(letter).split())


async def _portal_says(http, appeal: str, language: str, sentence: str, other: str) -> None:
    """The appeal's page on the portal says it is not decided on its own, naming the one that is."""
    page = html.unescape((await http.get(f"/portal/requests/{appeal}", params={"lang": language})).text)
    assert " ".join((translations(language).gettext(sentence) % {"other": short_reference(other)}).split()) in \
        " ".join(page.split())


async def _replays(settings, dev_server, *appeals: str) -> None:
    """The runs replay against the same code (the claim is behind its patch)."""
    replayer = Replayer(workflows=[DataSubjectRequestWorkflow], data_converter=build_data_converter(load_keyring(settings)))
    for appeal in appeals:
        history = await dev_server.client.get_workflow_handle(workflow_id_for(appeal)).fetch_history()
        await replayer.replay_workflow(history)


async def test_a_second_appeal_confirmed_later_is_closed_naming_the_first(http, gated, pool, mail_sink, dev_server):
    """Two appeals of one refusal, both awaiting confirmation (the intake takes both); the one filed
    second is confirmed first, and is the one decided: the order of confirmation decides."""
    email = unique_email("two-appeals")
    refused = await stored_refusal(pool, gated, email, "vcdpa", type="erasure")
    first, first_code = await public_appeal(http, mail_sink, email, refused)
    second, second_code = await public_appeal(http, mail_sink, email, refused)

    await _confirm(http, second, second_code)
    assert await _settled(http, pool, second) == {second: "awaiting_approval"}
    await _confirm(http, first, first_code)
    assert await _settled(http, pool, first, second) == {first: "cancelled", second: "awaiting_approval"}

    said = await _closed_for(pool, mail_sink, first, second)
    assert OPENINGS[False, False] % {"id": short_reference(refused), "other": short_reference(second)} in said
    assert "This means we have not decided on your appeal." in said and "Attorney General" in said
    queue = (await http.get("/v1/requests", headers=await staff_headers(pool, "compliance"),
                            params={"subject_email": email, "needs_attention": "true"})).json()
    assert [item["id"] for item in queue["items"]] == [second]
    await _portal_says(http, first, "en", DECIDED_INSTEAD["appeal"][0], second)
    await _replays(gated, dev_server, first, second)


async def test_two_complaints_confirmed_at_the_same_instant_are_decided_once(http, gated, pool, mail_sink):
    """A UK subject confirms two complaints about one refusal from two browsers at once: one is
    considered, the other closed, its letter (in French) naming the first."""
    email = unique_email("two-complaints")
    refused = await stored_refusal(pool, gated, email, "uk_gdpr", type="erasure")
    one, one_code = await public_appeal(http, mail_sink, email, refused, "fr")
    two, two_code = await public_appeal(http, mail_sink, email, refused, "fr")

    await asyncio.gather(_confirm(http, one, one_code), _confirm(http, two, two_code))

    statuses = await _settled(http, pool, one, two)
    assert sorted(statuses.values()) == ["awaiting_approval", "cancelled"], statuses
    winner = next(a for a, s in statuses.items() if s == "awaiting_approval")
    loser = next(a for a, s in statuses.items() if s == "cancelled")
    said = await _closed_for(pool, mail_sink, loser, winner)
    opening = translations("fr").gettext(OPENINGS[True, False])
    assert " ".join((opening % {"id": short_reference(refused), "other": short_reference(winner)}).split()) in said
    await _portal_says(http, loser, "fr", DECIDED_INSTEAD["complaint"][0], winner)


async def test_a_strangers_unconfirmed_appeal_does_not_hold_the_subjects_own_back(http, gated, pool, mail_sink):
    """Someone appealed in the subject's name and never confirmed (the code went to the subject);
    the subject's own appeal, confirmed, is decided, and the stranger's still waits unconfirmed."""
    email = unique_email("stranger-first")
    refused = await stored_refusal(pool, gated, email, "vcdpa", type="erasure")
    strangers, _ = await public_appeal(http, mail_sink, email, refused)
    own, code = await public_appeal(http, mail_sink, email, refused)

    await _confirm(http, own, code)

    assert await _settled(http, pool, own) == {own: "awaiting_approval"}
    assert await pool.fetchval("SELECT status FROM dsr_requests WHERE id = $1", uuid.UUID(strangers)) == \
        "awaiting_verification"
    assert letters_for(mail_sink, own, "cancellation") == []


async def test_an_appeal_staff_attested_first_is_the_one_decided(http, gated, pool, mail_sink):
    """The subject's appeal awaits confirmation when an agent opens another from their reply,
    attesting their identity (the intake takes it: the first is unconfirmed). The attested one is
    decided from its start; the subject's, confirmed after, is closed naming it."""
    email = unique_email("attested-first")
    refused = await stored_refusal(pool, gated, email, "vcdpa", type="erasure")
    own, code = await public_appeal(http, mail_sink, email, refused)
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "subject": {"email": email}, "appeal_of": refused, "identity_attested": True})
    assert r.status_code == 201, r.text
    attested = r.json()["id"]
    assert await _settled(http, pool, attested) == {attested: "awaiting_approval"}

    await _confirm(http, own, code)

    assert await _settled(http, pool, own) == {own: "cancelled"}
    said = await _closed_for(pool, mail_sink, own, attested)
    assert OPENINGS[False, False] % {"id": short_reference(refused), "other": short_reference(attested)} in said


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("complaint", "decided"), sorted(OPENINGS))
async def test_the_closing_letter_names_the_appeal_decided_in_every_language(language: str, complaint: bool,
                                                                            decided: bool):
    """The letter of an appeal (a UK complaint) closed for another: the refused request and the
    other appeal by their references, whether it is being or has been decided, no staff reason,
    and the remedies of an appeal closed undecided."""
    params: dict[str, Any] = {"reason": "not decided separately: staff words", "withdrawn": False,
                              "acted_in": [], "asked_in": [], "decided_as": OTHER, "decided": decided}
    regime, country = ("uk_gdpr", "GB") if complaint else ("vcdpa", "US")
    letter = await as_sent("cancellation", "erasure", params, regime=regime, language=language, country=country,
                           details={"appeal_of": APPEAL_OF})
    remedies = LOADED.in_language(language).remedies_for(regime, country)
    opening = translations(language).gettext(OPENINGS[complaint, decided]) % {
        "id": short_reference(APPEAL_OF), "other": short_reference(OTHER)}
    assert remedies.appeal is not None
    for part in both(letter):
        assert " ".join(opening.split()) in part, (language, part)
        assert "staff words" not in part
        assert " ".join(remedies.appeal.complaint_without_appeal.split()) in part
