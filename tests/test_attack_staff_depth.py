"""A hostile member of staff, with fresh eyes, where tests/test_attack_staff.py and
tests/test_attack_staff_credentials.py do not reach: the console's own idempotency keys sent over
REST, a dismissal's reason other staff read, words of the address in a signed refusal, a resend
pressed twice, a package downloaded again (docs/security.md, "In depth: keys, texts, refusals,
resends and downloads"). The real app, PostgreSQL and Temporal."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

from tests.support import (
    assert_problem,
    console_sign_in,
    eventually,
    letters_for,
    live_view,
    staff_headers,
    unique_email,
    wait_for_letter,
)
from tests.test_mailbox_console import filed, raw_mail

MESSAGE_STATUS = "SELECT status FROM mailbox_messages WHERE id = $1"


async def test_the_consoles_own_idempotency_keys_are_refused_over_rest(http, pool, settings):
    """An agent opens a request about someone else over REST with `Idempotency-Key:
    mailbox:<id>`, the id of a subject's e-mail waiting in the Inbox (every agent reads it there).
    Before, 201: the next look at the Inbox recorded the message as converted into the agent's
    request, by the agent, and the subject's e-mail left the Inbox and its waiting alert
    unanswered. A `console:` key (the new-request form's) could likewise take a colleague's form's
    request. Now both are 422 naming the header, nothing is stored, and the message stays new."""
    sender = unique_email("squatted")
    message_id = await filed(settings, pool, raw_mail(sender, "Please erase all my data."))
    agent = await staff_headers(pool, "agent")
    for key in (f"mailbox:{message_id}", f"console:{'a' * 32}"):
        answer = await http.post("/v1/requests", headers={**agent, "Idempotency-Key": key}, json={
            "type": "access", "subject": {"email": unique_email("decoy")}, "identity_attested": True})
        body = assert_problem(answer, 422)
        assert [e["field"] for e in body["errors"]] == ["Idempotency-Key"], body
        assert body["errors"][0]["message"].startswith("must not start with 'mailbox:' or 'console:': "), body
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE idempotency_key LIKE $1",
                               f"%{message_id}") == 0
    await console_sign_in(http, pool, "agent")
    assert (await http.get("/console/inbox")).status_code == 200
    assert await pool.fetchval(MESSAGE_STATUS, message_id) == "new"


async def test_a_dismissal_reason_other_staff_read_is_refused_with_reordering_marks(http, pool, settings):
    """An agent dismisses a subject's e-mail as no request with a reason holding a right-to-left
    override: every member of staff reads the reason on the message's page, reordered ("... od
    ton" as "do not ..."). Before, taken (only control characters were refused there); now 422
    naming the reason, the message still new, as a note or a hold's reason is."""
    message_id = await filed(settings, pool, raw_mail(unique_email("dismissed"), "Delete my account."))
    csrf = await console_sign_in(http, pool, "agent")
    answer = await http.post(f"/console/inbox/{message_id}/dismiss", data={
        "csrf_token": csrf, "reason": "Advertising \u202etseuqer a ton"})
    assert answer.status_code == 422 and 'id="reason-error"' in answer.text, answer.text
    assert "marks that reorder text" in answer.text
    assert await pool.fetchval(MESSAGE_STATUS, message_id) == "new"


async def test_a_deferred_erasure_refusal_carries_no_words_from_the_address(http, pool):
    """A compliance officer posts a deferred erasure's form for a "system" of their own words
    ("Session expired - sign in again at evil.example"). The refusal comes back in the address,
    signed (api/console/refusals.py), so that no one else's link can put words in the console's
    alert box; but the system came from the address, and the signed link showed the words on any
    request page with a deferred-erasure panel, to whoever followed it (an admin). Now a system
    the policy does not name is "this system"."""
    opened = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": unique_email("deferred-bait")}, "identity_attested": True})
    rid = opened.json()["id"]
    csrf = await console_sign_in(http, pool, "compliance")
    bait = "Session expired - sign in again at evil.example"
    for form in ({"csrf_token": csrf}, {"csrf_token": csrf, "attempt": "1", "state": "failed"}):
        answer = await http.post(f"/console/requests/{rid}/deferred/{quote(bait, safe='')}/retry", data=form)
        assert answer.status_code == 303, answer.text
        shown = parse_qs(urlsplit(answer.headers["location"]).query)
        assert shown["deferred_error_sig"], shown
        assert "evil.example" not in shown["deferred_error"][0] and "this system" in shown["deferred_error"][0]


async def test_a_resend_pressed_again_sends_no_second_code(http, pool, mail_sink):
    """An agent's "Send a new code" form posted twice (a double press without JavaScript, or the
    page left open while a colleague sent one): each sent a code, and the one the subject had
    just received stopped working. The form now names the round of codes its page showed, and
    a code sent since is answered 409 with why, nothing sent; the first press sends one."""
    agent = await staff_headers(pool, "agent")
    rid = (await http.post("/v1/requests", headers=agent, json={
        "type": "access", "subject": {"email": unique_email("resent-twice")}})).json()["id"]
    await wait_for_letter(mail_sink, rid, "verification")
    shown = (await live_view(http, agent, rid, until=lambda v: (v.get("verification") or {}).get("round")))
    csrf = await console_sign_in(http, pool, "agent")
    page = ""
    for _ in range(10):  # the live part shows the round once the workflow answered (2 s on a loaded machine)
        if 'name="round"' in (page := (await http.get(f"/console/requests/{rid}")).text):
            break
    assert re.search(rf'name="round" value="{shown["verification"]["round"]}"', page), page
    form = {"csrf_token": csrf, "round": str(shown["verification"]["round"])}

    first = await http.post(f"/console/requests/{rid}/resend-verification", data=form)
    assert first.status_code == 303, first.text
    again = await http.post(f"/console/requests/{rid}/resend-verification", data=form)

    assert again.status_code == 409 and "no other was sent" in again.text, again.text
    async def the_new_code_went() -> bool:
        return len(letters_for(mail_sink, rid, "verification")) >= 2
    await eventually(the_new_code_went, timeout=30)
    assert len(letters_for(mail_sink, rid, "verification")) == 2


async def test_every_download_of_a_subjects_package_is_on_record(http, pool, mail_sink):
    """A compliance officer downloads a subject's package for review, then again (months later,
    the request long answered): only the first was recorded, the audit event's key being one per
    member of staff and package, so a copy of the subject's data taken later left no trace though
    the endpoint said each download is audited. Now each is its own `package.reviewed`."""
    rid = (await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": unique_email("downloaded")}, "identity_attested": True})).json()["id"]
    await wait_for_letter(mail_sink, rid, "response", timeout=60)  # the package is built and sent
    compliance = await staff_headers(pool, "compliance")
    for _ in range(2):
        review = await http.get(f"/v1/requests/{rid}/package", headers=compliance)
        assert review.status_code == 200 and review.headers["content-type"] == "application/zip", review.text
    reviewed = await pool.fetch("SELECT actor FROM audit_events WHERE request_id = $1::uuid "
                                "AND event_type = 'package.reviewed'", rid)
    assert len(reviewed) == 2 and reviewed[0]["actor"] == reviewed[1]["actor"], reviewed
