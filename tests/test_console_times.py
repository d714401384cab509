"""The console writes every time a person reads in the controller's timezone, the zone named, as
the evidence pack does (api/read_models/evidence_deadlines.py `controller_time`): the days a
request's deadline counts are Brussels days, and a request that reached us at 00:30 in Brussels
read "23:30 UTC" the day before. Machine-readable `datetime=` attributes stay ISO-8601 with offset.

Each moment is a few minutes before midnight UTC, so its Brussels day is the next one."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from activities.mailbox_intake import file_message
from api.read_models.evidence_deadlines import controller_time
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.requests_store import create_request
from policy.mailbox import load_mailbox_policy
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.evidence_pages import UTC_TIME
from tests.support import OUR_SENDER, console_sign_in, unique_email

RECEIVED = datetime(2026, 1, 4, 23, 30, tzinfo=UTC)  # 5 January, 00:30 in Brussels


def brussels(moment: datetime) -> str:
    return controller_time(moment, "Europe/Brussels", "en")


async def stored(pool, settings, email: str, received_at: datetime) -> str:
    new = NewRequest.model_validate({"type": "erasure", "regime": "gdpr", "identity_attested": True,
                                     "subject": {"email": email}, "received_at": received_at})
    row, _ = await create_request(pool, new, loaded_policy=load_policy(settings.policy_path),
                                  secret=load_secret_key(settings), actor="test", idempotency_key=None)
    return str(row["id"])


async def test_the_request_page_and_the_queue_write_times_in_the_controllers_timezone(http, pool, settings):
    email = unique_email("times")
    rid = await stored(pool, settings, email, RECEIVED)
    other = await stored(pool, settings, email, RECEIVED + timedelta(minutes=10))
    closed, letter, note, assigned, restricted = (RECEIVED + timedelta(days=30, minutes=m) for m in (5, 10, 15, 20, 25))
    request_id = uuid.UUID(rid)
    await pool.execute("UPDATE dsr_requests SET status = 'completed', closed_at = $2 WHERE id = $1", request_id, closed)
    await pool.execute(
        """INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject, message_id, body_text,
                                     body_html, sent_at)
           VALUES ($1, $2, 'response', $3, 'Your request', $4, 'text', '<p>text</p>', $5)""",
        f"{rid}:response:1", request_id, email, make_msgid(), letter)
    await pool.execute("""INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure,
                                                    since, lifted_at)
                          VALUES ($1, 'x', '{accuracy_contested}', '{crm}', false, $2, $3)""",
                       request_id, restricted, restricted + timedelta(minutes=1))
    csrf = await console_sign_in(http, pool, "compliance")
    assert (await http.post(f"/console/requests/{rid}/notes", data={"csrf_token": csrf, "note": "Called the subject"})
            ).status_code == 303
    assert (await http.post(f"/console/requests/{rid}/assignment", data={"csrf_token": csrf, "assignee": "me"})
            ).status_code == 303
    await pool.execute("UPDATE request_notes SET created_at = $2 WHERE request_id = $1", request_id, note)
    await pool.execute("UPDATE request_assignments SET assigned_at = $2 WHERE request_id = $1", request_id, assigned)

    page = (await http.get(f"/console/requests/{rid}")).text
    assert "5 January 2026, 00:30 CET (UTC+1) by" in page  # received
    assert f'id="status">completed ({brussels(closed)})' in page
    assert f"({brussels(letter)})</span></summary>" in page
    assert f'<time datetime="{note.isoformat()}">{brussels(note)}</time>' in page
    assert f"since {brussels(assigned)}" in page
    assert f"since {brussels(restricted)}" in page and f"lifted {brussels(restricted + timedelta(minutes=1))}" in page
    events = await pool.fetch("SELECT occurred_at FROM audit_events WHERE request_id = $1", request_id)
    assert events and all(
        f'<time datetime="{e["occurred_at"].isoformat()}">{brussels(e["occurred_at"])}</time>' in page for e in events)
    others = page.split('id="other-requests"')[1].split("</table>")[0]
    assert f'<td><a class="mono" href="/console/requests/{other}">' in others and "<td>5 January 2026</td>" in others
    assert not UTC_TIME.search(page) and "4 January 2026" not in page

    queue = (await http.get("/console/", params={"subject": email})).text
    row = queue.split(f'data-request-id="{rid}"')[1].split("</tr>")[0]
    assert '<td data-label="Received">5 January 2026</td>' in row


def raw_mail(sender: str, sent: datetime) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "privacy@onetagger.com", "Verzoek"
    message["Date"], message["Message-ID"] = format_datetime(sent), make_msgid(domain="example.com")
    message.set_content(f"Graag: verwijder mijn gegevens.\n\n{uuid.uuid4()}")
    return message.as_bytes()


async def test_the_inbox_writes_when_a_message_came_in_the_controllers_timezone(http, pool, settings):
    sender = unique_email("times.inbox")
    filed = await file_message(pool, load_secret_key(settings), load_mailbox_policy(), raw_mail(sender, RECEIVED),
                               arrived_at=RECEIVED + timedelta(minutes=3), source="sink", our_sender=OUR_SENDER)
    assert filed is not None
    await console_sign_in(http, pool, "agent")

    inbox = (await http.get("/console/inbox")).text
    row = inbox.split(f'data-message-id="{filed.message_id}"')[1].split("</tr>")[0]
    assert f'<time datetime="{RECEIVED.isoformat()}">5 January 2026, 00:30 CET (UTC+1)</time>' in row
    assert not UTC_TIME.search(row)
    # The day it would be due by as a request: a day in words, as the queue writes it.
    assert re.search(r"<td>\d{1,2} [A-Z][a-z]+ 2026 <span class=\"badge", row)
    page = (await http.get(f"/console/inbox/{filed.message_id}")).text
    assert ">5 January 2026, 00:30 CET (UTC+1)</time> (the request's clock starts here); reached our server" in page
    assert ">5 January 2026, 00:33 CET (UTC+1)</time>" in page and not UTC_TIME.search(page)
    assert re.search(r"Due if a request</dt><dd>\d{1,2} [A-Z][a-z]+ 2026 \(", page)
