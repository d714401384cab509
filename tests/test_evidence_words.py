"""The words the evidence pack and the console's timeline share for the trail's codes
(api/read_models/event_words.py), and the pack's times: one describer for both places, so the
pack a DPO hands over reads as the console does, and times in the controller's timezone, named,
since its deadline days are counted there."""

from __future__ import annotations

from datetime import UTC, datetime

from api import pages
from api.console import view
from api.read_models import event_lines, event_words
from api.read_models.evidence_deadlines import controller_time


def test_the_console_and_the_pack_describe_events_with_one_helper():
    assert view.describe_event is event_lines.describe_event


def test_codes_read_as_words():
    describe = event_lines.describe_event
    assert describe({"event_type": "status.denied", "data": {"reason_code": "manifestly_unfounded"}}) == \
        "Status: denied (manifestly unfounded)"
    assert describe({"event_type": "verification.succeeded", "data": {"method": "email_link"}}) == \
        "Identity verified (one-time link from the e-mail to the subject)"
    assert describe({"event_type": "status.closed_unverified", "data": {}}) == \
        "Status: closed unverified (identity never confirmed)"
    assert describe({"event_type": "deadline.extended", "data": {"from": "2027-01-04", "to": "2027-03-04",
                                                                 "reason": "Six systems"}}) == \
        "Deadline extended (4 January 2027 → 4 March 2027: Six systems)"
    assert event_words.ground_words("excessive", "gdpr") == "manifestly excessive (repetitive) (Art. 12(5) GDPR)"
    assert event_words.ground_words("excessive", "ccpa") == "manifestly excessive (repetitive)"


def test_times_are_the_controllers_with_the_zone_named():
    late_evening_utc = datetime(2027, 1, 4, 23, 30, tzinfo=UTC)
    assert controller_time(late_evening_utc, "Europe/Brussels", "en") == "5 January 2027, 00:30 CET (UTC+1)"
    assert controller_time(datetime(2027, 7, 1, 8, 5, 9, tzinfo=UTC), "Europe/Brussels", "nl", seconds=True) == \
        "1 juli 2027, 10:05:09 CEST (UTC+2)"


def test_the_console_writes_times_with_the_packs_helper():
    assert pages.controller_time is controller_time


def test_a_failed_step_a_hold_and_a_country_read_as_words():
    assert event_words.step_words("send_letter", "response letter") == "sending the response letter"
    assert event_words.step_words("send_letter", "extension letter") == "sending the extension notice"
    assert event_words.step_words("transition", "status denied record") == "recording the status “denied”"
    assert event_words.step_words("send_letter") == "sending a letter"
    assert event_words.step_words("some_new_step") == "some new step"
    assert event_words.hold_words("legal_claims") == "legal-claims hold"
    assert event_words.country_words("BE") == "Belgium" and event_words.country_words("BE", "nl") == "België"


def test_the_timeline_names_systems_by_their_labels():
    """Task and deferred-erasure lines named systems by the policy's id ("email_marketing task needs
    attention"); with the plan's labels they read as the Systems table does."""
    labels = {"email_marketing": "E-mail marketing (newsletters)"}
    attention = {"event_type": "task.needs_attention", "data": {"system": "email_marketing"}}
    assert event_lines.describe_event(attention, {}, labels) == "E-mail marketing (newsletters) task needs attention"
    resolved = {"event_type": "task.resolved", "data": {"system": "email_marketing"}}
    assert event_lines.describe_event(resolved, {}, labels) == "Task resolved by staff (E-mail marketing (newsletters))"
    retried = {"event_type": "erasure.deferred_retried", "data": {"system": "email_marketing"}}
    assert "(E-mail marketing (newsletters))" in event_lines.describe_event(retried, {}, labels)
    # A system the plan does not name keeps its id.
    assert event_lines.describe_event({"event_type": "task.done", "data": {"system": "crm"}}, {}, labels) == \
        "crm task done"


def test_a_lock_says_the_link_still_works_and_a_confirmation_after_it_says_so():
    """Since a lock refuses typed codes only (workflows/verification.py LINK_OUTLIVES_LOCK), the
    timeline said "locked" then "verified" with nothing to say how; a lock from before still reads
    as it did."""
    describe = event_lines.describe_event
    assert describe({"event_type": "verification.locked", "data": {"refuses": "codes"}}) == (
        "Verification locked after too many wrong codes (typed codes locked until a new code is sent; the link in "
        "the subject's latest e-mail still confirms)")
    assert describe({"event_type": "verification.locked", "data": {}}) == \
        "Verification locked after too many wrong codes"
    assert describe({"event_type": "verification.succeeded", "data": {"method": "email_link", "after_lock": True}}) == \
        "Identity verified (one-time link from the e-mail to the subject, after the typed codes were locked)"
