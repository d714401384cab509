"""A fresh attacker's pass on the subject portal and the staff console (2026-12-06), where the other
attack tests (tests/test_attack_*.py, test_hostile_forms.py, test_redteam_*.py) do not reach
(docs/security.md, "A fresh pass: appeals, forged withdrawals, expired assignees"). The real app
in-process over ASGI, PostgreSQL and Temporal; no worker: every attack is answered before a
workflow would run."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

import httpx

from activities.mailbox_intake import file_message
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import short_reference
from dsrflow.stores.staff_tokens import create_token
from policy.mailbox import load_mailbox_policy
from policy.model import DEFAULT_POLICY
from tests.ratelimit_support import app_clients, stored_for, unique_ip
from tests.refused_requests import appeals_held, stored_refusal
from tests.support import (
    CSRF_FIELD,
    OUR_SENDER,
    console_sign_in,
    letters_for,
    live_view,
    served,
    staff_headers,
    stored_request,
    unique_email,
    verification_code,
    wait_for_letter,
)
from tests.test_mailbox_console import raw_mail


async def test_an_appeal_asks_for_what_the_refused_request_asked_and_nothing_else(settings, pool, dev_server,
                                                                                  task_queue):
    """A subject whose correction of their phone number we refused appealed it, over the API (or
    the portal's form with a field added), asking to correct something else: only the appeal's
    type was compared with the refused request's, so it was opened as that refusal's appeal, on
    an appeal's deadline, its page, letters and evidence saying we reconsidered the refusal while
    what compliance approved was another correction. So could an objection appeal with another
    scope, a restriction with other grounds, and staff open such an appeal. Now an appeal asks for
    what the refused request asked (a restriction's grounds in any order): otherwise it is refused,
    in the public's same words as any appeal that cannot be opened, naming the detail to staff, and
    nothing is stored."""
    full = settings.model_copy(update={"policy_path": DEFAULT_POLICY})
    email = unique_email("appeal-asks")
    phone = await stored_refusal(pool, full, email, "uk_gdpr", type="rectification", corrections={"phone": "+44 20 7946 0000"})
    scope = await stored_refusal(pool, full, email, "vcdpa", type="objection", objection_scope="profiling")
    grounds = await stored_refusal(pool, full, email, "uk_gdpr", type="restriction",
                             restriction_grounds=["accuracy_contested", "objection_pending"])
    async with app_clients(full, dev_server.client, task_queue) as call_from:
        subject = call_from(unique_ip())
        for body in (
            {"type": "rectification", "appeal_of": short_reference(phone), "corrections": {"last_name": "Mallory"}},
            {"type": "rectification", "appeal_of": phone, "corrections": {"phone": "+44 20 7946 0001"}},
            {"type": "objection", "appeal_of": short_reference(scope), "objection_scope": "direct_marketing"},
            {"type": "restriction", "appeal_of": short_reference(grounds), "restriction_grounds": ["unlawful_processing"]},
        ):
            r = await subject.post("/v1/public/requests", json={**body, "email": email})
            assert r.status_code == 422, r.text
            assert r.json()["errors"] == [{"field": "appeal_of", "message": (
                f"no request {body['appeal_of']} of this data subject that can be appealed: an appeal (or, under UK "
                "data protection law, a complaint to us) names a request of yours that we refused, in whole or in "
                "part, under a law that grants one (VCDPA, CTDPA, CPA; UK GDPR, Data Protection Act 2018 s. 164A), "
                "and asks for the same as that request")}]
        # The portal's request form, with the field its complaint form's link would carry added.
        r = await subject.post("/portal/requests", data={
            "type": "restriction", "email": email, "appeal_of": short_reference(grounds),
            "restriction_grounds": "unlawful_processing"})
        assert r.status_code == 422 and "We cannot open this appeal" in r.text, r.text
        agent = await staff_headers(pool, "agent")
        r = await subject.post("/v1/requests", headers=agent, json={
            "type": "objection", "subject": {"email": email}, "appeal_of": scope, "objection_scope": "legitimate_interest"})
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "objection_scope", "message": (
            "an appeal asks for what the request it is about asked: the same objection scope")}]
        assert await stored_for(pool, email) == 3

        # What the refused requests asked, the grounds in another order: opened as their appeals.
        for body in (
            {"type": "rectification", "appeal_of": short_reference(phone), "corrections": {"phone": "+44 20 7946 0000"}},
            {"type": "restriction", "appeal_of": short_reference(grounds),
             "restriction_grounds": ["objection_pending", "accuracy_contested"]},
        ):
            r = await subject.post("/v1/public/requests", json={**body, "email": email})
            assert r.status_code == 202, r.text
        r = await subject.post("/v1/requests", headers=agent, json={
            "type": "objection", "subject": {"email": email}, "appeal_of": scope, "objection_scope": "profiling"})
        assert r.status_code == 201, r.text
    appeals = await pool.fetch("SELECT details FROM dsr_requests WHERE subject_email = $1 AND details ? 'appeal_of'",
                               email)
    assert sorted(row["details"]["appeal_of"] for row in appeals) == sorted((phone, scope, grounds))


# What a browser's URL parser drops or reads as a slash (a tab, a line break, a backslash, each
# percent-encoded too) between the leading slash and a host: each would make a path another host.
SLIPPED_HOSTS = ("/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "/%09/evil.example",
                 "/%5C/evil.example", "/%2F/evil.example", "/%2F%2Fevil.example", "/.//evil.example")


async def test_a_sign_in_link_leads_only_to_a_page_of_the_console(app_http, pool):
    """A phishing link to our sign-in page whose `next` hides another host where a browser would
    find one: after a real sign-in, and for a browser already signed in, the redirect stays on this
    site, whatever the browser's parser makes of it."""
    token = await create_token(pool, "agent", "fresh pass next")
    for hostile in SLIPPED_HOSTS:
        app_http.cookies.clear()
        page = await app_http.get("/console/sign-in", params={"next": hostile})
        signed = await app_http.post("/console/sign-in", data={
            "token": token, "next": hostile, "csrf_token": CSRF_FIELD.search(page.text).group(1)})
        assert signed.status_code == 303, signed.text
        again = await app_http.get("/console/sign-in", params={"next": hostile})  # already signed in
        for location in (signed.headers["location"], again.headers["location"]):
            assert not set(location) & set("\t\r\n\\"), (hostile, location)
            assert httpx.URL("http://dsrflow.test/").join(location).host == "dsrflow.test", (hostile, location)


async def test_a_message_whose_sender_no_server_vouched_for_says_so_wherever_it_is_read(app_http, pool, settings):
    """A stranger mails the privacy address as a subject ("From: <their address>"), asking to
    withdraw their request, without its reference: nothing threads it, and an agent attaches it to
    the subject's request and records the withdrawal, which any agent may. Only a reply that would
    have threaded said that no receiving server vouched for its sender: this message read as the
    subject's on its page and in the request's evidence pack. Now every message read over IMAP
    whose sender no server the mailbox policy names vouched for says so; one vouched for, or one
    to the embedded stack's own mailbox (loopback, believed), does not."""
    victim = unique_email("withdraw-victim")
    request_id = await stored_request(pool, settings, "withdraw-victim", email=victim)
    rules = load_mailbox_policy().model_copy(update={"authenticated_by": frozenset({"mx.controller.example"})})
    vouching = f"Authentication-Results: mx.controller.example; dmarc=pass header.from={victim.split('@')[1]}\r\n"

    async def file(raw: bytes, source: str = "imap") -> str:
        done = await file_message(pool, load_secret_key(settings), rules, raw, arrived_at=datetime.now(UTC),
                                  source=source, our_sender=OUR_SENDER)
        assert done is not None and done.request_id is None
        return done.message_id

    withdrawal = "Please withdraw my request: I changed my mind."
    forged = await file(raw_mail(victim, withdrawal))
    vouched = await file(vouching.encode() + raw_mail(victim, withdrawal))
    loopback = await file(raw_mail(victim, withdrawal), source="sink")
    csrf = await console_sign_in(app_http, pool, "agent")
    for message, warned in ((forged, True), (vouched, False), (loopback, False)):
        page = html.unescape((await app_http.get(f"/console/inbox/{message}")).text)
        assert withdrawal in page and ("anyone can write a From header" in page) == warned, message

    attached = await app_http.post(f"/console/inbox/{forged}/attach", data={"csrf_token": csrf, "request_id": request_id})
    assert attached.status_code == 303, attached.text
    app_http.cookies.clear()
    pack = (await app_http.get(f"/v1/requests/{request_id}/evidence",
                               headers=await staff_headers(pool, "compliance"))).json()
    [email] = pack["emails"]
    assert any("anyone can write a From header" in note for note in email["notes"]), email


async def test_no_request_is_handed_to_a_token_past_its_expiry(app_http, pool, settings):
    """Tokens expire, but the console's lists of colleagues (the request page's Assign, the queue's
    filter) offered every token not revoked, and an assignment took one past its expiry: an agent
    handed a request (over the console or REST) to a colleague who could no longer sign in, where
    it sat out of the unassigned queue with nobody to answer it. Now only a token in force is
    offered or taken; a colleague's token expiring later still is."""
    request_id = await stored_request(pool, settings, "handed-to-expired")
    await create_token(pool, "agent", label := f"Gone {request_id[:8]}", lifetime=timedelta(days=1))
    await create_token(pool, "agent", later := f"Here {request_id[:8]}", lifetime=timedelta(days=1))
    gone, here = [str(await pool.fetchval("SELECT id FROM staff_tokens WHERE label = $1", name)) for name in (label, later)]
    await pool.execute("UPDATE staff_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1::uuid", gone)

    refused = await app_http.put(f"/v1/requests/{request_id}/assignee", json={"assignee": gone},
                                 headers=await staff_headers(pool, "agent"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"field": "assignee", "message": "that colleague's token is unknown, revoked "
                                                                           "or expired"}]
    csrf = await console_sign_in(app_http, pool, "agent")
    posted = await app_http.post(f"/console/requests/{request_id}/assignment", data={"csrf_token": csrf, "assignee": gone})
    assert posted.status_code == 303 and "unknown, revoked or expired" in unquote_plus(posted.headers["location"])
    assert await pool.fetchval("SELECT count(*) FROM request_assignments WHERE request_id = $1::uuid", request_id) == 0
    queue = (await app_http.get("/console/")).text
    assert f'value="{here}"' in queue and f'value="{gone}"' not in queue

    handed = await app_http.post(f"/console/requests/{request_id}/assignment", data={"csrf_token": csrf, "assignee": here})
    assert handed.status_code == 303 and "team_error" not in handed.headers["location"]
    assert str(await pool.fetchval("SELECT assignee FROM request_assignments WHERE request_id = $1::uuid",
                                   request_id)) == here


async def test_an_appeal_waits_for_compliance_to_reconsider_the_refusal(settings, lifecycle_policy, pool, dev_server,
                                                                        mail_sink, task_queue, tmp_path):
    """Compliance refused an erasure (the records are needed for a pending claim); the subject
    appealed, confirmed by code, and the appeal, a request like any other, carried the erasure out
    at once: nobody reconsidered the refusal, it was simply undone (the policy held attested
    erasures, not the subject's). Now an appeal, or a complaint to us, waits for compliance
    (`approval_required_for: appeal`, on by default and in the shipped policy), who approve it or
    refuse it again; the subject's page says we are checking it."""
    gated = appeals_held(settings, lifecycle_policy, tmp_path)
    email = unique_email("appeal-held")
    refused = await stored_refusal(pool, gated, email, "vcdpa", type="erasure")
    async with served(gated, pool, dev_server.client, task_queue) as http:
        r = await http.post("/v1/public/requests", json={"type": "erasure", "email": email,
                                                         "appeal_of": short_reference(refused)})
        assert r.status_code == 202, r.text
        appeal = r.json()["id"]
        code = verification_code(await wait_for_letter(mail_sink, appeal, "verification"))
        verified = await http.post(f"/v1/public/requests/{appeal}/verify", json={"code": code})
        assert verified.status_code == 200, verified.text

        compliance = await staff_headers(pool, "compliance")
        # Verified, the status moves on just after the answer (an owed step): past both.
        view = await live_view(http, compliance, appeal,
                               lambda v: v["status"] not in ("awaiting_verification", "in_progress"), timeout=20)
        assert (view["status"], view["approval_required"]) == ("awaiting_approval", True), view["status"]
        await wait_for_letter(mail_sink, appeal, "staff_alert")
        assert letters_for(mail_sink, appeal, "response") == []
        page = await http.get(f"/portal/requests/{appeal}")
        assert "Our privacy team is checking your request before we act on it or send our answer." in page.text
        assert (await http.post(f"/v1/requests/{appeal}/approve", headers=await staff_headers(pool, "agent"))
                ).status_code == 403

        denied = await http.post(f"/v1/requests/{appeal}/deny", headers=compliance, json={
            "reason_code": "other", "explanation": "The claim is still pending; the records stay until it ends."})
        assert denied.status_code == 200, denied.text
        await wait_for_letter(mail_sink, appeal, "denial")
        assert letters_for(mail_sink, appeal, "response") == []
