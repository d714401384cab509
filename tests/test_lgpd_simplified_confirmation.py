"""LGPD Art. 19, I: an access request may ask for the simplified confirmation "imediatamente"
besides the complete statement of Art. 19, II within 15 days. Asked for at intake
(`simplified_confirmation`), it is a letter sent as soon as the subject's identity is verified,
saying whether we process personal data about them as far as our own systems tell at once
(activities/letter_confirmation.py); the response still follows by the due date. Refused under any
other law, request type, on an appeal, and on the subject's own form (a GDPR request)."""

from __future__ import annotations

import uuid

import pytest

from api.read_models.event_words import purpose_words, step_words
from dsrflow.i18n import long_date
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.process_support import died, worker_to_kill
from tests.support import (
    api_client,
    assert_problem,
    console_new_request,
    letters_for,
    staff_headers,
    text_of,
    unique_email,
    verification_code,
    wait_for_letter,
)
from workers.dsr_worker import build_worker

PURPOSE = "simplified_confirmation"


def _said(message) -> str:
    return " ".join(text_of(message).split())


@pytest.mark.parametrize(("body", "why"), [
    ({"type": "access", "regime": "gdpr"}, "another law"),
    ({"type": "erasure", "regime": "lgpd"}, "another request type"),
    ({"type": "access", "regime": "lgpd", "appeal_of": "9WPSS9NUBP"}, "an appeal"),
])
async def test_staff_intake_refuses_it_but_on_an_lgpd_access_request(http, pool, body, why):
    email = unique_email("refused")
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                        json={**body, "subject": {"email": email}, "simplified_confirmation": True})
    problem = assert_problem(r, 422)
    assert [e["field"] for e in problem["errors"]] == ["simplified_confirmation"], (why, problem)
    assert "only applies to an access request under the LGPD" in problem["detail"]
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0


async def test_the_consoles_form_offers_it_and_refuses_it_as_the_api_does(http, pool):
    email = unique_email("console")
    refused = await console_new_request(http, pool, "agent", type="access", email=email, regime="gdpr",
                                        simplified_confirmation="true")
    assert refused.status_code == 422 and 'id="simplified_confirmation-error"' in refused.text
    assert "only applies to an access request under the LGPD" in refused.text
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0
    opened = await console_new_request(http, pool, "agent", type="access", email=email, regime="lgpd",
                                       simplified_confirmation="true")
    assert opened.status_code == 303, opened.text
    assert await pool.fetchval("SELECT details FROM dsr_requests WHERE subject_email = $1", email) == {
        "simplified_confirmation": True}


async def test_the_subjects_own_form_refuses_it(http, pool):
    """A request made on the portal or the public API is under the GDPR (api/public/intake.py)."""
    email = unique_email("public")
    r = await http.post("/v1/public/requests", json={"type": "access", "email": email, "country": "BR",
                                                     "simplified_confirmation": True})
    problem = assert_problem(r, 422)
    assert [e["field"] for e in problem["errors"]] == ["simplified_confirmation"]
    assert "a request made here is under the GDPR" in problem["detail"]
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0


async def test_it_goes_once_the_identity_is_verified_and_the_response_still_by_the_due_date(http, pool, mail_sink):
    """Asked for: the confirmation goes right after the verification, before the systems are
    planned, and names the due date of the response that follows. Not asked for: none goes."""
    headers = await staff_headers(pool, "agent")
    asked, unasked = [(await http.post("/v1/requests", headers=headers, json={
        "type": "access", "regime": "lgpd", "subject": {"email": unique_email("lgpd")}, **option})).json()
        for option in ({"simplified_confirmation": True}, {})]
    assert asked["details"] == {"simplified_confirmation": True}, asked
    for request in (asked, unasked):
        code = verification_code(await wait_for_letter(mail_sink, request["id"], "verification"))
        assert letters_for(mail_sink, request["id"], PURPOSE) == []  # nothing before the identity is known
        r = await http.post(f"/v1/public/requests/{request['id']}/verify", json={"code": code})
        assert r.status_code == 200, r.text
    for request in (asked, unasked):
        await wait_for_letter(mail_sink, request["id"], "response")
    (letter,) = letters_for(mail_sink, asked["id"], PURPOSE)
    said = _said(letter)
    # This stack's policy has no systems: nothing of ours holds data, and nobody else is asked.
    assert "We do not process personal data about you: none of our systems holds any data about you." in said
    due = long_date(await pool.fetchval("SELECT due_date FROM dsr_requests WHERE id = $1", uuid.UUID(asked["id"])),
                    "en")
    assert f"By {due} at the latest we will send you our complete answer under Article 19, II" in said
    assert letters_for(mail_sink, unasked["id"], PURPOSE) == []
    trail = [(r["event_type"], (r["data"] or {}).get("purpose")) for r in await pool.fetch(
        "SELECT event_type, data FROM audit_events WHERE request_id = $1 ORDER BY seq", uuid.UUID(asked["id"]))]
    order = [trail.index(step) for step in (("verification.succeeded", None), ("letter.sent", PURPOSE),
                                            ("plan.created", None), ("letter.sent", "response"))]
    assert order == sorted(order), trail
    # The timeline's and a failed step's words (api/read_models/event_words.py).
    assert purpose_words(PURPOSE).startswith("simplified confirmation of whether we process")
    assert step_words("confirm_at_once").startswith("reading our own systems")


async def test_it_says_what_our_own_systems_found_and_that_processors_are_still_asked(
        postgres, settings, dev_server, pool, mail_sink, tmp_path):
    """On the demo systems: Ada is in the CRM, so we confirm; someone our databases do not know
    is told so, and that the e-mail marketing processor is still being asked: never a plain no."""
    client = dev_server.client
    async with fanout_stack(postgres, settings, client, tmp_path) as stack, api(stack) as http, \
            build_worker(client, stack.settings, pool):
        headers = await staff_headers(pool, "agent")
        ids = {}
        for who, email in (("known", "ada@example.com"), ("unknown", unique_email("nobody"))):
            r = await http.post("/v1/requests", headers=headers, json={
                "type": "access", "regime": "lgpd", "subject": {"email": email}, "identity_attested": True,
                "simplified_confirmation": True})
            assert r.status_code == 201, r.text
            ids[who] = r.json()["id"]
        for rid in ids.values():
            await wait_for_letter(mail_sink, rid, "response", timeout=60)
    known, unknown = (_said(letters_for(mail_sink, ids[who], PURPOSE)[0]) for who in ("known", "unknown"))
    assert "We confirm that we process personal data about you: our own systems hold data about you." in known
    assert "Our own systems hold no personal data about you. We are still asking the processors that handle " \
           "personal data on our behalf; their answers come later. Until then, we cannot tell you for certain " \
           "that we process no personal data about you." in unknown
    assert "We do not process" not in unknown


async def test_a_worker_killed_after_the_relay_accepted_it_sends_it_once(settings, dev_server, pool, mail_sink,
                                                                        tmp_path):
    """The outbox's guarantee holds for this letter too: the next worker records it as sent
    (`mail.unconfirmed`), sends no second copy, and the request goes on to its response."""
    client = dev_server.client
    own = settings.model_copy(update={"task_queue": f"confirm-{uuid.uuid4().hex[:6]}"})
    async with worker_to_kill(own, client, tmp_path, failpoints=f"mail-accepted~:{PURPOSE}:") as worker:
        async with api_client(own, client, own.task_queue) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                "type": "access", "regime": "lgpd", "subject": {"email": unique_email("crash")},
                "identity_attested": True, "simplified_confirmation": True})
            rid = r.json()["id"]
        await died(worker, tmp_path)
    async with build_worker(client, own, pool, task_queue=own.task_queue):
        await wait_for_letter(mail_sink, rid, "response")
        await client.get_workflow_handle(workflow_id_for(rid)).result()
    assert len(letters_for(mail_sink, rid, PURPOSE)) == 1
    assert await pool.fetchval("SELECT count(*) FROM sent_letters WHERE request_id = $1 AND purpose = $2",
                               uuid.UUID(rid), PURPOSE) == 1
    events = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM audit_events WHERE request_id = $1 ORDER BY seq", uuid.UUID(rid))]
    assert events.count("mail.unconfirmed") == 1 and "mail.resent" not in events
