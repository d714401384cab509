"""Every staff alert read as a DPO reads it, in the staff language and in Dutch: each kind the
policy can cause, with the detail the workflow or the sweep builds for it. Each says what happened,
how late or how soon, and what to do, with no status code, no ISO date beside the written one, no
negative count, no 'day(s)', and each sentence of its detail ended."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from activities.letter_templates import render_letter
from activities.request_start_sweep import stopped_detail
from policy.model import load_policy
from schemas.requests import RequestStatus
from schemas.steps import StepTrouble
from schemas.vocabulary import ALERT_NEEDS_ATTENTION, ALERT_OVERDUE, staff_alert_kinds
from schemas.workflow import TaskResult
from tests.letter_contexts import full_context
from workflows.deadline_watch import overdue_reminder_detail, watch_detail
from workflows.step_trouble import trouble_detail
from workflows.task_fanout import stuck_detail

POLICY = load_policy().policy
LANGUAGES = sorted({POLICY.languages.staff.value, "nl"})
CODES = re.compile(r"\b(?:" + "|".join(status.value for status in RequestStatus) + r")\b|\d{4}-\d\d-\d\d|\(s\)")


def _request(status: RequestStatus, outstanding: str = "") -> SimpleNamespace:
    """What the deadline watch reads of its request (workflows/deadline_watch.py WatchedRequest)."""
    return SimpleNamespace(status=status, outstanding=lambda: outstanding)


TROUBLE = StepTrouble(key="send_letter:1", step="send_letter", message="the mail relay refused the letter.",
                      transient=False, skippable=True, since=datetime(2026, 3, 1, tzinfo=UTC), about="denial letter")
STUCK = TaskResult(system="crm", action="erasure", status="needs_attention", attempt=1,
                   message="credentials rejected (401)")
STOPPED = ("the request's workflow failed while the request was open; no step of it runs any more until "
           "compliance resumes it from the request's page")

# (kind, days_left, detail, what the alert must say it is about), as each sender builds them.
ALERTS = [
    *((kind, days, watch_detail(_request(RequestStatus.in_progress, "waiting for crm")), f"in {days} days")
      for kind, days in ((f"due_in_{d}_days", d) for d in POLICY.deadline_warnings_days)),
    (ALERT_OVERDUE, 0, watch_detail(_request(RequestStatus.awaiting_approval)), "has passed"),
    (ALERT_OVERDUE, -3, overdue_reminder_detail(_request(RequestStatus.in_progress, "needing staff: crm"), 3),
     "3 days ago"),
    (ALERT_OVERDUE, -4, stopped_detail(1, STOPPED), "4 days ago"),
    (ALERT_NEEDS_ATTENTION, 5, trouble_detail(TROUBLE), "needs attention"),
    (ALERT_NEEDS_ATTENTION, None, trouble_detail(TROUBLE, waited=3), "needs attention"),  # its daily reminder
    (ALERT_NEEDS_ATTENTION, 5, stuck_detail(STUCK), "needs attention"),
    (ALERT_NEEDS_ATTENTION, None, stopped_detail(2, STOPPED), "needs attention"),
]


def test_every_kind_the_policy_can_cause_is_read():
    assert {kind for kind, *_ in ALERTS} == set(staff_alert_kinds(POLICY.deadline_warnings_days))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("kind", "days_left", "detail", "about"), ALERTS)
def test_a_staff_alert_reads_as_sentences_without_codes(language, kind, days_left, detail, about):
    letter = render_letter("staff_alert", full_context("staff_alert", kind=kind, days_left=days_left,
                                                       detail=detail), language)
    text = letter.text
    if language == "en":
        opening = text.strip().splitlines()[0]
        assert about in opening and opening.endswith("."), opening
    # The detail: sentences, each ended, with a way forward where staff must act.
    assert detail[0].isupper() and detail.endswith(".") and ".." not in detail, detail
    assert CODES.search(detail) is None, detail
    if kind == ALERT_NEEDS_ATTENTION or days_left is not None and days_left < 0:
        assert "request's page" in detail or "Resume the request" in detail, detail
    # No negative count, and an overdue alert never says how many days are left.
    assert not re.search(r"(?<![\w-])-\d", text), text
    if kind == ALERT_OVERDUE:
        assert "Days left" not in text and "Resterende dagen" not in text, text
        assert "deadline is" not in text and "uiterste datum is 2" not in text, text
