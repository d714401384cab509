"""Every staff alert read as a DPO reads it, in the staff language and in Dutch (some in all four
languages): each kind the policy can cause, with the facts the workflow or the sweep passes for
it. Each says what happened, how late or how soon, and what to do, wholly in the staff's language:
no status code, no step's or system's id where its label belongs, no ISO date beside the written
one, no negative count, no 'day(s)', each sentence of its detail ended. The error a processor or
the relay gave is quoted as it came. An alert an older workflow asked for, with its detail as an
English sentence, still reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from activities.letter_systems import all_where
from activities.letter_templates import render_letter
from activities.staff_alert_words import FACTS
from dsrflow.i18n import translations
from policy.model import load_policy
from schemas.requests import RequestStatus
from schemas.steps import StepTrouble
from schemas.vocabulary import ALERT_NEEDS_ATTENTION, ALERT_OVERDUE, Language, staff_alert_kinds
from schemas.workflow import TaskResult
from tests.letter_contexts import full_context
from workflows.deadline_watch import overdue_reminder_facts, watch_facts
from workflows.step_trouble import trouble_facts
from workflows.task_fanout import stuck_facts

LOADED = load_policy()
POLICY = LOADED.policy
SYSTEMS = {system: spec.label for system, spec in POLICY.systems.items()}
LANGUAGES = sorted({POLICY.languages.staff.value, "nl"})
ALL_LANGUAGES = [language.value for language in Language]
CODES = re.compile(r"\b(?:" + "|".join([*(status.value for status in RequestStatus), *SYSTEMS,
                                        "send_letter", "record_event"]) + r")\b"
                   r"|\d{4}-\d\d-\d\d|\(s\)")
# The detail's field, as each language labels it.
DETAIL = re.compile(r"^(?:Detail|Toelichting|Détail|Einzelheiten)\s?: (.*)$", re.MULTILINE)
# What the detail quotes (an error as it came, a console button): data, not its words.
QUOTED = re.compile(r"[“„«][^”“»]*[”“»]")
REFUSED = "550 5.7.1 relay access denied."
DENIED = TaskResult(system="crm", action="erase", status="needs_attention", attempt=1,
                    message="credentials rejected (401)")


def _request(status: RequestStatus, **outstanding: object) -> SimpleNamespace:
    """What the deadline watch reads of its request (workflows/deadline_watch.py WatchedRequest)."""
    return SimpleNamespace(status=status, outstanding=lambda: outstanding)


TROUBLE = StepTrouble(key="send_letter:1", step="send_letter", message=REFUSED, transient=False, skippable=True,
                      since=datetime(2026, 3, 1, tzinfo=UTC), about="denial letter")

# (kind, days_left, facts, what the alert must say it is about, what its detail must name), as each
# sender builds them.
ALERTS = [
    *((kind, days, watch_facts(_request(RequestStatus.in_progress, waiting_for=["surveys"])), f"in {days} days",
       ["Survey service provider"]) for kind, days in ((f"due_in_{d}_days", d) for d in POLICY.deadline_warnings_days)),
    (ALERT_OVERDUE, 0, watch_facts(_request(RequestStatus.awaiting_approval)), "has passed", []),
    (ALERT_OVERDUE, -3, overdue_reminder_facts(_request(
        RequestStatus.in_progress, needing_staff=["crm", "billing"], objection=True,
        failed_steps=[{"step": "send_letter", "about": "response letter"}]), 3), "3 days ago",
     [SYSTEMS["crm"], SYSTEMS["billing"], "sending the response"]),
    # activities/request_start_sweep.py: a stopped request's daily reminder, past its due date.
    (ALERT_OVERDUE, -4, {"what": "still_stopped", "days": 1, "ended": "failed"}, "4 days ago", []),
    (ALERT_NEEDS_ATTENTION, 5, trouble_facts(TROUBLE), "needs attention", ["sending the denial letter", REFUSED[:-1]]),
    # its daily reminder
    (ALERT_NEEDS_ATTENTION, None, trouble_facts(TROUBLE, waited=3), "needs attention", ["sending the denial letter"]),
    (ALERT_NEEDS_ATTENTION, 5, stuck_facts(DENIED), "needs attention", [SYSTEMS["crm"], "credentials rejected (401)"]),
    (ALERT_NEEDS_ATTENTION, None, {"what": "still_stopped", "days": 2, "ended": "terminated"}, "needs attention", []),
    # workflows/dsr.py: the request waits for compliance.
    (ALERT_NEEDS_ATTENTION, 5, {"what": "approval", "stage": "changes"}, "needs attention", []),
    (ALERT_NEEDS_ATTENTION, 5, {"what": "approval", "stage": "release"}, "needs attention", []),
    (ALERT_NEEDS_ATTENTION, 5, {"what": "objection"}, "needs attention", ["Decide the objection"]),
    # activities/deferred_processors.py: an erasure a hold had kept, refused or never confirmed.
    (ALERT_NEEDS_ATTENTION, None, {"what": "deferred_failed", "system": "surveys", "asked": True,
                                   "message": "job 42 cancelled by the processor"}, "needs attention",
     ["Survey service provider", "job 42 cancelled by the processor"]),
    (ALERT_NEEDS_ATTENTION, None, {"what": "deferred_failed", "system": "surveys", "asked": True,
                                   "unconfirmed_days": 30, "asked_again": False}, "needs attention",
     ["Survey service provider", "30"]),
    (ALERT_NEEDS_ATTENTION, None, {"what": "deferred_failed", "system": "billing", "asked": False,
                                   "message": "connection refused"}, "needs attention", [SYSTEMS["billing"]]),
    # activities/request_start_sweep.py: the request's workflow stopped.
    (ALERT_NEEDS_ATTENTION, None, {"what": "workflow_ended", "ended": "timed_out"}, "needs attention",
     ["Resume the request"]),
    # ... after its request closed with a restriction in force, which only that workflow lifts.
    (ALERT_NEEDS_ATTENTION, None, {"what": "workflow_ended", "ended": "terminated", "closed": True},
     "needs attention", ["Resume the request", "restriction it put in place is still in force"]),
    (ALERT_NEEDS_ATTENTION, None, {"what": "still_stopped", "days": 3, "ended": "failed", "closed": True},
     "needs attention", ["Resume the request", "3 days after it was flagged", "the restriction can then be lifted"]),
    # activities/request_start_sweep.py: the request's workflow task fails at every try, a key dropped too early.
    (ALERT_NEEDS_ATTENTION, 9, {"what": "workflow_failing", "since": datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
                                "attempts": 7, "days": 0, "unheld_key": None}, "needs attention",
     ["worker's log", "7 attempts"]),
    (ALERT_OVERDUE, -2, {"what": "workflow_failing", "since": datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
                         "attempts": 40, "days": 3, "unheld_key": "k1"}, "2 days ago", ["“k1”", "stuck for 3 days"]),
    # activities/packages.py: a system the package cannot be read from.
    (ALERT_NEEDS_ATTENTION, 2, {"what": "package_unreadable", "request_type": "portability", "system": "crm",
                                "message": "403 Forbidden"}, "needs attention", [SYSTEMS["crm"], "403 Forbidden"]),
    # activities/held_lifts.py: a lift held by a restriction that ended without restricting a processor.
    (ALERT_NEEDS_ATTENTION, None, {"what": "lift_by_hand", "system": "email_marketing",
                                   "holder": "6f1c2d3e-0000-4000-8000-000000000001"}, "needs attention",
     [SYSTEMS["email_marketing"], "FWG4UHJ223"]),
    # ... and one a SaaS failed for a day: staff lift it there by hand (its error's kind named).
    (ALERT_NEEDS_ATTENTION, None, {"what": "lift_by_hand", "system": "crm", "failed": "HttpSystemUnavailable",
                                   "holder": "6f1c2d3e-0000-4000-8000-000000000001"}, "needs attention",
     [SYSTEMS["crm"], "FWG4UHJ223", "HttpSystemUnavailable"]),
    # activities/lift_superseded.py: a newer restriction restricts a system staff were asked to lift by hand.
    (ALERT_NEEDS_ATTENTION, None, {"what": "lift_superseded", "system": "email_marketing",
                                   "lifts": ["6f1c2d3e-0000-4000-8000-000000000001"],
                                   "since": datetime(2026, 3, 2, 8, 30, tzinfo=UTC)}, "needs attention",
     ["Do not lift the restriction", "FWG4UHJ223", "2 March 2026, 09:30", "restrict it there again"]),
    # activities/connectors/opendsr_calloff.py: a job at a processor that could not be called off.
    (ALERT_NEEDS_ATTENTION, None, {"what": "call_off_by_hand", "system": "email_marketing", "failed": "HTTP 405"},
     "needs attention", [SYSTEMS["email_marketing"], "HTTP 405", "must not act on it"]),
    # activities/acted_after_call_off.py: a processor that carried out a job after cancelling it.
    (ALERT_NEEDS_ATTENTION, None, {"what": "acted_after_call_off", "system": "email_marketing"},
     "needs attention", [SYSTEMS["email_marketing"], "acted against the instruction", "subject must be told"]),
    # activities/acted_after_call_off.py: the processor staff were to tell by hand has since cancelled.
    (ALERT_NEEDS_ATTENTION, None, {"what": "call_off_settled", "system": "email_marketing"},
     "needs attention", [SYSTEMS["email_marketing"], "is settled: nobody need do so any more"]),
]


def _alert(kind: str, days_left: int | None, facts: dict, language: str, **extra: Any) -> tuple[str, str]:
    """The alert's text, and its detail."""
    letter = render_letter("staff_alert", full_context("staff_alert", kind=kind, days_left=days_left, facts=facts,
                                                       systems=SYSTEMS, **extra), language)
    detail = DETAIL.search(letter.text)
    assert detail is not None, letter.text
    assert detail.group(1) in letter.html.replace("&#39;", "'"), letter.html
    return letter.text, detail.group(1)


def test_every_kind_the_policy_can_cause_and_every_fact_is_read():
    assert {kind for kind, *_ in ALERTS} == set(staff_alert_kinds(POLICY.deadline_warnings_days))
    assert {facts["what"] for _, _, facts, *_ in ALERTS} == set(FACTS)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("kind", "days_left", "facts", "about", "named"), ALERTS)
def test_a_staff_alert_reads_as_sentences_without_codes(language, kind, days_left, facts, about, named):
    text, detail = _alert(kind, days_left, facts, language)
    if language == "en":
        opening = text.strip().splitlines()[0]
        assert about in opening and opening.endswith("."), opening
        # Steps and systems by their labels, the error as it came.
        for words in named:
            assert words in detail, detail
        if facts.get("closed"):  # a closed request has no deadline left to run on
            assert "deadline" not in detail and "was open" not in detail, detail
        if kind == ALERT_NEEDS_ATTENTION or days_left is not None and days_left < 0:
            # What staff can do, or that nothing is asked of them (a package's read is retried).
            assert "request's page" in detail or "Resume the request" in detail or "retried" in detail, detail
    else:  # wholly Dutch: no English words left in it but the console's buttons and the data
        words = QUOTED.sub("", detail)
        for label in SYSTEMS.values():  # the test's policy labels its systems in English only
            words = words.replace(label, "")
        assert not re.search(r"\b(?:the|waits|needs|staff|request's|failed|and)\b", words), detail
        for words in named:
            if words in SYSTEMS.values() or words in REFUSED:
                assert words in detail, detail
    # The detail: sentences, each ended.
    assert detail[0].isupper() and detail.endswith(".") and ".." not in detail, detail
    assert CODES.search(QUOTED.sub("", detail)) is None, detail
    # No negative count, and an overdue alert never says how many days are left.
    assert not re.search(r"(?<![\w-])-\d", text), text
    if kind == ALERT_OVERDUE:
        assert "Days left" not in text and "Resterende dagen" not in text, text
        assert "deadline is" not in text and "uiterste datum is 2" not in text, text


@pytest.mark.parametrize("language", ALL_LANGUAGES)
def test_a_failed_steps_reminder_is_wholly_in_the_staff_language(language):
    """A Dutch-, French- or German-speaking staff read the step, what to do and how long it has
    waited in their language; the relay's words stay as the relay gave them, quoted."""
    _, detail = _alert(ALERT_NEEDS_ATTENTION, None, trouble_facts(TROUBLE, waited=3), language)
    expected = {
        "en": ("A step of the request failed: sending the denial letter.", "It has waited for staff for 3 days."),
        "nl": ("Een stap van het verzoek is mislukt: het versturen van de afwijzingsbrief.",
               "De stap wacht al 3 dagen op een medewerker."),
        "fr": ("Une étape de la demande a échoué\u00a0: l'envoi du courrier de refus.",
               "L'étape attend le personnel depuis 3 jours."),
        "de": ("Ein Schritt des Antrags ist fehlgeschlagen: Versand des Ablehnungsschreibens.",
               "Der Schritt wartet seit 3 Tagen auf das Team."),
    }[language]
    for sentence in expected:
        assert sentence in detail, detail
    assert "550 5.7.1 relay access denied" in detail, detail


@pytest.mark.parametrize("language", ALL_LANGUAGES)
def test_a_warning_names_the_systems_by_their_phrases_in_every_language(language):
    """The systems a request waits for by their phrases (`where`, as build_context gives them): "from
    Survey service provider" read wrong, and "dans/in <label>" in the translations."""
    facts = watch_facts(_request(RequestStatus.in_progress, waiting_for=["surveys", "crm"]))
    where = all_where(LOADED.in_language(language), translations(language))
    _, detail = _alert("due_in_7_days", 7, facts, language, where=where)
    assert where["surveys"] in detail and where["crm"] in detail, detail
    assert "Survey service provider" not in detail and SYSTEMS["crm"] not in detail, detail
    assert CODES.search(detail) is None, detail
    english = _alert("due_in_7_days", 7, facts, "en", where=all_where(POLICY, translations("en")))[1]
    assert english.startswith("The request is in progress. It still waits for the answers to its tasks at our survey "
                              "service provider and in our CRM."), english
    assert (detail == english) == (language == "en"), detail


def test_an_alert_an_older_workflow_asked_for_still_reads_its_detail():
    """A workflow started before the facts passes its detail as a sentence (an activity input in
    its history): the alert prints it as it came, in any language."""
    older = "The step send_letter (denial letter) failed: relay refused. On the request's page, run it again."
    letter = render_letter("staff_alert", full_context("staff_alert", kind=ALERT_NEEDS_ATTENTION, days_left=2,
                                                       detail=older), "nl")
    assert f"Toelichting: {older}" in letter.text, letter.text


def test_an_alert_with_neither_facts_nor_detail_is_refused():
    context = full_context("staff_alert")
    del context["detail"]
    with pytest.raises(Exception, match="facts"):
        render_letter("staff_alert", context)
    with pytest.raises(ValueError, match="unknown facts"):
        render_letter("staff_alert", {**context, "facts": {"what": "nothing"}})


@pytest.mark.parametrize("language", ALL_LANGUAGES)
def test_a_stuck_tasks_reminder_says_how_long_it_has_waited(language):
    """A task's reminder each morning (workflows/task_alerts.py, `waited`) says how long it has
    waited, as a failed step's does: the fourth read as the first did."""
    _, first = _alert(ALERT_NEEDS_ATTENTION, None, stuck_facts(DENIED), language)
    _, fourth = _alert(ALERT_NEEDS_ATTENTION, None, {**stuck_facts(DENIED), "waited": 4}, language)
    _, second = _alert(ALERT_NEEDS_ATTENTION, None, {**stuck_facts(DENIED), "waited": 1}, language)
    expected = {
        "en": ("The task has waited for staff for 4 days.", "The task has waited for staff since yesterday.",
               "Staff are reminded each day until it is answered."),
        "nl": ("De taak wacht al 4 dagen op een medewerker.", "De taak wacht sinds gisteren op een medewerker.",
               "Medewerkers worden er elke dag aan herinnerd totdat erop is gereageerd."),
        "fr": ("La tâche attend le personnel depuis 4 jours.", "La tâche attend le personnel depuis hier.", None),
        "de": ("Die Aufgabe wartet seit 4 Tagen auf das Team.", "Die Aufgabe wartet seit gestern auf das Team.",
               "Das Team wird täglich daran erinnert, bis darauf reagiert wurde."),
    }[language]
    assert expected[0] in fourth and expected[1] in second, (fourth, second)
    assert expected[2] is None or expected[2] in fourth, fourth
    assert "credentials rejected (401)" in fourth and fourth != first
    assert not any(sentence and sentence in first for sentence in expected), first
