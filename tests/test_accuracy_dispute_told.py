"""Compliance records that the recipients of the data a recorded dispute of accuracy contests were
told of it (hDF): the CCPA's regulations have the dispute noted to any person to whom we disclose,
share or sell the information, PIPEDA has it made known to third parties having access to it. Over
REST (`record-dispute-told`) and on the console's request page, which says the telling is owed
until it is recorded; the timeline and the evidence pack show whom, and how. Requests stored as
intake stores them (no workflow: the correction is decided), in-process."""

from __future__ import annotations

import re

from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.requests_store import create_request
from policy.model import DEFAULT_POLICY
from schemas.requests import NewRequest
from tests.evidence_pages import readable
from tests.policy_once import policy_at
from tests.support import CSRF_FIELD, console_sign_in, staff_headers, unique_email

_STATEMENT = "My date of birth is 12 March 1984, not 21 March 1984: the passport copy I sent shows it."
_NOTE = "E-mailed the CRM and accounting providers' DPO contacts on 7 December 2026 (ticket 4411)."
_CRM = "Communication, e-mail server and client relationship management provider"
_FINANCE = "Financial services and accounting provider"
_REGISTRATION = "Account registration and authorisation provider"


async def refused_correction(pool, settings, label: str) -> str:
    """A CCPA correction denied, under the shipped policy, whose systems name recipients (the tests'
    own policy has no system): no plan, so every system of its version is the request's."""
    row, _ = await create_request(pool, NewRequest(type="rectification", regime="ccpa",
                                                   subject={"email": unique_email(label)}, identity_attested=True,
                                                   corrections={"birth_date": "1984-03-12"}),
                                  loaded_policy=policy_at(DEFAULT_POLICY), secret=load_secret_key(settings),
                                  actor="test", idempotency_key=None)
    await pool.execute("UPDATE dsr_requests SET status = 'denied' WHERE id = $1", row["id"])
    return str(row["id"])


async def _told(pool, rid: str) -> list[dict]:
    return [r["data"] for r in await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                                                "AND event_type = 'dispute.recipients_told' ORDER BY seq", rid)]


async def test_compliance_records_whom_a_dispute_was_passed_on_to_once_and_page_pack_and_timeline_show_it(
        http, pool, settings):
    rid = await refused_correction(pool, settings, "told")
    compliance, agent = await staff_headers(pool, "compliance"), await staff_headers(pool, "agent")
    url = f"/v1/requests/{rid}/record-dispute-told"
    body = {"recipients": ["financial_services", "communication_crm"], "note": _NOTE}

    assert (await http.post(url, json=body)).status_code == 401
    assert (await http.post(url, json=body, headers=agent)).status_code == 403
    missing = await http.post("/v1/requests/00000000-0000-4000-8000-000000000000/record-dispute-told",
                              json=body, headers=compliance)
    assert missing.status_code == 404, missing.text
    early = await http.post(url, json=body, headers=compliance)
    assert early.status_code == 409 and "No dispute of accuracy is recorded" in early.json()["detail"], early.text
    recorded = await http.post(f"/v1/requests/{rid}/record-dispute", json={"statement": _STATEMENT}, headers=compliance)
    assert recorded.status_code == 201, recorded.text

    # Until it is recorded, the page says the telling is owed: to every role; only compliance gets the form.
    await console_sign_in(http, pool, "agent")
    page = (await http.get(f"/console/requests/{rid}")).text
    assert 'id="dispute-owed"' in page and 'id="record-dispute-told"' not in page
    pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()["decisions"]["accuracy_dispute"]
    assert pack["owed"] and pack["recipients_told"] == [] and _FINANCE in pack["recipients_of_data"].values()

    # Only recipients that received data of the request's systems; a host of our systems is none.
    for keys, named in ((["communication_crm", "cloud_hosting"], "'cloud_hosting'"), (["nobody"], "'nobody'")):
        refused = await http.post(url, json={**body, "recipients": keys}, headers=compliance)
        assert refused.status_code == 422 and named in refused.json()["detail"], refused.text
        assert refused.json()["errors"][0]["field"] == "recipients"
    both = await http.post(url, json={**body, "none_to_tell": True}, headers=compliance)
    assert both.status_code == 422, both.text
    assert (await http.post(url, json={**body, "note": "by mail"}, headers=compliance)).status_code == 422

    for _ in range(2):  # the same key again records nothing more
        answer = await http.post(url, json=body, headers={**compliance, "Idempotency-Key": "t1"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["event_type"] == "dispute.recipients_told"
    other = await http.post(url, json={**body, "recipients": ["communication_crm"]},
                            headers={**compliance, "Idempotency-Key": "t1"})
    assert other.status_code == 409 and "that record is the one kept" in other.json()["detail"], other.text
    # By the names the policy gives them, in their order.
    assert await _told(pool, rid) == [{"recipients": ["communication_crm", "financial_services"],
                                       "names": [_CRM, _FINANCE], "none_to_tell": False, "note": _NOTE}]

    told = (await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()["decisions"]["accuracy_dispute"]
    assert not told["owed"] and [t["recipients"] for t in told["recipients_told"]] == [
        ["communication_crm", "financial_services"]]
    line = f"Recipients told of the dispute: {_CRM}; {_FINANCE} ({_NOTE})"
    shown = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text)
    assert line in shown and f"{_CRM}; {_FINANCE} (“{_NOTE}”)" in shown and "still owed" not in shown, shown
    await console_sign_in(http, pool, "compliance")  # who reads the timeline
    page = (await http.get(f"/console/requests/{rid}")).text
    assert 'id="dispute-owed"' not in page and line in readable(page)

    # Told in two steps (one recipient today, another next week), the panel says both, not the last alone.
    later = "Told the sign-in provider's DPO on 14 December 2026 (ticket 4419)."
    assert (await http.post(url, json={"recipients": ["registration_authorization"], "note": later},
                            headers=compliance)).status_code == 201
    panel = readable((await http.get(f"/console/requests/{rid}")).text.split('id="dispute-told"')[1].split("</div>")[0])
    assert f"{_CRM}; {_FINANCE} (“{_NOTE}”)" in panel and f"{_REGISTRATION} (“{later}”)" in panel, panel


async def test_a_later_dispute_is_owed_again_and_the_consoles_form_records_none_to_tell(http, pool, settings):
    rid = await refused_correction(pool, settings, "told-form")
    compliance = await staff_headers(pool, "compliance")
    for statement in (_STATEMENT, "And my postcode is 9000, not 9050: the letter I attached shows it."):
        assert (await http.post(f"/v1/requests/{rid}/record-dispute", json={"statement": statement},
                                headers=compliance)).status_code == 201
        if statement == _STATEMENT:
            assert (await http.post(f"/v1/requests/{rid}/record-dispute-told", headers=compliance,
                                    json={"recipients": ["communication_crm"], "note": _NOTE})).status_code == 201

    # A dispute recorded after the last telling is owed again (the pack and the page say so).
    pack = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text)
    assert "Telling the recipients of the data of the latest dispute is still owed" in pack, pack
    csrf = await console_sign_in(http, pool, "agent")
    forged = {"csrf_token": csrf, "none_to_tell": "yes", "note": "Nobody had the postcode at all."}
    refused = await http.post(f"/console/requests/{rid}/record-dispute-told", data=forged)
    assert refused.status_code == 403 and len(await _told(pool, rid)) == 1

    await console_sign_in(http, pool, "compliance")
    page = (await http.get(f"/console/requests/{rid}")).text
    assert 'id="dispute-owed"' in page and 'id="record-dispute-told"' in page
    panel = page.split('id="dispute-told-form"')[1]
    assert re.findall(r'name="recipients" value="([^"]+)"', panel)[:2] == ["registration_authorization",
                                                                                "communication_crm"]
    form = {"csrf_token": CSRF_FIELD.search(page).group(1), "none_to_tell": "yes", "recipients": [],
            "note": "Nobody had the postcode: no system we share holds it.",
            "submission": re.search(r'name="submission" value="([^"]+)"', panel).group(1)}
    blank = await http.post(f"/console/requests/{rid}/record-dispute-told", data={**form, "none_to_tell": ""})
    assert "not both" in readable((await http.get(blank.headers["location"])).text)
    for _ in range(2):  # a double click records it once
        answer = await http.post(f"/console/requests/{rid}/record-dispute-told", data=form)
        assert answer.status_code == 303 and answer.headers["location"].endswith("#accuracy-dispute"), answer.text
    shown = readable((await http.get(answer.headers["location"])).text)
    assert "Recorded: who was told of the dispute is in the request's timeline and evidence pack." in shown
    assert ("No recipient to tell of the dispute: none had received the contested data "
            "(Nobody had the postcode: no system we share holds it.)") in shown, shown
    assert 'id="dispute-owed"' not in (await http.get(f"/console/requests/{rid}")).text
    assert [t["none_to_tell"] for t in await _told(pool, rid)] == [False, True]
