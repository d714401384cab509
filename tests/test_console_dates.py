"""The console writes every day a member of staff reads one way, in the page's language: the
queue's "Due" read "2026-12-30" beside its "Received" "5 December 2026", and the request page its
due date, the date it was extended from, a kept record's "until" and a hold's review date as ISO
dates. A due date is a day: written as it is, never moved through a timezone. Machines still read
ISO (attributes, input values, links): only the visible text is checked.

A request's day of receipt is its policy version's timezone's day, in a list of requests too.
The timeline's words (and the evidence pack's, the same lines) write their days and moments as
the page does: an extension's dates were English on a German console, and the start of a frozen
stretch its UTC day.

The console speaks the policy's staff language (`languages.staff`, api/page_language.py `page_language`):
the same pages are rendered under the shipped policy (English) and under one whose staff write
German. Requests are stored as intake stores them, no workflow running (tests/test_console_words.py)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from babel.dates import format_date

from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.i18n import long_date, long_datetime
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.evidence_pages import readable
from tests.support import api_client, console_sign_in, controller_today, place_claims_hold, unique_email
from tests.yaml_files import dump_yaml, read_yaml

ISO_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
KEPT_UNTIL = "2033-12-31"
# A frozen stretch from 23:30 UTC: 00:30 the next day in Brussels, the policy's timezone.
FROZEN_SINCE = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)


def policy_file(lifecycle_policy: Path, path: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    content = read_yaml(lifecycle_policy)
    change(content)
    path.write_text(dump_yaml(content, sort_keys=False))
    return path


async def stored(pool, settings, email: str, received_at: datetime, policy: Path | None = None) -> str:
    new = NewRequest.model_validate({"type": "erasure", "regime": "gdpr", "identity_attested": True,
                                     "subject": {"email": email}, "received_at": received_at})
    row, _ = await create_request(pool, new, loaded_policy=load_policy(policy or settings.policy_path),
                                  secret=load_secret_key(settings), actor="test", idempotency_key=None)
    return str(row["id"])


async def extended_with_kept_records(pool, settings, email: str) -> tuple[str, dict[str, date]]:
    """An erasure extended, with a record kept by statute until a day and one under a legal-claims
    hold, and another request of the same subject: its id, and its days by name (first due, due
    now, the other request's due date, the hold's review date)."""
    received = datetime.now(UTC) - timedelta(days=20)
    rid = await stored(pool, settings, email, received)
    other = await stored(pool, settings, email, received + timedelta(days=1))
    # The days its workflow would have computed (none runs here), the first one extended.
    first, extended, other_due = (date.today() + timedelta(days=n) for n in (10, 70, 11))
    await pool.execute("""UPDATE dsr_requests SET due_date = $2, extended_due_date = $3, current_due_date = $3,
                                 extended = true WHERE id = $1""", uuid.UUID(rid), first, extended)
    await pool.execute("UPDATE dsr_requests SET due_date = $2, current_due_date = $2 WHERE id = $1",
                       uuid.UUID(other), other_due)
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{rid}:extended", event_type="deadline.extended", actor="compliance:test",
                           request_id=rid, data={"from": first.isoformat(), "to": extended.isoformat(),
                                                 "reason": "Nine systems and many years of records"})
        # A frozen stretch and its end, as the start sweep records them (dsrflow/domain/failing_workflows.py).
        await append_event(conn, event_key=f"{rid}:frozen", event_type="request.workflow_failing", actor="sweep",
                           request_id=rid, data={"since": FROZEN_SINCE.isoformat(), "attempts": 6, "unheld_key": None})
        await append_event(conn, event_key=f"{rid}:frozen:recovered", event_type="request.workflow_recovered",
                           actor="sweep", request_id=rid, data={"failing_since": FROZEN_SINCE.isoformat(),
                                                                "noticed": datetime.now(UTC).isoformat()})
    hold = await place_claims_hold(pool, settings, email, ["crm"])
    kept = [{"system": "billing", "dataset": "invoices", "records": 3, "hold_kind": "statutory",
             "basis": "Art. 17(3)(b) GDPR", "law": "VAT Code Art. 60", "until": KEPT_UNTIL},
            {"system": "crm", "dataset": "all", "records": 1, "hold_kind": "legal_claims", "hold_ref": str(hold["id"]),
             "basis": "Art. 17(3)(e) GDPR", "law": "a legal claim", "until": hold["review_date"].isoformat()}]
    await pool.execute("""INSERT INTO system_tasks (request_id, system, action, status, found, changed, kept, kept_records)
                          VALUES ($1, 'billing', 'erase', 'completed', 5, 2, 4, $2)""", uuid.UUID(rid), kept)
    return rid, {"first": first, "due": extended, "other": other_due, "review": hold["review_date"]}


async def test_the_queue_and_the_request_page_write_every_day_in_words_in_the_staff_language(
        pool, settings, lifecycle_policy, dev_server, task_queue, tmp_path):
    email = unique_email("dates")
    rid, days = await extended_with_kept_records(pool, settings, email)
    # A request of the same subject received under a policy version that counts days in New York:
    # 03:30 UTC on 3 November is the 2nd there (the 3rd in Brussels, the policy in force's zone).
    new_york = policy_file(lifecycle_policy, tmp_path / "new-york.yaml",
                           lambda content: content["defaults"].update(timezone="America/New_York"))
    received_in_new_york = await stored(pool, settings, email, datetime(2026, 11, 3, 3, 30, tzinfo=UTC), new_york)
    german = policy_file(lifecycle_policy, tmp_path / "german-staff.yaml",
                         lambda content: content["languages"].update(staff="de"))

    # No worker: the pages read the stored requests (their workflows are not asked to run).
    async with (api_client(settings, dev_server.client, task_queue) as en,
                api_client(settings.model_copy(update={"policy_path": german}), dev_server.client, task_queue) as de):
        for client, language in ((en, "en"), (de, "de")):
            day = {name: long_date(value, language) for name, value in days.items()}
            await console_sign_in(client, pool, "compliance")
            page = (await client.get(f"/console/requests/{rid}")).text
            queue = (await client.get("/console/", params={"subject": email})).text
            for html in (page, queue):
                assert ISO_DAY.findall(readable(html)) == [], language
            assert f'<dd id="due-date">{day["due"]} <span' in page
            text = readable(page)
            assert f"from {day['first']}: Nine systems" in text
            assert f"until {long_date(date.fromisoformat(KEPT_UNTIL), language)}." in text
            assert f"(to be reviewed by {day['review']})." in text and f"review by {day['review']}, on " in text
            # The timeline, and the evidence pack's audit table: the same lines, the page's days and moments.
            frozen = f"(frozen since {long_datetime(FROZEN_SINCE, language, 'Europe/Brussels')})"
            evidence = readable((await client.get(f"/v1/requests/{rid}/evidence.html")).text)
            for lines in (text.split(" Timeline ")[1], evidence.split(" Audit trail ")[1]):
                assert f"Deadline extended ({day['first']} → {day['due']}: Nine systems" in lines, language
                assert frozen in lines and ISO_DAY.findall(evidence) == [], language
            row = queue.split(f'data-request-id="{rid}"')[1].split("</tr>")[0]
            assert f'<td data-label="Due">{day["due"]} <span class="hint">(extended)' in row
            # Each request's day of receipt in its own policy version's timezone, in the queue and on the page.
            received = long_date(date(2026, 11, 2), language)
            row = queue.split(f'data-request-id="{received_in_new_york}"')[1].split("</tr>")[0]
            assert f'<td data-label="Received">{received}</td>' in row
            # The subject's other request, on this one's page.
            others = page.split('id="other-requests"')[1].split("</table>")[0]
            assert others.count("<tr data-request-id=") == 2 and f"<td>{day['other']}</td>" in others
            assert f"<td>{received}</td>" in others.split(f'data-request-id="{received_in_new_york}"')[1]
        # The dashboard's months and due weeks in German too (they were "Dec 26", "07 Dec").
        dashboard = (await de.get("/console/dashboard")).text
        month = format_date(controller_today(settings), "MMM yy", locale="de")
        assert f'<th scope="row">{month}</th>' in dashboard and ISO_DAY.findall(readable(dashboard)) == []
        assert re.search(r'<th scope="row">week of \d{1,2}\. \w+ \d{4}</th>', dashboard)
    # Machines still read ISO: the times' attributes.
    assert re.search(r'<time datetime="\d{4}-\d{2}-\d{2}T', page)
