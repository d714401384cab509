"""A request closed unanswered (withdrawn, cancelled by staff, denied) after part of it was carried
out: its letter names the systems already changed, and those asked that may still act (a
processor at work), in the policy's words and the letter's language, since what was done there is
not undone (an erasure cannot be). Built from the
workflow's params as the letter activity builds them (tests/letters_as_sent.py `as_sent`)."""

from __future__ import annotations

import pytest

from dsrflow.i18n import translations
from tests.letters_as_sent import LOADED, as_sent, both

SENTENCE = "Before your request was closed, we had already acted on it in: %(systems)s."
STILL_ASKED = "We had also asked these systems to act on it, and they may still do so: %(systems)s."
CLOSINGS = {
    "withdrawn": ("cancellation", {"reason": "Withdrawn by phone", "withdrawn": True}),
    "cancelled": ("cancellation", {"reason": "A duplicate of an earlier request", "withdrawn": False}),
    "denied": ("denial", {"reason_code": "excessive", "explanation": "The fifth identical request"}),
}


@pytest.mark.parametrize("language", ["en", "nl", "fr", "de"])
@pytest.mark.parametrize("closing", CLOSINGS)
async def test_a_closing_letter_names_the_systems_already_changed(closing, language):
    purpose, params = CLOSINGS[closing]
    letter = await as_sent(purpose, "erasure", {**params, "acted_in": ["crm", "billing"], "asked_in": ["email_marketing"]},
                           language=language)
    policy = LOADED.in_language(language)
    t = translations(language)
    for part in both(letter):
        assert t.gettext(SENTENCE).split(":")[0] in part
        assert policy.systems["crm"].label in part and policy.systems["billing"].label in part
        # A processor at work when it closed may still act: the subject is told that too.
        assert t.gettext(STILL_ASKED).split(":")[0] in part and policy.systems["email_marketing"].label in part


@pytest.mark.parametrize("closing", CLOSINGS)
async def test_nothing_is_named_when_nothing_was_changed_or_the_request_only_reads(closing):
    purpose, params = CLOSINGS[closing]
    before_anything = await as_sent(purpose, "erasure", {**params, "acted_in": [], "asked_in": []})
    access = await as_sent(purpose, "access", {**params, "acted_in": ["crm"], "asked_in": ["billing"]})  # reads only
    older = await as_sent(purpose, "erasure", params)  # a workflow from before it sent the systems
    for letter in (before_anything, access, older):
        for part in both(letter):
            assert "we had already acted on it" not in part and "may still do so" not in part


STOPPED = ("Our automated work in %(system)s stopped before it was finished; by then it had made %(num)d change "
           "to your records there.",
           "Our automated work in %(system)s stopped before it was finished; by then it had made %(num)d changes "
           "to your records there.")
PURPOSES = {**CLOSINGS, "completed": ("response", {"report": {"results": []}})}


@pytest.mark.parametrize("language", ["en", "nl", "fr", "de"])
@pytest.mark.parametrize("closing", PURPOSES)
async def test_a_letter_says_what_a_run_had_changed_before_its_task_stopped(closing, language):
    """A system's run changed part of what it was asked to, then its task stopped (its retries ran
    out, staff resolved it by hand, the request was withdrawn while it ran): the closing letter, or
    the response, says how many changes had been made there, in the letter's language. Before, it
    named nothing done there (a response: "We found no personal data about you in our systems")."""
    purpose, params = PURPOSES[closing]
    if purpose != "response":
        params = {**params, "acted_in": [], "asked_in": []}
    letter = await as_sent(purpose, "erasure", params, language=language, stopped_runs=[["billing", 3], ["crm", 1]])
    policy = LOADED.in_language(language)
    t = translations(language)
    for part in both(letter):
        for system, changes in (("crm", 1), ("billing", 3)):
            said = t.ngettext(*STOPPED, changes) % {"system": policy.systems[system].label, "num": changes}
            assert said in part, (system, part)
        assert t.gettext("We found no personal data about you in our systems.") not in part
