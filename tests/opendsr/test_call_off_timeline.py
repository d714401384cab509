"""The console's timeline of a closed request's call-off, as compliance reads it on the request
page: a processor that carried out its job after cancelling it (the call-off's retry finds it
`completed`: tests/opendsr/test_call_off_acted_after.py runs the same path), in-process, the app
without a worker of its own (`app_http`), one request stored as intake stores it.

Before, the staff alert it sent read "Letter sent (alert to staff)", whichever alert it was, and the
call-off's own events (recorded with actor "system") read "by system", a word that names no one and
reads like one of the request's systems."""

from __future__ import annotations

from activities.staff_alert_words import FACTS, alert_about
from api.read_models.actors import actor_name
from api.read_models.event_words import _ALERT_WORDS, alert_words
from tests.evidence_pages import readable
from tests.opendsr.test_call_off_acted_after import _refused
from tests.opendsr.test_call_off_forged import KEY, _accepted, _called_off, _processor
from tests.support import console_sign_in, stored_request
from workers.dsr_worker import activity_context

# The test processor is not among the stored request's policy's systems: named by its id, as the
# page's other lines name it.
_ALERT_LINE = "Letter sent (alert to staff about email_marketing: a processor carried out a job after cancelling it)"


async def test_the_timeline_says_what_the_alert_was_about_and_the_call_off_is_the_workflows(
        app_http, pool, settings, mail_sink):
    rid = await stored_request(pool, settings, "call-off-timeline", type_="erasure")
    context = activity_context(settings, pool)
    await _called_off(_processor(lambda job: _accepted(job, KEY), "pending", status_key=KEY),
                      context=context, request_id=rid)
    await _called_off(_processor(_refused, "completed", status_key=KEY), context=context, request_id=rid)
    # What is stored stays as recorded: the call-off's actor, the alert's kind and system (no subject).
    assert set(await pool.fetch("SELECT DISTINCT actor FROM audit_events WHERE request_id = $1::uuid AND "
                                "event_type LIKE 'processor.%'", rid)) == {("system",)}
    sent = await pool.fetchval("SELECT data->>'about' || ' ' || (data->>'about_system') FROM audit_events "
                               "WHERE request_id = $1::uuid AND event_type = 'letter.sent'", rid)
    assert sent == "acted_after_call_off email_marketing"
    await console_sign_in(app_http, pool, "compliance")
    page = readable((await app_http.get(f"/console/requests/{rid}")).text)
    timeline = page.split("Timeline", 1)[1]
    assert _ALERT_LINE in timeline, timeline
    assert "Processor carried out a job after cancelling it at the call-off" in timeline, timeline
    assert "by system" not in timeline, timeline


def test_every_alert_kind_has_its_words_and_an_older_alert_reads_as_before():
    assert set(_ALERT_WORDS) == set(FACTS)
    assert alert_about({"facts": {"what": "task_stuck", "system": "crm", "message": "jane@example.org"}}) == {
        "about": "task_stuck", "about_system": "crm"}
    assert alert_about({"detail": "An older workflow's sentence"}) == {}
    assert alert_words({"purpose": "staff_alert", "about": "deadline"}) == (
        "alert to staff: the request's deadline is near or past")
    assert alert_words({"purpose": "staff_alert"}) is None and alert_words({"purpose": "response"}) is None
    assert actor_name("system", {}) == "workflow" and actor_name("erasure-sweep", {}) == "erasure-sweep"
