"""Deadlines run on the controller's calendar (Reg. 1182/71 Art. 2(1), 3(4)), over the real app,
worker and Temporal dev server: the subject's country is stored as a fact, any valid code is
accepted, and none of them moves the due date or stops the acknowledgement."""

from __future__ import annotations

from datetime import date

import pytest

from dsrflow.domain.deadlines import compute_deadline, receipt_date
from tests.support import (
    staff_headers,
    text_of,
    unique_email,
    wait_for_due_date,
    wait_for_letter,
)
from tests.test_portal import submit

BRUSSELS = "Europe/Brussels"
# No holiday calendar for most of them under the GDPR; FR has one that must not be used.
FOREIGN = ["GB", "CH", "US", "FR"]


async def _registered(http, pool, mail_sink, rid: str) -> tuple[date, date]:
    """(controller-local receipt date, due date) once the request has its acknowledgement."""
    await wait_for_letter(mail_sink, rid, "acknowledgement")
    due = await wait_for_due_date(pool, rid)
    row = await pool.fetchrow("SELECT received_at FROM dsr_requests WHERE id = $1", rid)
    return receipt_date(row["received_at"], BRUSSELS), due


async def test_any_country_on_intake_registers_with_the_controllers_due_date(http, pool, mail_sink):
    opened: dict[str, str] = {}  # label -> request id
    for country in [None, *FOREIGN]:
        fields = {"country": country} if country else {}
        public = await http.post("/v1/public/requests",
                                 json={"type": "access", "email": unique_email("cal-api"), **fields})
        assert public.status_code == 202, public.text
        opened[f"api-{country}"] = public.json()["id"]
        opened[f"portal-{country}"] = await submit(
            http, type="access", email=unique_email("cal-portal"), **({"country": country.lower()} if country else {}))

    dues: dict[date, set[date]] = {}
    for label, rid in opened.items():
        received, due = await _registered(http, pool, mail_sink, rid)
        # The Belgian controller's calendar, whatever the subject's country.
        assert due == compute_deadline("gdpr", received, "BE").due_date, label
        dues.setdefault(received, set()).add(due)
        country = label.split("-")[1]
        stored = await pool.fetchval("SELECT country FROM dsr_requests WHERE id = $1", rid)
        assert stored == ("BE" if country == "None" else country), label  # kept as a fact
    # Requests received the same (local) day share one due date, with or without a country.
    assert all(len(same_day) == 1 for same_day in dues.values()), dues


@pytest.mark.parametrize("received_at, due", [
    # +1 month = Fri 8 May 2026, Victory Day in France but a working day in Belgium.
    ("2026-04-08T10:00:00+02:00", date(2026, 5, 8)),
    # +1 month = Tue 14 Jul 2026, Bastille Day in France but a working day in Belgium.
    ("2026-06-14T10:00:00+02:00", date(2026, 7, 14)),
])
async def test_french_subject_of_the_belgian_controller_keeps_french_holidays_out(
        http, pool, mail_sink, received_at: str, due: date):
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "country": "FR", "subject": {"email": unique_email("cal-fr")},
        "identity_attested": True, "received_at": received_at})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]

    assert await wait_for_due_date(pool, rid) == due
    ack = text_of(await wait_for_letter(mail_sink, rid, "acknowledgement"))
    assert f"We will answer by {due.day} {due:%B} {due.year} at the latest." in ack


async def test_letters_say_received_on_the_controllers_local_date(http, pool, mail_sink):
    # 23:30 UTC on Mon 9 Feb is 00:30 on Tue 10 Feb in Brussels (UTC+1 in winter): the request
    # was received on the 10th, and is due a month later, on Tue 10 Mar (not Mon 9 Mar).
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "subject": {"email": unique_email("cal-tz")}, "identity_attested": True,
        "received_at": "2026-02-09T23:30:00Z"})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]

    ack = text_of(await wait_for_letter(mail_sink, rid, "acknowledgement"))
    assert "Received on: 10 February 2026" in ack
    assert "We will answer by 10 March 2026 at the latest." in ack
    assert await wait_for_due_date(pool, rid) == date(2026, 3, 10)
