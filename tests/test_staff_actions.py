"""The one table of staff actions (api/staff_actions.py) and everything that reads it: the console
renders a form for each action and only those, the authorisation matrix asks each action's role
of its REST endpoint, and which actions the console offers follows the request's situation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.console.view import allowed_actions
from api.problems import Problem
from api.staff_actions import STAFF_ACTIONS, Situation
from schemas.requests import RequestStatus
from schemas.staff_tokens import ROLES
from tests.test_authz_matrix import MATRIX, R

LIVE_TEMPLATE = Path(__file__).resolve().parents[1] / "api" / "templates" / "console" / "_request_live.html"


def holds(role: str):
    return lambda needed: ROLES.index(role) >= ROLES.index(needed)


def situation(status: RequestStatus = RequestStatus.in_progress, **facts) -> Situation:
    return Situation(**{"status": status, "extended": False, "overdue": False, "awaiting_decision": False,
                        "needs_attention": False, **facts})


def test_the_console_has_a_form_for_each_action_and_only_those():
    source = LIVE_TEMPLATE.read_text()
    forms = set(re.findall(r'action_form\("([a-z-]+)"', source))
    shown_when_allowed = set(re.findall(r'\{% if "([a-z-]+)" in actions %\}', source))
    assert forms == shown_when_allowed == set(STAFF_ACTIONS)


def test_each_rest_endpoint_asks_the_role_of_its_action():
    rows = {row.path.removeprefix(f"{R}/"): row for row in MATRIX if row.method == "POST"}
    for name, action in STAFF_ACTIONS.items():
        assert rows[name].agent == (403 if action.role == "compliance" else 404), name


@pytest.mark.parametrize(("role", "facts", "expected"), [
    ("agent", situation(RequestStatus.awaiting_verification), {"cancel", "resend-verification"}),
    ("compliance", situation(RequestStatus.awaiting_verification),
     {"cancel", "resend-verification", "extend", "deny"}),
    ("agent", situation(RequestStatus.awaiting_approval), {"cancel"}),
    ("admin", situation(RequestStatus.awaiting_approval), {"cancel", "extend", "deny", "approve"}),
    # An approval taken and not yet on record: the workflow refuses all four until it is.
    ("admin", situation(RequestStatus.awaiting_approval, deciding=True), set()),
    ("agent", situation(RequestStatus.awaiting_approval, deciding=True), set()),
    ("compliance", situation(extended=True, needs_attention=True), {"cancel", "deny", "retry-task", "resolve-task"}),
    ("compliance", situation(overdue=True, awaiting_decision=True), {"cancel", "deny", "decide-objection"}),
    ("admin", situation(RequestStatus.completed, needs_attention=True), set()),
    ("compliance", situation(RequestStatus.cancelled), set()),
    # A UK complaint undecided: who decides it may tell the complainant of progress (ProgressByHand).
    ("compliance", situation(RequestStatus.awaiting_approval, complaint=True, extensible=False),
     {"cancel", "deny", "approve", "tell-progress"}),
    ("agent", situation(RequestStatus.awaiting_verification, complaint=True), {"cancel", "resend-verification"}),
    ("admin", situation(RequestStatus.awaiting_approval, complaint=True, deciding=True), set()),
])
def test_the_actions_offered_follow_role_and_situation(role, facts, expected):
    assert allowed_actions(holds(role), facts) == expected


def test_a_console_form_becomes_the_rest_body_and_the_workflow_input():
    decide = STAFF_ACTIONS["decide-objection"]
    form = FormData([("csrf_token", "t"), ("compelling_grounds", "true"), ("explanation", "  Card fraud checks  ")])
    made = decide.workflow_input(decide.body_from_form(form), "compliance:1")
    assert (made.compelling_grounds, made.explanation, made.actor) == (True, "Card fraud checks", "compliance:1")
    assert STAFF_ACTIONS["approve"].workflow_input(STAFF_ACTIONS["approve"].body_from_form(FormData()), "c").note is None
    # A resend's round is the API's to check (api/staff_bodies.py `resent_since`), not the workflow's input.
    resend = STAFF_ACTIONS["resend-verification"]
    with pytest.raises(Problem) as unshown:  # the console's form says it; a post that does not sends nothing
        resend.body_from_form(FormData([("csrf_token", "t")]))
    assert unshown.value.status == 409 and "nothing was sent" in (unshown.value.detail or "")
    shown = resend.body_from_form(FormData([("csrf_token", "t"), ("round", "2")]))
    assert resend.round_shown(shown) == 2 and resend.workflow_input(shown, "a").model_dump() == {"actor": "a"}


def test_a_progress_letters_press_is_keyed_by_the_count_its_page_showed():
    """The console's form sends the count of letters by hand its page showed: a double press is one
    key (one letter), the page after it shows the next; the note is the body, the key is not."""
    tell = STAFF_ACTIONS["tell-progress"]
    form = FormData([("csrf_token", "t"), ("told", "2"), ("note", "Our team is reviewing the records")])
    made = tell.workflow_input(tell.body_from_form(form), "compliance:1", tell.once_from_form(form, "compliance:1"))
    assert made.model_dump() == {"note": "Our team is reviewing the records", "once": "console:compliance:1:2",
                                 "actor": "compliance:1"}
    assert tell.once_from_form(FormData([("told", "x")]), "compliance:1") is None
    assert "once" not in tell.body.model_fields  # type: ignore[union-attr]


def test_a_blank_or_short_field_is_named():
    with pytest.raises(ValidationError) as blank:
        STAFF_ACTIONS["extend"].body_from_form(FormData([("reason", "   ")]))
    assert blank.value.errors()[0]["loc"] == ("reason",) and blank.value.errors()[0]["type"] == "missing"
    with pytest.raises(ValidationError) as short:
        STAFF_ACTIONS["resolve-task"].body_from_form(FormData([("system", "crm"), ("note", "ok")]))
    assert short.value.errors()[0]["loc"] == ("note",)
