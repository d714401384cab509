"""A UK subject complains to us about a refusal (Data Protection Act 2018 s. 164A) through the
portal's complaint form, the one the refusal's letter links to: over HTTP, the real app, worker,
PostgreSQL and Temporal dev server. The complaint is a request that refers to the refused one
(dsrflow/domain/appeals.py), acknowledged at once, with the 30 days to acknowledge and our target
for its outcome as its dates; receipt, acknowledgement and outcome are audited events, and its
outcome names the Information Commissioner, not a second complaint to us."""

from __future__ import annotations

import copy
import html
import re
from datetime import timedelta

from markupsafe import escape

from activities.context import ActivityContext
from activities.lifecycle import LifecycleActivities
from activities.mail import Mailer
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.domain.deadlines import receipt_date_for
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy, parse_policy
from schemas.requests import NewRequest
from schemas.workflow import StartRequest, workflow_id_for
from tests.conftest import raw_client
from tests.support import (
    console_sign_in,
    refused_erasure,
    staff_headers,
    stored_request,
    text_of,
    unique_email,
    wait_for_letter,
)


async def _refused_uk_erasure(http, pool, mail_sink, email: str) -> tuple[str, str]:
    """A UK erasure compliance denied: its id, and the text of the denial letter the subject got."""
    refused, denial = await refused_erasure(http, pool, mail_sink, email, "uk_gdpr", "GB")
    return refused, text_of(denial)


HOSTILE = '<script>alert("reasons")</script>\n<b>You kept my invoices</b> & ignored my letter.'


async def _reasons_kept_for_compliance_alone(http, pool, dev_server, complaint: str) -> None:
    """A complaint's reasons are the subject's words about our decision: compliance, who decide it,
    read them on its console page and in its evidence pack, escaped; an agent, the REST view and
    the workflow's history in the Temporal server never hold them."""
    escaped = str(escape(HOSTILE))  # as Jinja escapes it
    await console_sign_in(http, pool, "compliance")
    page = (await http.get(f"/console/requests/{complaint}")).text
    assert escaped in page and "<script>alert" not in page and "<b>You kept" not in page
    assert "<dt>Complaint about</dt>" in page and "<dt>Appeal of</dt>" not in page  # not an appeal
    await console_sign_in(http, pool, "agent")
    page = (await http.get(f"/console/requests/{complaint}")).text
    assert "invoices" not in page and "compliance, who decide the complaint, read them here" in page
    http.cookies.clear()
    view = (await http.get(f"/v1/requests/{complaint}", headers=await staff_headers(pool, "agent"))).json()
    assert "complaint_reasons" not in view["details"] and "invoices" not in str(view)

    compliance = await staff_headers(pool, "compliance")
    # Compliance read them in the REST view too, as stored (JSON: no markup to escape).
    view = (await http.get(f"/v1/requests/{complaint}", headers=compliance)).json()
    assert view["details"]["complaint_reasons"] == HOSTILE
    pack = (await http.get(f"/v1/requests/{complaint}/evidence", headers=compliance)).json()
    assert pack["request"]["complaint_reasons"] == HOSTILE and "complaint_reasons" not in pack["request"]["details"]
    printed = (await http.get(f"/v1/requests/{complaint}/evidence.html", headers=compliance)).text
    assert escaped in printed and "<script>alert" not in printed and "<b>You kept" not in printed
    assert "<dt>Complaint about</dt>" in printed and "the subject's complaint about that refusal" in printed

    history = await raw_client(dev_server).get_workflow_handle(workflow_id_for(complaint)).fetch_history()
    assert "invoices" not in history.to_json()


async def test_a_uk_subject_complains_through_the_portals_form_and_is_acknowledged(http, pool, mail_sink, dev_server):
    email = unique_email("uk-complaint")
    refused, denial = await _refused_uk_erasure(http, pool, mail_sink, email)
    reference = short_reference(refused)

    # The refusal links to the form, open on the refused request.
    form_url = re.search(r"https?://\S+/portal/complaints\?about=(\w+)&lang=en", denial)
    assert form_url and form_url.group(1) == reference, denial
    page = await http.get("/portal" + form_url.group(0).split("/portal", 1)[1])
    assert page.status_code == 200 and f'value="{reference}"' in page.text

    # Someone else, with the reference but not the subject's address: refused, nothing stored. (The
    # reference is judged once the form is right otherwise: tests/test_attack_portal_depth.py.)
    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    stranger = await http.post("/portal/complaints", data={"about": reference, "email": unique_email("stranger"),
                                                           "language": "en", "complaint_reasons": "Why?"})
    assert stranger.status_code == 422
    assert (f"We have no request {reference} of yours that we refused, in whole or in part, under UK data "
            "protection law.") in html.unescape(stranger.text)
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before

    # The form asks what the complaint is about: without it, refused naming the field, nothing stored.
    unsaid = await http.post("/portal/complaints", data={"about": reference, "email": email, "language": "en"})
    assert unsaid.status_code == 422 and 'id="complaint_reasons-error"' in unsaid.text
    assert "Tell us what your complaint is about." in unsaid.text
    # Its languages send the complaint form back as typed, on the same request, not an empty form.
    assert ('<button type="submit" form="complaint-form" formaction="/portal/complaints?retype=1&amp;lang=fr"'
            in unsaid.text)
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before

    r = await http.post("/portal/complaints", data={"about": reference, "email": email, "language": "en",
                                                    "complaint_reasons": HOSTILE.replace("\n", "\r\n"),
                                                    "submission": "complaint-" + reference + "-0001"})
    assert r.status_code == 303, r.text[-1500:]
    complaint = r.headers["location"].split("/")[-2]
    row = await pool.fetchrow("SELECT regime, request_type, country, details FROM dsr_requests WHERE id = $1::uuid",
                              complaint)
    assert (row["regime"], row["request_type"], row["country"]) == ("uk_gdpr", "erasure", "GB")
    assert row["details"]["complaint_reasons"] == HOSTILE  # a browser's CRLF kept as one line break

    acknowledgement = await wait_for_letter(mail_sink, complaint, "acknowledgement")
    assert acknowledgement["Subject"] == f"We have received your complaint (ref. {short_reference(complaint)})"
    said = " ".join(text_of(acknowledgement).split())
    assert f"Thank you for your complaint about our decision on request {reference}." in said
    assert "tell you its outcome without undue delay" in said
    assert "We have received what you told us about it" in said and "invoices" not in acknowledgement.as_string()
    # The evidence pack's rule for its dates is the complaint's (s. 164A, our target), not a request's month.
    compliance = await staff_headers(pool, "compliance")
    rule = (await http.get(f"/v1/requests/{complaint}/evidence", headers=compliance)).json()["deadlines"]["basis"]
    assert "s. 164A" in rule["rule"] and "our target, 30 days from receipt" in rule["rule"], rule
    assert "one month" not in rule["rule"] and "bank holidays" not in rule["holidays"], rule
    # Our target has no extension under s. 164A: the refusal says so, not that the law allows none.
    r = await http.post(f"/v1/requests/{complaint}/extend", headers=compliance,
                        json={"reason": "We need more time to look into the complaint."})
    assert r.status_code == 409 and "(Data Protection Act 2018, s. 164A) has no extension" in r.text, r.text
    assert "our own target" in r.text and "the law of this request" not in r.text
    await _reasons_kept_for_compliance_alone(http, pool, dev_server, complaint)

    # Its dates: acknowledged within the 30 days that begin with its receipt, the outcome by our target.
    row = await pool.fetchrow("SELECT details, received_at, acknowledge_by, due_date, extended_due_date "
                              "FROM dsr_requests WHERE id = $1::uuid", complaint)
    assert row["details"]["appeal_of"] == refused
    received = receipt_date_for(row["received_at"], load_policy().policy.defaults.timezone, "uk_gdpr")
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


async def _refused(pool, settings, regime: str, email: str) -> str:
    """An erasure under `regime` stored as refused (its denial's `letter.sent`, as the letter
    activity records it), without running its workflow: what a complaint or an appeal names."""
    refused = await stored_request(pool, settings, f"refused-{regime}", type_="erasure", regime=regime, email=email)
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{refused}:test-denial", event_type="letter.sent", actor="workflow",
                           request_id=refused, data={"purpose": "denial", "refusal": True})
    return refused


async def test_the_api_takes_reasons_for_a_uk_complaint_alone(http, pool, settings):
    """`complaint_reasons` on POST /v1/public/requests: kept with a UK complaint; refused, naming the
    field, on any other request: too long, with a control character, without `appeal_of`, and on
    an appeal under a US state law, in the same words for its owner and for a stranger."""
    email = unique_email("uk-reasons")
    uk, us = [short_reference(await _refused(pool, settings, regime, email)) for regime in ("uk_gdpr", "vcdpa")]
    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")

    async def refused(body: dict, *, staff: bool = False) -> str:
        r = await (http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json=body) if staff
                   else http.post("/v1/public/requests", json=body))
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["field"] == "complaint_reasons", error
        return error["message"]

    erasure = {"type": "erasure", "email": email}
    assert "at most 2000 characters" in await refused({**erasure, "appeal_of": uk, "complaint_reasons": "x" * 2001})
    assert "control characters" in await refused({**erasure, "appeal_of": uk, "complaint_reasons": "a\x1b[2Jb"})
    assert "only applies to a complaint" in await refused({**erasure, "complaint_reasons": "Why?"})
    owners = await refused({**erasure, "appeal_of": us, "complaint_reasons": "Why?"})
    assert owners == await refused({**erasure, "email": unique_email("stranger"), "appeal_of": us,
                                    "complaint_reasons": "Why?"})
    assert owners.startswith(f"no request {us} of this data subject") and "takes reasons" in owners
    # Staff are told why (they opened the request, or may read the refused one).
    said = await refused({"type": "erasure", "subject": {"email": email}, "appeal_of": us,
                          "complaint_reasons": "Why?"}, staff=True)
    assert "an appeal under the vcdpa regime of that request takes none" in said
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before

    reasons = "You kept my invoices.\nPlease look again."
    r = await http.post("/v1/public/requests", json={**erasure, "appeal_of": uk, "complaint_reasons": reasons})
    assert r.status_code == 202, r.text
    assert (await pool.fetchval("SELECT details FROM dsr_requests WHERE id = $1::uuid",
                                r.json()["id"]))["complaint_reasons"] == reasons


async def test_staff_record_a_complaints_reasons_on_the_console_form(http, pool, settings):
    """A complaint made to us by telephone, post or e-mail: staff type its reasons on the console's
    new-request form; kept with the complaint, read by compliance in the REST view, by no agent;
    refused on any other request, naming the field, in the form."""
    email = unique_email("uk-console-reasons")
    uk, us = [short_reference(await _refused(pool, settings, regime, email)) for regime in ("uk_gdpr", "vcdpa")]
    csrf = await console_sign_in(http, pool, "agent")
    fields = {"csrf_token": csrf, "type": "erasure", "email": email, "channel": "post", "language": "en",
              "complaint_reasons": "You kept my invoices.\r\nPlease look again."}
    for appeal_of in ("", us):  # not a complaint; an appeal under the VCDPA
        refused = await http.post("/console/requests", data={**fields, "appeal_of": appeal_of})
        assert refused.status_code == 422 and 'id="complaint_reasons-error"' in refused.text, refused.text[-1500:]
        assert "Please look again.</textarea>" in refused.text  # what was typed comes back
    made = await http.post("/console/requests", data={**fields, "appeal_of": uk})
    assert made.status_code == 303, made.text[-1500:]
    complaint = made.headers["location"].rsplit("/", 1)[1]
    reasons = "You kept my invoices.\nPlease look again."
    assert (await pool.fetchval("SELECT details FROM dsr_requests WHERE id = $1::uuid",
                                complaint))["complaint_reasons"] == reasons
    http.cookies.clear()
    views = {role: (await http.get(f"/v1/requests/{complaint}", headers=await staff_headers(pool, role))).json()
             for role in ("agent", "compliance")}
    assert "complaint_reasons" not in views["agent"]["details"]
    assert views["compliance"]["details"]["complaint_reasons"] == reasons


async def test_a_complaints_due_date_is_the_target_of_its_policy_version(pool, settings):
    """`prepare_request` counts a UK complaint's due date with the target of the policy version the
    complaint runs under (`remedies.uk_gdpr.appeal.answer_days`), not a constant of 30 days."""
    content = copy.deepcopy(load_policy(settings.policy_path).content)
    content["remedies"]["uk_gdpr"]["appeal"]["answer_days"] = 45
    loaded = parse_policy(content)
    email = unique_email("uk-target")
    refused = await _refused(pool, settings, "uk_gdpr", email)
    row, _ = await create_request(pool, NewRequest(type="erasure", regime="uk_gdpr", appeal_of=refused,
                                                   subject={"email": email}, identity_attested=True),
                                  loaded_policy=loaded, secret=load_secret_key(settings), actor="test",
                                  idempotency_key=None)
    ctx = ActivityContext(pool=pool, settings=settings, mailer=Mailer(settings), secret=load_secret_key(settings))
    facts = await LifecycleActivities(ctx).prepare_request(StartRequest(request_id=str(row["id"]),
                                                                        policy_version=loaded.version))
    received = receipt_date_for(row["received_at"], loaded.policy.defaults.timezone, "uk_gdpr")
    assert (facts.acknowledge_by, facts.due_date, facts.extended_due_date) == (
        received + timedelta(days=29), received + timedelta(days=45), received + timedelta(days=45))
