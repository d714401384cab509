"""A request closed unanswered (withdrawn, cancelled by staff, denied) after part of it was carried
out: its letter names the systems already changed, and those asked that may still act (a
processor at work), in the policy's words and the letter's language, since what was done there is
not undone (an erasure cannot be). Built from the
workflow's params as the letter activity builds them (tests/letters_as_sent.py `as_sent`)."""

from __future__ import annotations

import pytest

from dsrflow.i18n import translations
from tests.letters_as_sent import LOADED, REGIMES, as_sent, both

SENTENCE = "Before your request was closed, we had already acted on it in: %(systems)s."
STILL_ASKED = "We had also asked these systems to act on it, and they may still do so: %(systems)s."
CALLED_OFF = ("We had also asked these systems to act on it, and are now calling that off; any that had already begun "
              "may have acted: %(systems)s.")
CLOSINGS = {
    "withdrawn": ("cancellation", {"reason": "Withdrawn by phone", "withdrawn": True}),
    "cancelled": ("cancellation", {"reason": "A duplicate of an earlier request", "withdrawn": False}),
    "denied": ("denial", {"reason_code": "excessive", "explanation": "The fifth identical request"}),
}


@pytest.mark.parametrize("language", ["en", "nl", "fr", "de"])
@pytest.mark.parametrize("closing", CLOSINGS)
async def test_a_closing_letter_names_the_systems_already_changed(closing, language):
    purpose, params = CLOSINGS[closing]
    letter = await as_sent(purpose, "erasure", {**params, "acted_in": ["crm", "billing"],
                                                "asked_in": ["email_marketing", "surveys"]}, language=language)
    policy = LOADED.in_language(language)
    t = translations(language)
    for part in both(letter):
        assert t.gettext(SENTENCE).split(":")[0] in part
        assert policy.systems["crm"].label in part and policy.systems["billing"].label in part
        # A processor at work when it closed is called off (an OpenDSR job cancelled, a processor
        # asked by e-mail told not to act), and may have acted already: the subject is told that too.
        off = part.split(t.gettext(CALLED_OFF).split(":")[0], 1)[1].split(".", 1)[0]
        assert policy.systems["email_marketing"].label in off and policy.systems["surveys"].label in off
        assert t.gettext(STILL_ASKED).split(":")[0] not in part


@pytest.mark.parametrize("closing", CLOSINGS)
async def test_a_restriction_still_asked_is_not_called_off(closing):
    """A restriction stays in force wherever it was carried out (workflows/restriction_lifecycle.py):
    nothing is called off, and the letter says the systems asked may still act."""
    purpose, params = CLOSINGS[closing]
    letter = await as_sent(purpose, "restriction", {**params, "acted_in": [], "asked_in": ["email_marketing"]})
    for part in both(letter):
        assert "may still do so" in part and "calling that off" not in part, part


@pytest.mark.parametrize("closing", CLOSINGS)
async def test_nothing_is_named_when_nothing_was_changed_or_the_request_only_reads(closing):
    purpose, params = CLOSINGS[closing]
    before_anything = await as_sent(purpose, "erasure", {**params, "acted_in": [], "asked_in": []})
    access = await as_sent(purpose, "access", {**params, "acted_in": ["crm"], "asked_in": ["billing"]})  # reads only
    older = await as_sent(purpose, "erasure", params)  # a workflow from before it sent the systems
    for letter in (before_anything, access, older):
        for part in both(letter):
            assert "we had already acted on it" not in part and "may still do so" not in part


STOPPED = ("Our automated work %(where)s stopped before it was finished; by then it had made %(num)d change "
           "to your records there.",
           "Our automated work %(where)s stopped before it was finished; by then it had made %(num)d changes "
           "to your records there.")
PURPOSES = {**CLOSINGS, "completed": ("response", {"report": {"results": []}})}


@pytest.mark.parametrize("language", ["en", "nl", "fr", "de"])
@pytest.mark.parametrize("closing", PURPOSES)
async def test_a_letter_says_what_a_run_had_changed_before_its_task_stopped(closing, language):
    """A system's run changed part of what it was asked to, then its task stopped (its retries ran
    out, staff resolved it by hand, the request was withdrawn while it ran): the closing letter, or
    the response, says how many changes had been made there, in the letter's language, once. Before,
    it named nothing done there (a response: "We found no personal data about you in our systems")."""
    purpose, params = PURPOSES[closing]
    if purpose != "response":
        params = {**params, "acted_in": [], "asked_in": []}
    letter = await as_sent(purpose, "erasure", params, language=language,
                           stopped_runs=[["billing", 3, "needs_attention"], ["crm", 1, "done"]])
    policy = LOADED.in_language(language)
    t = translations(language)
    for part in both(letter):
        for system, changes in (("crm", 1), ("billing", 3)):
            label = policy.systems[system].label
            said = t.ngettext(*STOPPED, changes) % {"where": policy.systems[system].where, "num": changes}
            if purpose == "response":  # a line of what was done per system, and not its sentence too
                assert said not in part, (system, part)
                assert part.count(label) == 1, (system, part)
            else:
                assert said in part, (system, part)
        if purpose == "response":
            # crm's task was completed by staff (the response says the request is complete), billing's not.
            assert t.gettext("changed by our automated work before it stopped; our staff completed the rest") in part
            assert t.gettext("changed before our work there stopped") in part
        assert t.gettext("We found no personal data about you in our systems.") not in part


@pytest.mark.parametrize("closing", CLOSINGS)
async def test_a_system_still_asked_is_not_said_to_have_stopped(closing):
    """A system whose run changed something and that still has a job at the work when the request
    closes (asked: it may still act; being called off, it may have acted) is told of so, not also as
    one whose work stopped: the two sentences together contradicted each other."""
    purpose, params = CLOSINGS[closing]
    letter = await as_sent(purpose, "erasure", {**params, "acted_in": [], "asked_in": ["surveys"]},
                           stopped_runs=[["surveys", 2, "pending"], ["crm", 1, "needs_attention"]])
    label, where = LOADED.policy.systems["surveys"].label, LOADED.policy.systems["surveys"].where
    for part in both(letter):
        assert "are now calling that off" in part and label in part
        assert f"Our automated work {where} stopped" not in part, part
        assert "Our automated work in our CRM stopped" in part


@pytest.mark.parametrize("closing", CLOSINGS)
async def test_a_run_the_close_stopped_is_said_to_have_stopped_not_to_be_still_at_work(closing):
    """An http run under way at the close is asked in the workflow's eyes (its task pending), but it
    sends nothing after the close: the close kept its count on its task, which no longer waits
    (needs attention). The letter says its work stopped and what it had changed, not that it may
    still act; before, it said 'may still do so' and nothing of the change (tests/test_saas_close_crash.py)."""
    purpose, params = CLOSINGS[closing]
    letter = await as_sent(purpose, "erasure", {**params, "acted_in": [], "asked_in": ["email_marketing"]},
                           stopped_runs=[["email_marketing", 1, "needs_attention"]])
    for part in both(letter):
        assert "may still do so" not in part, part
        assert "Our automated work in our e-mail marketing system stopped before it was finished; by then it had made 1 change" in part


AT_LEAST = ("Our automated work %(where)s stopped before it was finished; by then it had made at least %(num)d "
            "change to your records there.",
            "Our automated work %(where)s stopped before it was finished; by then it had made at least %(num)d "
            "changes to your records there.")
MAY_HAVE = ("Our automated work %(where)s stopped before it was finished, as it was making a change to your "
            "records there; that change may have been made.")


@pytest.mark.parametrize("language", ["en", "nl", "fr", "de"])
async def test_a_change_on_the_wire_at_the_close_is_not_said_as_known(language):
    """A change whose request was on the wire as the request closed, its answer not on record (the
    try has not heard it yet, or died with its worker): the service may have made it. The letter
    says the count as a least ("at least 2 changes"), and, with nothing counted, that a change may
    have been made; before, it said "2 changes" as exact, and nothing where none was counted."""
    t = translations(language)
    letter = await as_sent("cancellation", "erasure", {**CLOSINGS["withdrawn"][1], "acted_in": [], "asked_in": []},
                           language=language, stopped_runs=[["crm", 2, "needs_attention", 1],
                                                             ["billing", 0, "needs_attention", 1]])
    # Either side of the system's phrase (which the letter gives in its language).
    at_least, may_have = (said.split("%(where)s") for said in (t.ngettext(*AT_LEAST, 2), t.gettext(MAY_HAVE)))
    for part in both(letter):
        assert at_least[0] in part and at_least[1] % {"num": 2} in part, part
        assert may_have[0] in part and may_have[1] in part, part
        assert "%(" not in part, part


@pytest.mark.parametrize("closing", CLOSINGS)
async def test_a_system_done_after_the_close_is_named_as_acted_on(closing):
    """A try already past its last change when the request closed stored its success after the
    close: the workflow's `acted_in`, worked out at the close, lacks the system, but the letter,
    written from the stored results, names it as acted on (it named it nowhere); and a processor
    asked at the close that has finished since is named as acted on, not as one that may still act."""
    purpose, params = CLOSINGS[closing]
    letter = await as_sent(purpose, "erasure", {**params, "acted_in": [], "asked_in": ["email_marketing"]},
                           done_systems=["crm", "email_marketing"])
    systems = LOADED.policy.systems
    for part in both(letter):
        acted = part.split("we had already acted on it in: ", 1)[1].split(".", 1)[0]
        assert systems["crm"].label in acted and systems["email_marketing"].label in acted, part
        assert "may still do so" not in part, part


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("closing", PURPOSES)
async def test_a_run_stopped_part_way_is_said_under_every_law(closing, regime):
    """The sentence, or the response's line, under each law the letters speak (its words, its
    remedies): rendered whole, no placeholder left unfilled (StrictUndefined refuses a missing
    value; a `%(...)s` left in the text would show here)."""
    purpose, params = PURPOSES[closing]
    if purpose != "response":
        params = {**params, "acted_in": [], "asked_in": []}
    letter = await as_sent(purpose, "erasure", params, regime=regime,
                           stopped_runs=[["crm", 2, "needs_attention"], ["billing", 1, "done"]])
    for part in both(letter):
        assert "%(" not in part and "{{" not in part, part
        if purpose == "response":
            assert "changed before our work there stopped" in part and "2 changes" in part, part
        else:
            assert "Our automated work in our CRM stopped before it was finished; by then it had made 2 changes" \
                in part, part


_HEDGED = "This means we have not acted on your request, or not on all of it."
_NOTHING_DONE = "This means we have not acted on your request."
_PART_DONE = "This means we have not completed your request: what we had done before closing it is set out above."
_NOTHING_BEFORE_WITHDRAWAL = ("We had not yet acted on your request when you withdrew it: nothing was changed in our "
                              "systems.")


@pytest.mark.parametrize("language", ["en", "nl", "fr", "de"])
async def test_a_closing_letter_says_plainly_whether_anything_was_done(language):
    """A workflow that sends `acted_in` says what it had changed: closed by staff with nothing done,
    the letter says so, not "we have not acted on your request, or not on all of it"; done in part,
    that it is not complete and what was done is above; withdrawn with nothing done, that nothing
    was. A workflow from before `acted_in`, and a request that only reads (it changes nothing,
    done or not), keep the hedged words."""
    t = translations(language)
    cancelled, withdrawn = CLOSINGS["cancelled"][1], CLOSINGS["withdrawn"][1]
    expected = {
        _NOTHING_DONE: await as_sent("cancellation", "erasure", {**cancelled, "acted_in": [], "asked_in": []},
                                     language=language),
        _PART_DONE: await as_sent("cancellation", "erasure", {**cancelled, "acted_in": ["crm"], "asked_in": []},
                                  language=language),
        _HEDGED: await as_sent("cancellation", "erasure", cancelled, language=language),
    }
    expected_access = await as_sent("cancellation", "access", {**cancelled, "acted_in": [], "asked_in": []},
                                    language=language)
    leads = (_NOTHING_DONE, _PART_DONE, _HEDGED)
    for said, letter in [*expected.items(), (_HEDGED, expected_access)]:
        for part in both(letter):
            for lead in leads:
                assert (" ".join(t.gettext(lead).split()) + " " in part + " ") is (lead == said), (lead, part)
    nothing = " ".join(t.gettext(_NOTHING_BEFORE_WITHDRAWAL).split())
    told = await as_sent("cancellation", "erasure", {**withdrawn, "acted_in": [], "asked_in": []}, language=language)
    for part in both(told):
        assert nothing in part
    for params in (withdrawn, {**withdrawn, "acted_in": ["crm"], "asked_in": []},
                   {**withdrawn, "acted_in": [], "asked_in": ["email_marketing"]}):
        for part in both(await as_sent("cancellation", "erasure", params, language=language)):
            assert nothing not in part


@pytest.mark.parametrize("language", ["en", "nl", "fr", "de"])
async def test_what_a_close_by_staff_means_follows_its_reason(language):
    """"This means we have not acted on your request" follows the reason and what was done, which
    it speaks of; the invitation to make a new request came between them ("You are welcome to make
    a new request ... This means ..."), and now follows the remedies."""
    t = translations(language)
    letter = await as_sent("cancellation", "erasure", {**CLOSINGS["cancelled"][1], "acted_in": [], "asked_in": []},
                           language=language)
    invitation = t.gettext("You are welcome to make a new request at any time at %(url)s.").split("%(url)s")[0]
    for part in both(letter):
        reason = part.index(CLOSINGS["cancelled"][1]["reason"])
        assert reason < part.index(" ".join(t.gettext(_NOTHING_DONE).split())) < part.index(invitation), part
