"""A request's clock starts on the day it was received where its law is, or in the controller's
zone where that day is earlier: never later than either place counts it. A CCPA request sent at
21:30 on 1 March in California reaches Brussels at 06:30 on 2 March; the Californian regulator
counts 45 days from 1 March, and so must we. Under the GDPR the controller's day alone counts.
With the real activities and PostgreSQL, no workflow engine: `prepare_request` registers the dates,
the acknowledgement letter says them, and the API, the evidence pack, the portal's status page and
the console's queue show them (~1 s)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from activities.context import ActivityContext
from activities.letters import LetterActivities
from activities.lifecycle import LifecycleActivities
from activities.mail import Mailer
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.deadlines import compute_deadline, receipt_date_for
from dsrflow.stores.requests_store import create_request
from schemas.requests import NewRequest
from schemas.vocabulary import Regime
from schemas.workflow import LetterJob, StartRequest
from tests.policy_once import policy_of
from tests.support import console_sign_in, letters_for, staff_headers, text_of, unique_email

BRUSSELS = "Europe/Brussels"

# (regime, received at, the day its clock starts, the controller's day, its due date)
CASES = {
    # 21:30 on Sun 1 March in California (PST); 06:30 on 2 March in Brussels. 45 days from 1 March.
    "ccpa-californian-evening": ("ccpa", datetime(2026, 3, 2, 5, 30, tzinfo=UTC), date(2026, 3, 1),
                                 date(2026, 3, 2), date(2026, 4, 15)),
    # 23:30 on Tue 20 January in London (GMT); 00:30 on the 21st in Brussels. A month: Fri 20
    # February, where Brussels' day gave Sat 21 February, moved to Mon 23 February.
    "uk-winter-london-evening": ("uk_gdpr", datetime(2026, 1, 20, 23, 30, tzinfo=UTC), date(2026, 1, 20),
                                 date(2026, 1, 21), date(2026, 2, 20)),
    # 23:30 on Mon 13 July in London (BST, 22:30 UTC); 00:30 on the 14th in Brussels.
    "uk-summer-london-evening": ("uk_gdpr", datetime(2026, 7, 13, 22, 30, tzinfo=UTC), date(2026, 7, 13),
                                 date(2026, 7, 14), date(2026, 8, 13)),
    # The GDPR counts the controller's day, as before: 00:30 on Tue 10 February in Brussels.
    "gdpr-unchanged": ("gdpr", datetime(2026, 2, 9, 23, 30, tzinfo=UTC), date(2026, 2, 10),
                       date(2026, 2, 10), date(2026, 3, 10)),
}


@pytest.mark.parametrize("case", CASES)
def test_the_clock_starts_on_the_earlier_of_the_laws_day_and_the_controllers(case: str):
    regime, received_at, start, _, due = CASES[case]
    assert receipt_date_for(received_at, BRUSSELS, regime) == start
    deadline = compute_deadline(regime, start, establishment="BE" if regime == "gdpr" else None)
    assert (deadline.clock_start, deadline.due_date) == (start, due)


@pytest.mark.parametrize("regime", list(Regime))
def test_a_request_received_at_noon_utc_starts_the_same_day_under_every_law(regime: Regime):
    # Noon UTC is the same day from Vancouver (04:00) to Brussels (13:00).
    assert receipt_date_for(datetime(2026, 3, 2, 12, tzinfo=UTC), BRUSSELS, regime) == date(2026, 3, 2)
    assert receipt_date_for(datetime(2026, 7, 2, 12, tzinfo=UTC), BRUSSELS, regime) == date(2026, 7, 2)


def _long(day: date) -> str:
    return f"{day.day} {day:%B} {day.year}"


@pytest.mark.parametrize("case", ["ccpa-californian-evening", "uk-winter-london-evening", "gdpr-unchanged"])
async def test_the_subject_staff_and_the_evidence_see_the_day_the_clock_counts_from(
        app_http, pool, settings, mail_sink, case: str):
    regime, received_at, start, here, due = CASES[case]
    loaded, email = policy_of(settings), unique_email("law-day")
    row, _ = await create_request(pool, NewRequest(type="erasure", regime=regime, received_at=received_at,
                                                   subject={"email": email},
                                                   identity_attested=True),
                                  loaded_policy=loaded, secret=load_secret_key(settings), actor="test",
                                  idempotency_key=None)
    rid = str(row["id"])
    ctx = ActivityContext(pool=pool, settings=settings, mailer=Mailer(settings), secret=load_secret_key(settings))
    facts = await LifecycleActivities(ctx).prepare_request(StartRequest(request_id=rid, policy_version=loaded.version))
    assert facts.due_date == due

    await LetterActivities(ctx).send_letter(LetterJob(request_id=rid, purpose="acknowledgement", key="1",
                                                      params={"verification_required": False}))
    [letter] = letters_for(mail_sink, rid, "acknowledgement")
    said = " ".join(text_of(letter).split())
    assert f"Received on: {_long(start)}" in said
    assert f"We will answer by {_long(due)} at the latest." in said

    headers = await staff_headers(pool, "compliance")
    view = (await app_http.get(f"/v1/requests/{rid}", headers=headers)).json()
    assert (view["due_date"], view["current_due_date"]) == (due.isoformat(), due.isoformat())

    basis = (await app_http.get(f"/v1/requests/{rid}/evidence", headers=headers)).json()["deadlines"]["basis"]
    assert (basis["received_on"], basis["controller_received_on"]) == (start.isoformat(), here.isoformat())
    page = " ".join((await app_http.get(f"/v1/requests/{rid}/evidence.html", headers=headers)).text.split())
    if start == here:
        assert f"{_long(start)} in the controller's time ({BRUSSELS}), the day the deadlines count from" in page
    else:
        zone = {"ccpa": "America/Los Angeles", "uk_gdpr": "Europe/London"}[regime]  # as people write it
        assert (f"{_long(start)} in the law's place ({zone}; {_long(here)} in the controller's time, {BRUSSELS}): "
                "the earlier date counts, the day the deadlines count from") in page

    # The subject's status page on the portal, as their acknowledgement says it.
    status = " ".join((await app_http.get(f"/portal/requests/{rid}")).text.split())
    assert f"<dt>Received</dt><dd>{_long(start)}</dd>" in status

    # The console's queue: the day received, beside the due date counted from it.
    await console_sign_in(app_http, pool, "compliance")
    queue = (await app_http.get("/console/", params={"subject": email})).text
    assert f'<td data-label="Received">{_long(start)}</td>' in queue.split(f'data-request-id="{rid}"')[1].split("</tr>")[0]
