"""An appeal (or a UK complaint to us) asks for what the request it names asked
(dsrflow/domain/appeals.py `ASKED`): staff opening one from the console's New request form, the
Inbox's or POST /v1/requests leave its corrections, restriction grounds and objection scope out, and the
appeal takes them from the refused request; given, they must be the same. The real app in-process
over ASGI, PostgreSQL and Temporal; no worker: what is checked is what is stored."""

from __future__ import annotations

import html
import re

from dsrflow.domain.references import short_reference
from policy.model import DEFAULT_POLICY
from tests.ratelimit_support import app_clients, stored_for, unique_ip
from tests.refused_requests import stored_refusal
from tests.support import console_new_request, console_sign_in, staff_headers, unique_email
from tests.test_mailbox_console import filed, raw_mail

CORRECTIONS = {"phone": "+44 20 7946 0000", "last_name": "Lovelace"}


async def _details(pool, request_id: str) -> dict:
    return await pool.fetchval("SELECT details FROM dsr_requests WHERE id = $1::uuid", request_id)


async def test_staff_open_an_appeal_without_retyping_what_the_refused_request_asked(settings, pool, dev_server,
                                                                                    task_queue):
    """A subject complains that we refused to correct their phone and name; the agent opens the
    complaint from the console's New request form with the refused request's reference, typing no
    correction, then from the subject's reply in the Inbox. Before, the form answered "rectification needs at least one correction" (and the
    API 422 the same), so staff retyped the corrections exactly or the complaint was refused. Now
    the complaint carries the refused request's corrections, on its page and as stored, as does
    one opened over the API without a restriction's grounds; a correction given that differs is
    still refused, naming it, and nothing is stored."""
    full = settings.model_copy(update={"policy_path": DEFAULT_POLICY})
    email = unique_email("appeal-takes")
    rectification = await stored_refusal(pool, full, email, "uk_gdpr", type="rectification", corrections=CORRECTIONS)
    grounds = ["objection_pending", "accuracy_contested"]
    restriction = await stored_refusal(pool, full, email, "uk_gdpr", type="restriction", restriction_grounds=grounds)
    async with app_clients(full, dev_server.client, task_queue) as call_from:
        http = call_from(unique_ip())
        form = await console_new_request(http, pool, "agent", type="rectification", email=email,
                                         appeal_of=short_reference(rectification))
        assert form.status_code == 303, form.text
        complaint = form.headers["location"].rsplit("/", 1)[1]
        assert await _details(pool, complaint) == {"appeal_of": rectification, "corrections": CORRECTIONS}
        page = html.unescape((await http.get(f"/console/requests/{complaint}")).text)
        assert "phone → “+44 20 7946 0000”" in page and "last_name → “Lovelace”" in page
        # The same from the Inbox: the subject's reply, converted with its type and reference alone.
        message_id = await filed(full, pool, raw_mail(email, f"I complain about {short_reference(rectification)}."))
        csrf = await console_sign_in(http, pool, "agent")
        converted = await http.post(f"/console/inbox/{message_id}/convert", data={
            "csrf_token": csrf, "type": "rectification", "email": email, "appeal_of": short_reference(rectification)})
        assert converted.status_code == 303, converted.text
        assert await _details(pool, converted.headers["location"].rsplit("/", 1)[1]) == {
            "appeal_of": rectification, "corrections": CORRECTIONS}

        agent = await staff_headers(pool, "agent")
        r = await http.post("/v1/requests", headers=agent, json={
            "type": "restriction", "subject": {"email": email}, "appeal_of": short_reference(restriction)})
        assert r.status_code == 201, r.text
        assert await _details(pool, r.json()["id"]) == {"appeal_of": restriction, "restriction_grounds": grounds}

        r = await http.post("/v1/requests", headers=agent, json={
            "type": "rectification", "subject": {"email": email}, "appeal_of": rectification,
            "corrections": {"phone": "+44 20 7946 0001"}})
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "corrections", "message": (
            "a complaint asks for what the request it is about asked: the same corrections")}]
        assert await stored_for(pool, email) == 5

    # The policy in force takes no correction any more (here: no system at all): the complaint
    # that takes the refused request's corrections is refused as one typing them would be.
    async with app_clients(settings, dev_server.client, task_queue) as call_from:
        http = call_from(unique_ip())
        r = await http.post("/v1/requests", headers=agent, json={
            "type": "rectification", "subject": {"email": email}, "appeal_of": rectification})
        assert r.status_code == 422, r.text
        assert {e["field"] for e in r.json()["errors"]} == {"corrections.phone", "corrections.last_name"}
        # On the console's form, beside the corrections, as the form's own check says it, and in
        # the summary, leading there. Before, the summary alone said it, once per correction,
        # each linking to "#corrections.phone", which is no field.
        form = await console_new_request(http, pool, "agent", type="rectification", email=email,
                                         appeal_of=short_reference(rectification))
        assert form.status_code == 422, form.text
        beside = re.search(r'<fieldset id="corrections".*?</fieldset>', form.text, re.S).group(0)
        assert re.search(r'<p class="error" id="corrections-error">.*nothing can be corrected on request here</p>',
                         beside), beside
        summary = re.search(r'<div class="error-summary".*?</div>', form.text, re.S).group(0)
        assert re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', summary) == [
            ("#correct_name", "nothing can be corrected on request here")]
    assert await stored_for(pool, email) == 5
