"""A UK subject complains to us about a refusal (Data Protection Act 2018 s. 164A) through the
portal's complaint form, the one the refusal's letter links to: over HTTP, the real app, worker,
PostgreSQL and Temporal dev server. The complaint is a request that refers to the refused one
(dsrflow/domain/appeals.py), acknowledged at once, with the 30 days to acknowledge and our target
for its outcome as its dates; receipt, acknowledgement and outcome are audited events, and its
outcome names the Information Commissioner, not a second complaint to us."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from dsrflow.domain.deadlines import receipt_date
from dsrflow.domain.references import short_reference
from policy.model import load_policy
from tests.support import staff_headers, text_of, unique_email, wait_for_letter


async def _refused_uk_erasure(http, pool, mail_sink, email: str) -> tuple[str, str]:
    """A UK erasure compliance denied: its id, and the text of the denial letter the subject got."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "erasure", "regime": "uk_gdpr", "country": "GB", "subject": {"email": email}})
    assert r.status_code == 201, r.text
    refused = r.json()["id"]
    await wait_for_letter(mail_sink, refused, "verification")
    r = await http.post(f"/v1/requests/{refused}/deny", headers=await staff_headers(pool, "compliance"), json={
        "reason_code": "other", "explanation": "The records are needed to defend a pending claim."})
    assert r.status_code == 200, r.text
    return refused, text_of(await wait_for_letter(mail_sink, refused, "denial"))


async def test_a_uk_subject_complains_through_the_portals_form_and_is_acknowledged(http, pool, mail_sink):
    email = unique_email("uk-complaint")
    refused, denial = await _refused_uk_erasure(http, pool, mail_sink, email)
    reference = short_reference(refused)

    # The refusal links to the form, open on the refused request.
    form_url = re.search(r"https?://\S+/portal/complaints\?about=(\w+)&lang=en", denial)
    assert form_url and form_url.group(1) == reference, denial
    page = await http.get("/portal" + form_url.group(0).split("/portal", 1)[1])
    assert page.status_code == 200 and f'value="{reference}"' in page.text

    # Someone else, with the reference but not the subject's address: refused, nothing stored.
    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    stranger = await http.post("/portal/complaints", data={"about": reference, "email": unique_email("stranger"),
                                                           "language": "en"})
    assert stranger.status_code == 422
    assert (f"We have no request {reference} of yours that we refused, in whole or in part, under UK data "
            "protection law.") in html.unescape(stranger.text)
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before

    r = await http.post("/portal/complaints", data={"about": reference, "email": email, "language": "en",
                                                    "submission": "complaint-" + reference + "-0001"})
    assert r.status_code == 303, r.text[-1500:]
    complaint = r.headers["location"].split("/")[-2]
    row = await pool.fetchrow("SELECT regime, request_type, country FROM dsr_requests WHERE id = $1::uuid", complaint)
    assert (row["regime"], row["request_type"], row["country"]) == ("uk_gdpr", "erasure", "GB")

    acknowledgement = await wait_for_letter(mail_sink, complaint, "acknowledgement")
    assert acknowledgement["Subject"] == f"We have received your complaint (ref. {short_reference(complaint)})"
    said = " ".join(text_of(acknowledgement).split())
    assert f"Thank you for your complaint about our decision on request {reference}." in said
    assert "tell you its outcome without undue delay" in said

    # Its dates: acknowledged within the 30 days that begin with its receipt, the outcome by our target.
    row = await pool.fetchrow("SELECT details, received_at, acknowledge_by, due_date, extended_due_date "
                              "FROM dsr_requests WHERE id = $1::uuid", complaint)
    assert row["details"]["appeal_of"] == refused
    received = receipt_date(row["received_at"], load_policy().policy.defaults.timezone)
    assert (row["acknowledge_by"], row["due_date"], row["extended_due_date"]) == (
        received + timedelta(days=29), received + timedelta(days=30), received + timedelta(days=30))

    # The outcome: the refusal stands. Its letter names the Commissioner, and no second complaint to us.
    r = await http.post(f"/v1/requests/{complaint}/deny", headers=await staff_headers(pool, "compliance"), json={
        "reason_code": "other", "explanation": "The claim is still pending."})
    assert r.status_code == 200, r.text
    outcome = " ".join(text_of(await wait_for_letter(mail_sink, complaint, "denial")).split())
    assert "If you are not satisfied with the outcome of your complaint" in outcome
    assert "Information Commissioner's Office" in outcome
    assert "Your right to complain to us" not in outcome and "/portal/complaints" not in outcome

    # Evidence: the receipt (with the date to acknowledge by), the acknowledgement and the outcome, dated.
    events = (await http.get(f"/v1/requests/{complaint}/events", headers=await staff_headers(pool))).json()["events"]
    received_event = next(e for e in events if e["event_type"] == "request.received")
    assert received_event["data"]["acknowledge_by"] == row["acknowledge_by"].isoformat()
    sent = {e["data"]["purpose"]: e for e in events if e["event_type"] == "letter.sent"}
    assert {"acknowledgement", "denial"} <= set(sent) and all(sent[p]["occurred_at"] for p in sent)
    assert sent["denial"]["data"]["refusal"] is True
