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

from api.public.status_words import DECIDED_INSTEAD, DECIDED_INSTEAD_UNDECIDED
from dsrflow.crypto.keys import load_keyring
from dsrflow.domain.references import short_reference
from dsrflow.i18n import and_list, translations
from dsrflow.infra.temporal_client import build_data_converter
from schemas.workflow import workflow_id_for
from tests.evidence_pages import readable
from tests.letters_as_sent import APPEAL_OF, LANGUAGES, LOADED, as_sent, both
from tests.policy_once import policy_of
from tests.refused_requests import (
    appeals_held,
    confirm_appeal,
    one_closed_for_the_other,
    public_appeal,
    settled,
    stored_refusal,
    withdrawn_by_phone,
)
from tests.support import (
    letters_for,
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
    second, first = await one_closed_for_the_other(http, pool, mail_sink, email, refused, second_first=True)

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

    await asyncio.gather(confirm_appeal(http, one, one_code), confirm_appeal(http, two, two_code))

    statuses = await settled(http, pool, one, two)
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

    await confirm_appeal(http, own, code)

    assert await settled(http, pool, own) == {own: "awaiting_approval"}
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
    assert await settled(http, pool, attested) == {attested: "awaiting_approval"}

    await confirm_appeal(http, own, code)

    assert await settled(http, pool, own) == {own: "cancelled"}
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


# What the letter of the appeal others were closed for says when it ends undecided (hCW): each
# closed appeal by its reference, the refusal not reconsidered, how to appeal (complain) again.
CLOSED_FOR = {
    False: (("We had closed your appeal %(others)s of our decision on request %(id)s without deciding on it "
             "separately, because we were to decide this appeal instead.",
             "We had closed your appeals %(others)s of our decision on request %(id)s without deciding on them "
             "separately, because we were to decide this appeal instead."),
            "As this appeal will now not be decided, our decision on request %(id)s has not been reconsidered.",
            "You can appeal it again: reply to this e-mail or write to %(email)s, saying that you appeal our decision "
            "on request %(id)s."),
    True: (("We had closed your complaint %(others)s about our decision on request %(id)s without considering it "
            "separately, because we were to consider this complaint instead.",
            "We had closed your complaints %(others)s about our decision on request %(id)s without considering them "
            "separately, because we were to consider this complaint instead."),
           "As this complaint will now not be considered, our decision on request %(id)s has not been reconsidered.",
           "You can complain to us about it again: use the complaint form at %(url)s, or write to %(email)s, quoting "
           "request %(id)s."),
}
_ENDINGS = {"withdrawn": ("cancellation", {"reason": "You asked us by phone.", "withdrawn": True}),
            "cancelled": ("cancellation", {"reason": "staff words", "withdrawn": False}),
            "closed_unverified": ("closed_unverified", {"expired_at": "2026-02-10T10:00:00+00:00"}),
            "denied_unverified": ("denial", {"reason_code": "identity_not_established", "explanation": "staff words"})}
# The letters that say how to appeal (complain) again themselves (and so say it once).
_SAY_HOW = {"closed_unverified", "denied_unverified"}


def _folded(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("complaint", [False, True])
@pytest.mark.parametrize("ending", sorted(_ENDINGS))
async def test_an_appeal_others_were_closed_for_that_ends_undecided_says_they_are_not_answered(
        language: str, complaint: bool, ending: str):
    """The appeal (UK complaint) two others were closed for is withdrawn, cancelled by staff, closed
    unverified or denied unidentified: its letter names both, says the refusal was not reconsidered,
    and how to appeal (complain to us) again, once (the last two letters say the how themselves)."""
    purpose, params = _ENDINGS[ending]
    params = {**params, "acted_in": [], "asked_in": []} if purpose != "closed_unverified" else params
    regime, country = ("uk_gdpr", "GB") if complaint else ("vcdpa", "US")
    closed = [OTHER, "33333333-4444-4555-8666-777777777777"]
    letter = await as_sent(purpose, "erasure", params, regime=regime, language=language, country=country,
                           details={"appeal_of": APPEAL_OF}, closed_for=closed)
    t = translations(language)
    values = {"id": short_reference(APPEAL_OF), "email": LOADED.policy.controller.privacy_email,
              "url": f"https://privacy.example.test/portal/complaints?about={short_reference(APPEAL_OF)}&lang={language}"}
    (one, many), *rest = CLOSED_FOR[complaint]
    not_reconsidered, again = (_folded(t.gettext(m)) for m in rest)
    # Both named in one sentence (two sentences alike read as the same one said twice).
    named = _folded(t.ngettext(one, many, len(closed))) % {
        **values, "others": and_list([short_reference(other) for other in closed], language)}
    for part in (text.replace(" ,", ",") for text in both(letter)):  # the HTML's text spaces a link off
        assert named in part, (language, part)
        assert not_reconsidered % values in part
        assert (again % values in part) is (ending not in _SAY_HOW), part
    undecided = await as_sent(purpose, "erasure", params, regime=regime, language=language, country=country,
                              details={"appeal_of": APPEAL_OF})
    assert not_reconsidered % values not in both(undecided)[0]  # none closed for it: nothing said


async def test_an_appeal_closed_for_one_then_withdrawn_is_told_and_may_appeal_again(http, gated, pool, mail_sink):
    """Two appeals of one refusal; the second is closed for the first, whose decision its letter
    promises; the subject then withdraws the first. The withdrawal letter names the second, says the
    refusal was not reconsidered and how to appeal again; the second's portal page says so; the
    evidence pack of the second says how the first ended, the first's that it answers nothing; a new
    appeal of the refusal is accepted."""
    email = unique_email("closed-then-withdrawn")
    refused = await stored_refusal(pool, gated, email, "vcdpa", type="erasure")
    first, second = await one_closed_for_the_other(http, pool, mail_sink, email, refused)
    await _closed_for(pool, mail_sink, second, first)

    await withdrawn_by_phone(http, pool, first)
    said = _folded(text_of(await wait_for_letter(mail_sink, first, "cancellation")))
    values = {"id": short_reference(refused), "other": short_reference(second), "others": short_reference(second),
              "email": policy_of(gated).policy.controller.privacy_email}
    (one, _), *rest = CLOSED_FOR[False]
    for sentence in (one, *rest):
        assert _folded(sentence) % values in said, said

    page = _folded(html.unescape((await http.get(f"/portal/requests/{second}", params={"lang": "en"})).text))
    undecided = {**values, "other": short_reference(first)}
    for sentence in DECIDED_INSTEAD_UNDECIDED["appeal"]:
        assert _folded(sentence) % undecided in page, page
    compliance = await staff_headers(pool, "compliance")
    pack = (await http.get(f"/v1/requests/{second}/evidence", headers=compliance)).json()
    assert pack["decisions"]["refusal"]["decided_as"]["ended_undecided"] == "withdrawn", pack["decisions"]
    evidence = readable((await http.get(f"/v1/requests/{second}/evidence.html", headers=compliance)).text)
    assert "that appeal has since ended without a decision (withdrawn by the subject), so it answers nothing: the " \
           "refusal was not reconsidered" in evidence, evidence
    withdrawn = (await http.get(f"/v1/requests/{first}/evidence", headers=compliance)).json()["decisions"]
    assert [(a["id"], a["ended_undecided"]) for a in withdrawn["decides_also"]] == [(second, "withdrawn")]
    evidence = readable((await http.get(f"/v1/requests/{first}/evidence.html", headers=compliance)).text)
    assert f"Was to answer the subject's appeal {short_reference(second)}" in evidence, evidence

    again, _ = await public_appeal(http, mail_sink, email, refused)
    assert again not in (first, second)
    assert 'id="complain-again"' not in page  # a US appeal again is a reply or a letter: no form


async def test_a_complaint_closed_for_one_then_withdrawn_links_the_complaint_form(http, gated, pool, mail_sink):
    """Under the UK GDPR, the closed complaint's page offers the complaint form about the refused
    request (not about either complaint), in the page's language, and the form opens on it."""
    email = unique_email("closed-then-withdrawn-uk")
    refused = await stored_refusal(pool, gated, email, "uk_gdpr", type="erasure")
    first, second = await one_closed_for_the_other(http, pool, mail_sink, email, refused)
    await _closed_for(pool, mail_sink, second, first)
    await withdrawn_by_phone(http, pool, first)
    await wait_for_letter(mail_sink, first, "cancellation")

    page = html.unescape((await http.get(f"/portal/requests/{second}", params={"lang": "nl"})).text)
    values = {"id": short_reference(refused), "other": short_reference(first),
              "email": policy_of(gated).policy.controller.privacy_email}
    for sentence in DECIDED_INSTEAD_UNDECIDED["complaint"]:
        assert _folded(translations("nl").gettext(sentence) % values) in _folded(page), page
    form = f"/portal/complaints?about={short_reference(refused)}&lang=nl"
    assert f'id="complain-again" href="{form}"' in page, page
    late_link = html.unescape((await http.get(f"/portal/requests/{second}/verify", params={"lang": "nl"})).text)
    assert f'id="complain-again" href="{form}"' in late_link, late_link  # the verify page repeats the words
    opened = html.unescape((await http.get(form)).text)
    assert f'id="about" name="about" spellcheck="false" value="{short_reference(refused)}"' in opened, opened
    assert '<html lang="nl"' in opened and translations("nl").gettext("Complain about our decision") in opened
