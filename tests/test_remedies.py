"""Refusals, whole or in part, name the remedies of the request's regime (Art. 12(4) GDPR and its
counterparts); staff cancellations and withdrawals; extensions a law does not allow; appeals under
the US state laws. End to end: the real app, a worker, Temporal, Postgres and the letters as the
SMTP sink stored them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity

from activities.letters import deliver_letter
from dsrflow.domain.deadlines import receipt_date_for
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date
from schemas.workflow import LetterJob, LetterReceipt, workflow_id_for
from tests.evidence_pages import readable
from tests.support import (
    api_client,
    assert_problem,
    console_sign_in,
    letters_for,
    live_view,
    staff_headers,
    text_of,
    unique_email,
    wait_for_due_date,
    wait_for_letter,
)
from tests.test_console_dates import ISO_DAY, policy_file
from workers.dsr_worker import activity_context, build_worker

BRUSSELS = "Gegevensbeschermingsautoriteit"
OTTAWA = "Office of the Privacy Commissioner of Canada"


async def _open(http, pool, *, email: str | None = None, request_type: str = "erasure", **fields) -> dict:
    """A request opened by an agent, not attested: it waits for the subject's identity."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": request_type, "subject": {"email": email or unique_email("remedy")}, **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def _events(http, pool, rid: str) -> list[dict]:
    r = await http.get(f"/v1/requests/{rid}/events", headers=await staff_headers(pool, "compliance"))
    return r.json()["events"]


async def test_closed_unverified_names_the_authority_of_the_regime(settings, pool, time_skipping, mail_sink, task_queue):
    """GDPR names the Belgian authority and the courts; PIPEDA the Privacy Commissioner of Canada
    and the Federal Court."""
    env, client = time_skipping, time_skipping.client
    async with build_worker(client, settings, pool, task_queue=task_queue), \
            api_client(settings, client, task_queue) as http:
        gdpr = (await _open(http, pool))["id"]
        # Access: the request PIPEDA s. 8 governs, whose refusal s. 8(7) rules (a deletion's credits no rule).
        pipeda = (await _open(http, pool, regime="pipeda", request_type="access"))["id"]
        for rid in (gdpr, pipeda):
            await wait_for_letter(mail_sink, rid, "verification")
        await env.sleep(timedelta(days=7, hours=1))  # the codes expire after seven days
        for rid in (gdpr, pipeda):
            assert (await client.get_workflow_handle(workflow_id_for(rid)).result())["status"] == "closed_unverified"
        eu = text_of(await wait_for_letter(mail_sink, gdpr, "closed_unverified"))
        ca = text_of(await wait_for_letter(mail_sink, pipeda, "closed_unverified"))
    assert BRUSSELS in eu and "Drukpersstraat 35" in eu and "Art. 79 GDPR" in eu and OTTAWA not in eu
    assert "As Article 12(4) GDPR requires" in eu
    assert OTTAWA in ca and "30 Victoria Street, Gatineau" in ca and "Federal Court" in ca and BRUSSELS not in ca
    assert "section 8(7)" in ca and "GDPR" not in ca.split("Your right to complain")[1]


async def test_staff_cancel_tells_the_subject_why_with_remedies_once(http, pool, mail_sink, dev_server):
    rid = (await _open(http, pool))["id"]
    await wait_for_letter(mail_sink, rid, "verification")
    compliance = await staff_headers(pool, "compliance")  # closing it unanswered refuses it: compliance's
    r = await http.post(f"/v1/requests/{rid}/cancel", headers=compliance,
                        json={"reason": "We already answered the same request last week."})
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert (await live_view(http, compliance, rid))["withdrawn_by_subject"] is False
    letter = await wait_for_letter(mail_sink, rid, "cancellation")
    text = text_of(letter)
    assert "closed your request without completing it" in text
    assert "We already answered the same request last week." in text
    assert BRUSSELS in text and "Your right to a judicial remedy" in text
    assert letter["Subject"].startswith("Your data protection request has been closed")

    again = await http.post(f"/v1/requests/{rid}/cancel", headers=compliance, json={"reason": "Second press"})
    assert_problem(again, 409)
    await dev_server.client.get_workflow_handle(workflow_id_for(rid)).result()
    assert len(letters_for(mail_sink, rid, "cancellation")) == 1
    cancelled = next(e for e in await _events(http, pool, rid) if e["event_type"] == "status.cancelled")
    assert cancelled["data"] == {"reason": "We already answered the same request last week.",
                                 "withdrawn_by_subject": False}
    sent = next(e for e in await _events(http, pool, rid)
                if e["event_type"] == "letter.sent" and e["data"]["purpose"] == "cancellation")
    assert sent["data"]["refusal"] is True


async def test_the_cancellation_letter_survives_a_worker_lost_after_sending(settings, pool, dev_server, mail_sink, task_queue):
    """The activity sends the letter, then dies before reporting (as a worker does): its retry
    finds the letter sent and sends nothing more."""
    ctx = activity_context(settings, pool)

    @activity.defn(name="send_letter")
    async def send_then_die(job: LetterJob) -> LetterReceipt:
        receipt = await deliver_letter(ctx, job)
        if job.purpose == "cancellation" and activity.info().attempt == 1:
            raise RuntimeError("worker lost after the relay accepted the message")
        return receipt

    client = dev_server.client
    async with build_worker(client, settings, pool, task_queue=task_queue, activity_overrides=[send_then_die]), \
            api_client(settings, client, task_queue) as http:
        rid = (await _open(http, pool))["id"]
        await wait_for_letter(mail_sink, rid, "verification")
        r = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "compliance"),
                            json={"reason": "Opened twice by mistake; the other request goes on."})
        assert r.status_code == 200, r.text
        await client.get_workflow_handle(workflow_id_for(rid)).result()
    assert len(letters_for(mail_sink, rid, "cancellation")) == 1
    assert await pool.fetchval("SELECT count(*) FROM sent_letters WHERE request_id = $1 AND purpose = 'cancellation'",
                               rid) == 1


async def test_a_withdrawal_is_recorded_as_such_and_confirmed_without_remedies(http, pool, mail_sink, dev_server):
    rid = (await _open(http, pool))["id"]
    await wait_for_letter(mail_sink, rid, "verification")
    r = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "agent"),
                        json={"reason": "The subject withdrew it by phone.", "withdrawn_by_subject": True})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert (await live_view(http, await staff_headers(pool, "agent"), rid))["withdrawn_by_subject"] is True
    letter = await wait_for_letter(mail_sink, rid, "cancellation")
    text = text_of(letter)
    assert letter["Subject"].startswith("You have withdrawn your data protection request")
    assert "As you asked, we have withdrawn your request" in text
    assert "If you did not ask us to withdraw this request" in text
    assert "complain" not in text and BRUSSELS not in text  # not a refusal
    await dev_server.client.get_workflow_handle(workflow_id_for(rid)).result()
    events = await _events(http, pool, rid)
    cancelled = next(e for e in events if e["event_type"] == "status.cancelled")
    assert cancelled["data"]["withdrawn_by_subject"] is True
    sent = [e for e in events if e["event_type"] == "letter.sent" and e["data"]["purpose"] == "cancellation"]
    assert len(sent) == 1 and sent[0]["data"]["refusal"] is False
    assert len(letters_for(mail_sink, rid, "cancellation")) == 1


async def test_extend_is_refused_where_the_law_allows_no_extension(http, pool, mail_sink, dev_server, settings,
                                                                   lifecycle_policy, task_queue, tmp_path):
    """LGPD: 15 days and no extension. The API answers 409 with the reason, nothing changes, and
    the console does not offer the button; a GDPR request still gets it. Pressed all the same (a
    form made by hand) on a German console, the refusal gives its due date as the page writes a day."""
    lgpd = (await _open(http, pool, regime="lgpd"))["id"]
    gdpr = (await _open(http, pool))["id"]
    due = await wait_for_due_date(pool, lgpd)
    await wait_for_due_date(pool, gdpr)
    r = await http.post(f"/v1/requests/{lgpd}/extend", headers=await staff_headers(pool, "compliance"),
                        json={"reason": "Six systems to search, and archived records."})
    body = assert_problem(r, 409)
    assert "(lgpd) allows no extension" in body["detail"] and due.isoformat() in body["detail"]
    view = (await http.get(f"/v1/requests/{lgpd}", headers=await staff_headers(pool, "agent"))).json()
    assert view["extended"] is False and view["current_due_date"] == due.isoformat()
    events = await _events(http, pool, lgpd)
    assert not any(e["event_type"] == "deadline.extended" for e in events)
    await asyncio.sleep(0.5)
    assert letters_for(mail_sink, lgpd, "extension") == []

    await console_sign_in(http, pool, "compliance")
    assert "Extend the deadline" not in (await http.get(f"/console/requests/{lgpd}")).text
    assert "Extend the deadline" in (await http.get(f"/console/requests/{gdpr}")).text
    german = policy_file(lifecycle_policy, tmp_path / "german-staff.yaml",
                         lambda content: content["languages"].update(staff="de"))
    async with api_client(settings.model_copy(update={"policy_path": german}), dev_server.client, task_queue) as de:
        csrf = await console_sign_in(de, pool, "compliance")
        refused = await de.post(f"/console/requests/{lgpd}/extend",
                                data={"csrf_token": csrf, "reason": "Six systems to search, and archived records."})
    assert refused.status_code == 409
    assert f"it must be answered by {long_date(due, 'de')}" in readable(refused.text)
    assert ISO_DAY.findall(readable(refused.text)) == []
    for rid in (lgpd, gdpr):
        await dev_server.client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")


async def test_pipeda_extension_notice_names_the_commissioner(http, pool, mail_sink, dev_server):
    """PIPEDA s. 8(4): the notice of extension tells the subject they may complain of it."""
    rid = (await _open(http, pool, regime="pipeda"))["id"]
    await wait_for_due_date(pool, rid)
    r = await http.post(f"/v1/requests/{rid}/extend", headers=await staff_headers(pool, "compliance"),
                        json={"reason": "Six systems to search, and archived records."})
    assert r.status_code == 200, r.text
    text = text_of(await wait_for_letter(mail_sink, rid, "extension"))
    assert OTTAWA in text and "8(4)" in text
    await dev_server.client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")


async def _denied(http, pool, mail_sink, email: str, regime: str) -> tuple[str, str]:
    """An erasure of `email` under `regime`, denied by compliance: its id and the denial's text."""
    refused = (await _open(http, pool, email=email, regime=regime))["id"]
    await wait_for_letter(mail_sink, refused, "verification")
    r = await http.post(f"/v1/requests/{refused}/deny", headers=await staff_headers(pool, "compliance"), json={
        "reason_code": "other", "explanation": "The records are needed to defend a pending claim."})
    assert r.status_code == 200, r.text
    return refused, text_of(await wait_for_letter(mail_sink, refused, "denial"))


async def test_an_appeal_of_a_vcdpa_denial_opens_with_its_own_deadline(http, pool, mail_sink, dev_server, settings):
    email = unique_email("appeal")
    refused, denial = await _denied(http, pool, mail_sink, email, "vcdpa")
    compliance = await staff_headers(pool, "compliance")
    assert "Your right to appeal" in denial and "within 60 days" in denial
    assert "Attorney General of Virginia" in denial and BRUSSELS not in denial
    # The appeal names the reference the subject was given, never the internal id.
    assert f"appeal our decision on request {short_reference(refused)}" in denial and refused not in denial

    # The subject appeals through the public intake: the appeal takes the refused request's regime.
    r = await http.post("/v1/public/requests", json={"type": "erasure", "email": email, "appeal_of": refused})
    assert r.status_code == 202, r.text
    appeal = r.json()["id"]
    view = (await http.get(f"/v1/requests/{appeal}", headers=compliance)).json()
    assert view["regime"] == "vcdpa" and view["details"]["appeal_of"] == refused
    due = await wait_for_due_date(pool, appeal)
    received = receipt_date_for(await pool.fetchval("SELECT received_at FROM dsr_requests WHERE id = $1", appeal),
                                "Europe/Brussels", "vcdpa")
    assert due == received + timedelta(days=60)  # Va. Code § 59.1-577(C), not the 45 days of a request
    acknowledgement = text_of(await wait_for_letter(mail_sink, appeal, "acknowledgement"))
    assert f"Appeal of: request {short_reference(refused)}" in acknowledgement and refused not in acknowledgement

    # Refusing the appeal names the Attorney General, and no further appeal.
    r = await http.post(f"/v1/requests/{appeal}/deny", headers=compliance, json={
        "reason_code": "other", "explanation": "We reviewed the decision and confirm it."})
    assert r.status_code == 200, r.text
    final = text_of(await wait_for_letter(mail_sink, appeal, "denial"))
    assert "Attorney General of Virginia" in final and "Your right to appeal" not in final
    for rid in (refused, appeal):
        await dev_server.client.get_workflow_handle(workflow_id_for(rid)).result()


async def test_an_appeal_must_refer_to_a_refused_request_of_the_same_subject(http, pool, mail_sink, dev_server):
    agent = await staff_headers(pool, "agent")
    email = unique_email("appeal")
    open_one = (await _open(http, pool, email=email, regime="vcdpa"))["id"]
    gdpr_denied = (await _open(http, pool, email=email))["id"]
    await wait_for_letter(mail_sink, gdpr_denied, "verification")
    r = await http.post(f"/v1/requests/{gdpr_denied}/deny", headers=await staff_headers(pool, "compliance"),
                        json={"reason_code": "other", "explanation": "Needed for a pending claim."})
    assert r.status_code == 200, r.text
    await wait_for_letter(mail_sink, gdpr_denied, "denial")

    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    cases = [
        ({"appeal_of": "00000000-0000-4000-8000-000000000000"}, email, "appeal_of", "no request"),
        ({"appeal_of": open_one}, unique_email("other"), "appeal_of", "no request"),  # another subject's
        ({"appeal_of": open_one}, email, "appeal_of", "not refused"),
        ({"appeal_of": gdpr_denied}, email, "appeal_of", "grants no appeal"),
        ({"appeal_of": "not-a-uuid"}, email, "appeal_of", "UUID"),
    ]
    for extra, subject, field, words in cases:
        r = await http.post("/v1/requests", headers=agent, json={
            "type": "erasure", "subject": {"email": subject}, **extra})
        body = assert_problem(r, 422)
        assert [e["field"] for e in body["errors"]] == [field], body
        assert words in body["detail"], body
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before  # nothing half-written
    for rid in (open_one,):
        await dev_server.client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")


async def test_an_appeal_can_quote_the_short_reference_its_letters_give(http, pool, mail_sink, dev_server):
    """The letters tell the subject to quote the short reference (never the internal id): the public
    intake takes it, typed as people type it, and records the appealed request's id."""
    email = unique_email("appeal-ref")
    refused, denial = await _denied(http, pool, mail_sink, email, "ctdpa")
    compliance = await staff_headers(pool, "compliance")
    reference = short_reference(refused)
    assert reference in denial and refused not in denial

    # Refused: a reference of no request, another subject's (answered alike: nothing about it is
    # revealed), something that is neither an id nor a reference. Nothing is stored.
    other_email = unique_email("appeal-ref-other")
    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    taken = {r["ref"] for r in await pool.fetch("SELECT dsr_reference(id) AS ref FROM dsr_requests")}
    unused = next(ref for ref in ("2" * 10, "3" * 10, "4" * 10) if ref not in taken)
    for appeal_of, subject, words in [(unused, email, f"no request {unused} of this data subject"),
                                      (reference, other_email, f"no request {reference} of this data subject"),
                                      ("REF-0000", email, "short reference")]:
        r = await http.post("/v1/public/requests", json={"type": "erasure", "email": subject, "appeal_of": appeal_of})
        body = assert_problem(r, 422)
        assert [e["field"] for e in body["errors"]] == ["appeal_of"], body
        assert words in body["detail"], body
        assert "ctdpa" not in body["detail"] and refused not in body["detail"]
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before

    # Typed as the subject types it: lower case, with a dash.
    typed = f"{reference[:5].lower()}-{reference[5:].lower()}"
    r = await http.post("/v1/public/requests", json={"type": "erasure", "email": email, "appeal_of": typed})
    assert r.status_code == 202, r.text
    appeal = r.json()["id"]
    view = (await http.get(f"/v1/requests/{appeal}", headers=compliance)).json()
    assert view["regime"] == "ctdpa" and view["details"]["appeal_of"] == refused
    acknowledgement = text_of(await wait_for_letter(mail_sink, appeal, "acknowledgement"))
    assert f"Appeal of: request {reference}" in acknowledgement
    await dev_server.client.get_workflow_handle(workflow_id_for(refused)).result()
    await dev_server.client.get_workflow_handle(workflow_id_for(appeal)).terminate("test over")


async def test_a_reference_naming_two_of_the_subjects_requests_is_refused():
    """dsr_reference is unique in the database; were two of the subject's requests to share one,
    the appeal is refused with the field named, rather than appealing one of them at random."""
    import uuid

    from dsrflow.domain.appeals import AppealRefused, check_appeal
    from schemas.requests import NewRequest

    rows = [{"id": uuid.uuid4(), "regime": "vcdpa", "request_type": "erasure", "subject_email": "A@example.org",
             "details": {}} for _ in range(2)]

    class _Conn:
        async def fetch(self, sql: str, *args: object) -> list[dict]:
            assert "dsr_reference(id) = $1" in sql and args == ("9WPSS9NUBP",)
            return rows

    new = NewRequest.model_validate({"type": "erasure", "subject": {"email": "a@example.org"},
                                     "appeal_of": "9wps-s9nu-bp"})
    try:
        await check_appeal(_Conn(), new)  # type: ignore[arg-type]
    except AppealRefused as refused:
        assert refused.field == "appeal_of" and "more than one of your requests" in str(refused)
    else:
        raise AssertionError("an ambiguous reference was accepted")
