"""Console pages over the real app, worker and Temporal dev server: the queue by due date with
badges and filters, search by id, the new-request form, the request page, its actions (with htmx
and without), the live region's versions, letters, and the dashboard."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date
from tests.support import (
    CSRF_FIELD,
    console_sign_in,
    refused_erasure,
    staff_headers,
    unique_email,
    wait_for_due_date,
    wait_for_letter,
)

HTMX = {"HX-Request": "true"}


async def open_request(http, pool, *, days_ago: int = 0, kind: str = "erasure", attested: bool = False,
                       language: str | None = None) -> str:
    received = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": kind, "subject": {"email": unique_email("console")}, "received_at": received,
        "identity_attested": attested, **({"language": language} if language else {})})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    await wait_for_due_date(pool, rid)
    if not attested:
        # Then the workflow waits for the subject: no letter changes the page behind the test's back.
        for _ in range(300):
            if await pool.fetchval("SELECT count(*) FROM sent_letters WHERE request_id = $1 "
                                   "AND purpose = 'verification'", uuid.UUID(rid)):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"no verification letter recorded for {rid}")
    return rid


async def test_queue_needs_a_session(http):
    r = await http.get("/console/")
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in?next=/console/"


async def test_queue_by_due_date_with_badges(http, pool):
    later, overdue, soon = [await open_request(http, pool, days_ago=d) for d in (0, 40, 25)]
    await console_sign_in(http, pool, "agent")

    page = await http.get("/console/", params={"type": "erasure", "status": "awaiting_verification"})

    assert page.status_code == 200
    order = re.findall(r'data-request-id="([0-9a-f-]{36})"', page.text)
    mine = [rid for rid in order if rid in (later, overdue, soon)]
    assert mine == [overdue, soon, later]
    row = {rid: page.text.split(f'data-request-id="{rid}"')[1].split("</tr>")[0] for rid in mine}
    assert re.search(r'badge overdue">overdue by \d+ days?<', row[overdue])
    assert re.search(r'badge soon">\d+ days? left<', row[soon])
    assert re.search(r'badge later">\d+ days left<', row[later])
    assert 'hx-trigger="every 10s"' in page.text


async def test_search_by_id_opens_the_request_and_bad_ids_are_named(http, pool):
    rid = await open_request(http, pool)
    await console_sign_in(http, pool, "agent")
    for typed in (f"dsr-{rid}", f" dsr-{rid}-billing-erase-2 "):  # its workflow's id, or a system task's
        found = await http.get("/console/", params={"q": typed})
        assert found.status_code == 303 and found.headers["location"] == f"/console/requests/{rid}"
    bad = await http.get("/console/", params={"q": "not-an-id"})
    assert bad.status_code == 422 and "reference (like KD7QX3M9TB)" in bad.text


async def test_queue_region_answers_204_until_something_changes(http, pool):
    await console_sign_in(http, pool, "agent")
    params = {"type": "objection", "status": "awaiting_verification"}
    first = await http.get("/console/queue", params=params)
    version = re.search(r'data-version="([0-9a-f]+)"', first.text).group(1)
    assert (await http.get("/console/queue", params={**params, "v": version})).status_code == 204
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "objection", "objection_scope": "profiling", "subject": {"email": unique_email("obj")}})
    assert r.status_code == 201
    for _ in range(100):
        changed = await http.get("/console/queue", params={**params, "v": version})
        if changed.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert changed.status_code == 200 and r.json()["id"] in changed.text


async def test_new_request_form(http, pool):
    csrf = await console_sign_in(http, pool, "agent")
    form = await http.get("/console/requests/new")
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    assert '<textarea id="complaint_reasons" name="complaint_reasons" rows="4" maxlength="2000"' in form.text
    email = unique_email("form")

    bad = await http.post("/console/requests", data={"csrf_token": csrf, "submission": submission,
                                                      "type": "access", "email": "nope", "received_at": "2999-01-01T10:00"})
    assert bad.status_code == 422
    assert 'id="email-error"' in bad.text and 'id="received_at-error"' in bad.text and "must not be in the future" in bad.text

    made = await http.post("/console/requests", data={
        "csrf_token": csrf, "submission": submission, "type": "objection", "email": email,
        "name": "Grace", "objection_scope": "direct_marketing", "regime": "gdpr", "channel": "phone",
        "identity_attested": "true", "received_at": "2026-01-05T09:30"})
    assert made.status_code == 303, made.text
    row = await pool.fetchrow("SELECT * FROM dsr_requests WHERE subject_email = $1", email)
    assert made.headers["location"] == f"/console/requests/{row['id']}"
    assert (row["channel"], row["attested_by"].startswith("agent:"), row["details"]) == (
        "phone", True, {"objection_scope": "direct_marketing"})
    assert row["received_at"] == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)  # 09:30 in Brussels
    # Without the CSRF token nothing is opened.
    refused = await http.post("/console/requests", data={"type": "access", "email": unique_email("csrf")})
    assert refused.status_code == 403


async def test_an_appeal_is_opened_from_the_new_request_form(http, pool, mail_sink):
    """The subject replied to a VCDPA refusal to appeal it: staff open the appeal from the console,
    naming the refused request. It takes that request's regime whatever the form's select says,
    and an appeal that cannot be (another subject's request) is said beside the field."""
    email = unique_email("appeal")
    refused, _ = await refused_erasure(http, pool, mail_sink, email, "vcdpa")

    csrf = await console_sign_in(http, pool, "agent")
    form = await http.get("/console/requests/new")
    assert 'id="appeal_of"' in form.text
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    fields = {"csrf_token": csrf, "submission": submission, "type": "erasure", "regime": "gdpr", "channel": "email"}
    wrong = await http.post("/console/requests", data={**fields, "email": unique_email("other"), "appeal_of": refused})
    assert wrong.status_code == 422 and 'id="appeal_of-error"' in wrong.text and "no request" in wrong.text
    # The reference the refusal letter gave the subject, as they would quote it.
    made = await http.post("/console/requests", data={**fields, "email": email, "appeal_of": short_reference(refused)})
    assert made.status_code == 303, made.text
    row = await pool.fetchrow("SELECT * FROM dsr_requests WHERE id = $1",
                              uuid.UUID(made.headers["location"].rsplit("/", 1)[1]))
    assert (row["regime"], row["details"]) == ("vcdpa", {"appeal_of": refused})


async def test_request_page_shows_the_request_and_the_roles_actions(http, pool, mail_sink):
    rid = await open_request(http, pool, kind="access")
    await wait_for_letter(mail_sink, rid, "verification")
    await console_sign_in(http, pool, "agent")
    page = await http.get(f"/console/requests/{rid}")
    assert page.status_code == 200
    text = page.text
    for expected in ("awaiting verification", 'hx-trigger="every 3s"',
                     f"/console/requests/{rid}/letters/acknowledgement/1"):
        assert expected in text, expected
    # The audit timeline is compliance's (api/read_models/staff_reach.py READABLE_BY), and so is the
    # workflow's history the Temporal UI decodes.
    assert "The audit timeline is for compliance." in text and "Request opened" not in text
    assert "/namespaces/default/workflows/" not in text
    assert "Resend verification" in text and "Cancel the request" in text
    assert "Extend the deadline" not in text and "Evidence pack" not in text

    letter = await http.get(f"/console/requests/{rid}/letters/acknowledgement/1")
    assert letter.status_code == 200 and "Thank you for your request." in letter.text
    assert "default-src 'none'" in letter.headers["content-security-policy"]
    assert (await http.get(f"/console/requests/{rid}/letters/denial/1")).status_code == 404
    # A path that names no letter is "not found" on the console's page, not a JSON error.
    for path in (f"{rid}/letters/acknowledgement/%00", "%00/letters/acknowledgement/1", "not-an-id/letters/x/1"):
        missing = await http.get(f"/console/requests/{path}")
        assert missing.status_code == 404 and "Letter not found" in missing.text, (path, missing.text[:200])
        assert missing.headers["content-type"].startswith("text/html")
    upper = await http.get(f"/console/requests/{rid.upper()}/letters/acknowledgement/1")
    assert upper.status_code == 200 and "Thank you for your request." in upper.text

    await console_sign_in(http, pool, "compliance")
    compliance_page = (await http.get(f"/console/requests/{rid}")).text
    assert "Extend the deadline" in compliance_page and "Deny the request" in compliance_page
    assert "Evidence pack" in compliance_page and "/namespaces/default/workflows/dsr-" + rid in compliance_page
    assert "Request opened" in compliance_page and "Letter sent (acknowledgement)" in compliance_page


async def test_what_staff_write_for_a_subject_says_the_language_of_their_letters(http, pool):
    """A reason or an explanation goes into the subject's letter as staff write it: where the
    letters are not in the staff language, every such field says which language to write in."""
    dutch, english = await open_request(http, pool, language="nl"), await open_request(http, pool)
    await console_sign_in(http, pool, "compliance")
    page = (await http.get(f"/console/requests/{dutch}")).text
    for field in ("Reason", "Explanation"):
        assert f"{field} (sent to the subject, whose letters are in Dutch: write it in Dutch)" in page, field
    assert "(sent to the subject)" not in page
    page = (await http.get(f"/console/requests/{english}")).text
    assert page.count("(sent to the subject)") >= 3 and "whose letters are in" not in page


async def test_extend_in_place_then_refused_the_second_time(http, pool):
    rid = await open_request(http, pool)
    csrf = await console_sign_in(http, pool, "compliance")
    before = await pool.fetchrow("SELECT due_date, extended_due_date FROM dsr_requests WHERE id = $1", rid)

    r = await http.post(f"/console/requests/{rid}/extend", headers=HTMX,
                        data={"csrf_token": csrf, "reason": "Nine systems and many years of records"})

    assert r.status_code == 200, r.text
    assert r.text.startswith('<div id="live"')  # the region alone, for htmx to swap in
    assert f'id="due-date">{long_date(before["extended_due_date"])} <span' in r.text
    assert "Deadline extended; the subject is told" in r.text
    version = re.search(r'data-version="([0-9a-f]+)"', r.text).group(1)
    # The notice stays: the region's version is that of the page without it.
    assert (await http.get(f"/console/requests/{rid}/live", params={"v": version})).status_code == 204

    again = await http.post(f"/console/requests/{rid}/cancel", data={"csrf_token": csrf, "reason": "x"})
    assert again.status_code == 422 and "at least 3 characters" in again.text
    # Ten spaces pass the browser's minlength; the refusal says the reason was empty, not pydantic's
    # "Field required", which read as a fault of the form.
    blank = await http.post(f"/console/requests/{rid}/cancel", data={"csrf_token": csrf, "reason": " " * 10})
    assert blank.status_code == 422 and "reason: is required, and was left out or empty" in blank.text
    assert "Field required" not in blank.text


async def test_workflow_refusal_shows_beside_the_form(http, pool):
    rid = await open_request(http, pool)
    csrf = await console_sign_in(http, pool, "compliance")
    reason = {"csrf_token": csrf, "reason": "Nine systems and many years of records"}
    assert (await http.post(f"/console/requests/{rid}/extend", data=reason)).status_code == 303
    # A second tab still showing the extend form posts it again.
    refused = await http.post(f"/console/requests/{rid}/extend", data=reason, headers=HTMX)
    assert refused.status_code == 409
    assert "already been extended once" in refused.text


async def test_actions_check_role_and_csrf(http, pool):
    rid = await open_request(http, pool)
    csrf = await console_sign_in(http, pool, "agent")
    forbidden = await http.post(f"/console/requests/{rid}/extend",
                                data={"csrf_token": csrf, "reason": "Nine systems and many years"})
    assert forbidden.status_code == 403 and "needs the compliance role" in forbidden.text
    no_token = await http.post(f"/console/requests/{rid}/cancel", data={"reason": "Withdrawn by phone"})
    assert no_token.status_code == 403
    assert await pool.fetchval("SELECT status FROM dsr_requests WHERE id = $1", rid) == "awaiting_verification"

    refusing = await http.post(f"/console/requests/{rid}/cancel", data={"csrf_token": csrf, "reason": "Looks like spam"})
    assert refusing.status_code == 403 and "refuses the request: it needs the compliance role" in refusing.text
    cancelled = await http.post(f"/console/requests/{rid}/cancel", data={
        "csrf_token": csrf, "reason": "Withdrawn by phone", "withdrawn_by_subject": "true"})
    assert cancelled.status_code == 303  # the outcome signed for this request (api/console/refusals.py)
    assert cancelled.headers["location"].startswith(f"/console/requests/{rid}?done=cancel&done_sig=")
    page = await http.get(cancelled.headers["location"])
    assert "Request cancelled." in page.text and "Cancel the request" not in page.text


async def test_dashboard_for_compliance_only(http, pool):
    await open_request(http, pool)
    await console_sign_in(http, pool, "agent")
    assert (await http.get("/console/dashboard")).status_code == 403
    await console_sign_in(http, pool, "compliance")
    page = await http.get("/console/dashboard")
    assert page.status_code == 200
    assert page.text.count("<svg") == 4 and 'role="img"' in page.text
    for caption in ("Requests received per month", "Median days from receipt", "Share answered on time",
                    "Open requests by due week"):
        assert caption in page.text
    assert CSRF_FIELD.search(page.text)  # the sign-out form
    # Its table names each due week by its Monday, written as the console writes a day (not "07 Dec"),
    # and the last row the day from which requests are due later (it read "25 Jan" alone).
    assert re.search(r"<th scope=\"row\">week of \d{1,2} [A-Z][a-z]+ \d{4}</th>", page.text)
    assert re.search(r"<th scope=\"row\">from \d{1,2} [A-Z][a-z]+ \d{4}</th>", page.text)
