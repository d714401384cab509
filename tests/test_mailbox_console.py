"""The console's Inbox over the real app, worker and Temporal: a message becomes a request whose
clock started when the e-mail reached us, is attached to one, is dismissed with a reason; replies
thread onto their request by the reference in our subject lines; every action needs the session's
CSRF token, happens once, and is audited and kept in the evidence pack."""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import httpx
import pytest

from activities.letters import message_id_for
from activities.mailbox_intake import file_message
from api.console.inbox import PAGE_SIZE
from api.read_models.cursors import encode_cursor
from devstack.processes import free_port
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.deadlines import compute_deadline, receipt_date
from dsrflow.domain.references import short_reference
from policy.mailbox import load_mailbox_policy
from tests.conftest import database_pool
from tests.process_support import answering, died, dsrflow_process
from tests.support import (
    OUR_SENDER,
    api_client,
    console_sign_in,
    live_client,
    staff_headers,
    unique_email,
    wait_for_due_date,
)


def raw_mail(sender: str, text: str, *, subject: str = "Request", date: datetime | None = None,
             in_reply_to: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "privacy@onetagger.com"
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="example.com")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    message.set_content(f"{text}\n\n{uuid.uuid4()}")
    return message.as_bytes()


async def filed(settings, pool, raw: bytes, arrived: datetime | None = None) -> str:
    result = await file_message(pool, load_secret_key(settings), load_mailbox_policy(), raw,
                                arrived_at=arrived or datetime.now(UTC), source="sink", our_sender=OUR_SENDER)
    assert result is not None
    return result.message_id


async def test_a_message_becomes_a_request_whose_clock_started_at_receipt(http, pool, settings):
    sender = unique_email("inbox")
    sent = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    message_id = await filed(settings, pool, raw_mail(sender, "Graag: verwijder mijn gegevens.", date=sent),
                             arrived=sent + timedelta(minutes=3))
    csrf = await console_sign_in(http, pool, "agent")

    inbox = await http.get("/console/inbox")
    row = inbox.text.split(f'data-message-id="{message_id}"')[1].split("</tr>")[0]
    assert sender in row and "erasure · Dutch" in row
    page = await http.get(f"/console/inbox/{message_id}")
    assert re.search(r'<input type="radio" name="type" value="erasure"[^>]* checked', page.text)
    assert '<option value="nl" selected>' in page.text
    assert 'name="complaint_reasons"' in page.text and "The reference our letters give" in page.text

    # Without the CSRF token nothing happens.
    refused = await http.post(f"/console/inbox/{message_id}/convert", data={"type": "erasure", "email": sender})
    assert refused.status_code == 403
    assert await pool.fetchval("SELECT status FROM mailbox_messages WHERE id = $1", message_id) == "new"

    form = {"csrf_token": csrf, "type": "erasure", "email": sender, "language": "nl", "regime": "gdpr"}
    # A complaint's reasons on a request that complains about none: refused in the form, naming them.
    reasons = await http.post(f"/console/inbox/{message_id}/convert", data={**form, "complaint_reasons": "Why?"})
    assert reasons.status_code == 422 and 'id="complaint_reasons-error"' in reasons.text
    assert "only applies to a complaint" in reasons.text
    done = await http.post(f"/console/inbox/{message_id}/convert", data=form)
    assert done.status_code == 303
    request_id = done.headers["location"].rsplit("/", 1)[1]
    row = await pool.fetchrow("SELECT * FROM dsr_requests WHERE id = $1", request_id)
    # The message's own Date (it reached us three minutes later), not when the agent pressed.
    assert (row["received_at"], row["channel"], row["language"], row["subject_email"]) == (sent, "email", "nl", sender)
    due = await wait_for_due_date(pool, request_id)
    assert due == compute_deadline("gdpr", receipt_date(sent, "Europe/Brussels"), establishment="BE").due_date

    again = await http.post(f"/console/inbox/{message_id}/convert", data=form)
    assert again.headers["location"] == f"/console/requests/{request_id}"
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", sender) == 1
    event = await pool.fetchrow("SELECT * FROM audit_events WHERE event_type = 'mail.converted' AND request_id = $1",
                                request_id)
    assert event["actor"].startswith("agent:") and event["data"]["message"] == message_id
    pack = (await http.get(f"/v1/requests/{request_id}/evidence", headers=await staff_headers(pool))).json()
    assert [e["id"] for e in pack["emails"]] == [message_id]
    assert "verwijder mijn gegevens" in pack["emails"][0]["text"]
    assert ("From", sender) in [tuple(h) for h in pack["emails"][0]["headers"]]

    # A reply naming the request in its subject line as our letters do (the short reference, or
    # the eight hex digits of letters sent before it), from the subject, threads onto it by itself.
    reference = short_reference(request_id)
    for written in (reference, request_id[:8]):
        reply = await filed(settings, pool, raw_mail(
            sender, "Hier is de code 123456", subject=f"Re: Gelieve uw privacyverzoek te bevestigen (ref. {written})"))
        assert await pool.fetchval("SELECT request_id FROM mailbox_messages WHERE id = $1", reply) == uuid.UUID(request_id)
    # ... and neither the reference nor a reply to one of our letters (whose Message-ID anyone who
    # knows the request's id can compute) threads a stranger's mail onto the request.
    ours = message_id_for(f"{request_id}:acknowledgement:1")
    for _ in range(100):  # the acknowledgement is on its way
        if await pool.fetchval("SELECT 1 FROM mail_outbox WHERE message_id = $1", ours):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the acknowledgement was not sent")
    for attack in (raw_mail(unique_email("other"), "hello", subject=f"Re: (ref. {reference})"),
                   raw_mail(unique_email("other"), "hello", subject="Re: your letter", in_reply_to=ours)):
        stranger = await filed(settings, pool, attack)
        assert await pool.fetchval("SELECT (status, request_id) FROM mailbox_messages WHERE id = $1",
                                   stranger) == ("new", None)
    # The subject's own reply to that letter does.
    answer = await filed(settings, pool, raw_mail(sender, "Dank u", subject="Re: your letter", in_reply_to=ours))
    assert await pool.fetchval("SELECT request_id FROM mailbox_messages WHERE id = $1", answer) == uuid.UUID(request_id)

    # Read over IMAP, the subject's address is not enough (anyone can write a From header): the
    # reply threads only when a receiving server the mailbox policy names vouched for the sender.
    rules = load_mailbox_policy().model_copy(update={"authenticated_by": frozenset({"mx.controller.example"})})
    domain = sender.rsplit("@", 1)[1]
    cases = [
        ([], None),  # a forged From, no result
        ([f"mx.attacker.example; dmarc=pass header.from={domain}"], None),  # another server's word
        ([f"mx.controller.example; dkim=pass header.d={domain}; dmarc=fail header.from={domain}"], None),
        ([f"mx.controller.example; spf=pass smtp.mailfrom={sender}; dkim=pass header.d=attacker.example"], None),
        (["mx.controller.example; dmarc=pass header.from=attacker.example"], None),
        (["mx.controller.example; this is not a result"], None),
        ([f"mx.controller.example; spf=pass smtp.mailfrom={sender}; dmarc=pass (p=reject) header.from={domain}"],
         uuid.UUID(request_id)),
        ([f"MX.Controller.example;\r\n\tdkim=pass header.i=@{domain} header.s=s1"], uuid.UUID(request_id)),
        # The server's own header says fail; a "pass" below it, in its name, came with the message.
        ([f"mx.controller.example; dmarc=fail header.from={domain}",
          f"mx.controller.example; dmarc=pass header.from={domain}"], None),
        # Nor below its real header that the parser cannot read (a HELO address literal, an
        # SMTPUTF8 sender): that header is the server's word, and it vouches for nothing.
        ([f"mx.controller.example; spf=pass smtp.helo=[203.0.113.9]; dmarc=pass header.from={domain}",
          f"mx.controller.example; dmarc=pass header.from={domain}"], None),
        (["mx.controller.example 1 (our MX); spf=pass smtp.mailfrom=ädä@exämple.com",
          f"mx.controller.example; dmarc=pass header.from={domain}"], None),
    ]
    for results, threads_onto in cases:
        raw = b"".join(f"Authentication-Results: {r}\r\n".encode() for r in results) + raw_mail(
            sender, "Dank u", subject=f"Re: Gelieve uw privacyverzoek te bevestigen (ref. {reference})")
        done = await file_message(pool, load_secret_key(settings), rules, raw, arrived_at=datetime.now(UTC), source="imap",
                                  our_sender=OUR_SENDER)
        assert done is not None and done.request_id == (str(threads_onto) if threads_onto else None), results
        assert await pool.fetchval("SELECT request_id FROM mailbox_messages WHERE id = $1",
                                   done.message_id) == threads_onto, results
        page = (await http.get(f"/console/inbox/{done.message_id}")).text
        assert ("the receiving mail server did not vouch for the sender" in page) == (threads_onto is None), results
    # The shipped policy names no server: no reply read over IMAP threads by itself.
    raw = f"Authentication-Results: mx.controller.example; dmarc=pass header.from={domain}\r\n".encode() + raw_mail(
        sender, "Dank u", subject=f"Re: (ref. {reference})")
    done = await file_message(pool, load_secret_key(settings), load_mailbox_policy(), raw,
                              arrived_at=datetime.now(UTC), source="imap", our_sender=OUR_SENDER)
    assert done is not None and done.request_id is None


async def test_attach_and_dismiss(http, pool, settings):
    csrf = await console_sign_in(http, pool, "agent")
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                        json={"type": "access", "subject": {"email": unique_email("attach")}})
    request_id = r.json()["id"]
    follow_up = await filed(settings, pool, raw_mail(unique_email("x"), "One more thing about my request."))
    bad = await http.post(f"/console/inbox/{follow_up}/attach", data={"csrf_token": csrf, "request_id": "nope"})
    assert bad.status_code == 422 and "existing request" in bad.text
    ok = await http.post(f"/console/inbox/{follow_up}/attach", data={"csrf_token": csrf, "request_id": f"dsr-{request_id}"})
    assert ok.status_code == 303 and ok.headers["location"] == f"/console/requests/{request_id}"
    # ... or by the short reference the subject quotes, as they may type it.
    quoted = await filed(settings, pool, raw_mail(unique_email("y"), "About my request"))
    reference = short_reference(request_id)
    by_reference = await http.post(f"/console/inbox/{quoted}/attach",
                                   data={"csrf_token": csrf, "request_id": f"{reference[:5].lower()} {reference[5:]}"})
    assert by_reference.status_code == 303 and by_reference.headers["location"] == f"/console/requests/{request_id}"
    assert await pool.fetchval("SELECT event_type FROM audit_events WHERE event_key = $1",
                               f"mail:{follow_up}:attached") == "mail.attached"

    spam = await filed(settings, pool, raw_mail(unique_email("spam"), "Buy cheap watches"))
    empty = await http.post(f"/console/inbox/{spam}/dismiss", data={"csrf_token": csrf, "reason": "  "})
    assert empty.status_code == 422 and "Say why" in empty.text
    gone = await http.post(f"/console/inbox/{spam}/dismiss", data={"csrf_token": csrf, "reason": "advertising"})
    assert gone.status_code == 303
    row = await pool.fetchrow("SELECT status, dismiss_reason, decided_by FROM mailbox_messages WHERE id = $1", spam)
    assert (row["status"], row["dismiss_reason"]) == ("dismissed", "advertising") and row["decided_by"].startswith("agent:")
    assert spam not in (await http.get("/console/inbox")).text
    # A colleague's form left open: the decision stands, and the page says so.
    late = await http.post(f"/console/inbox/{spam}/attach", data={"csrf_token": csrf, "request_id": request_id})
    assert late.status_code == 409 and "already dismissed" in late.text
    assert await pool.fetchval("SELECT status FROM mailbox_messages WHERE id = $1", spam) == "dismissed"


async def test_the_inbox_needs_a_session(http):
    r = await http.get("/console/inbox")
    assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in")


async def test_a_flood_of_mail_does_not_hide_the_latest_message(postgres, settings, dev_server, task_queue):
    """More new messages than a page holds (spam, or someone's flood on purpose): the page says how
    many wait and links to the next one, where the latest message is, since each may be a request
    whose deadline runs. Before, the inbox showed the 200 oldest and nothing more, with no sign
    that others existed."""
    async with database_pool(postgres, "inbox_pages") as (url, pool):
        own = settings.model_copy(update={"database_url": url})
        start = datetime.now(UTC) - timedelta(hours=1)
        for n in range(PAGE_SIZE + 1):
            await filed(own, pool, raw_mail(unique_email("flood"), "Cheap watches"), arrived=start + timedelta(seconds=n))
        latest = await filed(own, pool, raw_mail(unique_email("real"), "Please erase my data."))
        async with api_client(own, dev_server.client, task_queue) as http:
            await console_sign_in(http, pool, "agent")
            first = await http.get("/console/inbox")
            assert f"{PAGE_SIZE + 2} messages waiting, {PAGE_SIZE} on this page." in first.text
            assert first.text.count("data-message-id=") == PAGE_SIZE and latest not in first.text
            following = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', first.text).group(1)
            second = await http.get(html.unescape(following))
            assert second.status_code == 200 and latest in second.text
            assert second.text.count("data-message-id=") == 2 and 'rel="next"' not in second.text
            assert (await http.get("/console/inbox?cursor=not-ours")).status_code == 422
            # A cursor of the right shape whose id is no message id: a 422 too, not a 500 from the database.
            forged = await http.get("/console/inbox", params={
                "cursor": encode_cursor("2026-01-01T00:00:00+00:00", "not-a-uuid")})
            assert forged.status_code == 422, forged.text
            assert "not a cursor from an earlier page of the inbox" in forged.text
            # One at the calendar's edge is a place in the list like any other: the whole list follows it.
            edge = await http.get("/console/inbox", params={
                "cursor": encode_cursor("0001-01-01T00:00:00+14:00", str(uuid.UUID(int=0)))})
            assert edge.status_code == 200 and f"{PAGE_SIZE + 2} messages waiting" in edge.text, edge.text


async def test_a_convert_killed_after_opening_the_request_is_finished_on_the_next_look(
        postgres, settings, dev_server, task_queue, tmp_path):
    """The API dies right after the convert stored the request (failpoint `request-stored`),
    before the message's decision: the next look at the Inbox records it converted to that request,
    by the agent who opened it, so it leaves the Inbox and the waiting alert, and the agent's
    stale form, sent again with a field changed, leads to the request instead of a 409. Before,
    the message stayed `new` beside its running request, and every convert was refused."""
    client = dev_server.client
    port = free_port()
    async with database_pool(postgres, "convert") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url, "task_queue": task_queue, "api_port": port,
                                           "public_url": f"http://127.0.0.1:{port}"})
        sender = unique_email("convert")
        message_id = await filed(ours, pool, raw_mail(sender, "Please delete my data."))
        form = {"type": "erasure", "email": sender, "name": "Conny Vert"}
        async with live_client(base_url=ours.public_url, timeout=30) as http:
            async with dsrflow_process("api", ours, client, tmp_path, failpoints="request-stored") as api:
                await answering(http, api, tmp_path)
                csrf = await console_sign_in(http, pool, "agent")
                with pytest.raises(httpx.TransportError):
                    await http.post(f"/console/inbox/{message_id}/convert", data={"csrf_token": csrf, **form})
                await died(api, tmp_path, role="api")
        stored = await pool.fetchrow("SELECT id FROM dsr_requests")
        assert await pool.fetchval("SELECT status FROM mailbox_messages WHERE id = $1", message_id) == "new"

        async with api_client(ours, client, task_queue) as http:
            csrf = await console_sign_in(http, pool, "agent")
            assert message_id not in (await http.get("/console/inbox")).text
            decided = await pool.fetchrow("SELECT status, request_id, decided_by FROM mailbox_messages WHERE id = $1",
                                          message_id)
            assert (decided["status"], decided["request_id"]) == ("converted", stored["id"])
            assert decided["decided_by"].startswith("agent:")
            again = await http.post(f"/console/inbox/{message_id}/convert",
                                    data={"csrf_token": csrf, **form, "name": "Connie Vert"})
            assert again.status_code == 303 and again.headers["location"] == f"/console/requests/{stored['id']}"
