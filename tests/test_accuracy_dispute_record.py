"""Staff record a subject's dispute of the accuracy of their data against a correction we refused
(hCQ): the refusal's letter offers it under the CCPA and PIPEDA (tests/test_letter_accuracy_dispute.py).
Compliance records the statement over REST or on the console's request page; it is an audit event,
`dispute.recorded`, which the request's events, its evidence pack and its timeline show as written.
One request stored as intake stores it (no workflow: the request is decided), in-process."""

from __future__ import annotations

import re

from tests.evidence_pages import readable
from tests.support import CSRF_FIELD, console_sign_in, staff_headers, stored_request

_STATEMENT = "My date of birth is 12 March 1984, not 21 March 1984: the passport copy I sent shows it."
_BY_FORM = "I never lived at Kerkstraat 5; my address since 2019 is Veldstraat 12, Gent."
_EVENT = "Subject's dispute of the accuracy of their data recorded"


async def _decided_correction(pool, settings, label: str, status: str = "denied", type_: str = "rectification") -> str:
    rid = await stored_request(pool, settings, label, type_=type_, regime="ccpa",
                               corrections={"birth_date": "1984-03-12"} if type_ == "rectification" else None)
    await pool.execute("UPDATE dsr_requests SET status = $2 WHERE id = $1::uuid", rid, status)
    return rid


async def test_compliance_records_the_subjects_statement_once_and_the_pack_and_timeline_show_it(http, pool, settings):
    rid = await _decided_correction(pool, settings, "dispute")
    compliance, agent = await staff_headers(pool, "compliance"), await staff_headers(pool, "agent")
    url = f"/v1/requests/{rid}/record-dispute"

    assert (await http.post(url, json={"statement": _STATEMENT}, headers=agent)).status_code == 403
    assert (await http.post(url, json={"statement": "wrong"}, headers=compliance)).status_code == 422
    for _ in range(2):  # the same key again records nothing more
        answer = await http.post(url, json={"statement": _STATEMENT}, headers={**compliance, "Idempotency-Key": "k1"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["event_type"] == "dispute.recorded"
    other = await http.post(url, json={"statement": _BY_FORM}, headers={**compliance, "Idempotency-Key": "k1"})
    assert other.status_code == 409 and "that statement is the one recorded" in other.json()["detail"], other.text
    events = (await http.get(f"/v1/requests/{rid}/events", headers=compliance)).json()
    recorded = [e for e in events["events"] if e["event_type"] == "dispute.recorded"]
    assert [e["data"]["statement"] for e in recorded] == [_STATEMENT], recorded

    pack = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text)
    assert f"{_EVENT} ({_STATEMENT})" in pack, pack

    # The console: an agent sees no form; compliance records a second statement from the page.
    await console_sign_in(http, pool, "agent")
    assert 'id="record-dispute"' not in (await http.get(f"/console/requests/{rid}")).text
    await console_sign_in(http, pool, "compliance")
    page = (await http.get(f"/console/requests/{rid}")).text
    assert 'id="record-dispute"' in page
    form = {"csrf_token": CSRF_FIELD.search(page).group(1), "statement": _BY_FORM,
            "submission": re.search(r'name="submission" value="([^"]+)"', page.split('id="accuracy-dispute"')[1]).group(1)}
    for _ in range(2):  # a double click records it once
        answer = await http.post(f"/console/requests/{rid}/record-dispute", data=form)
        assert answer.status_code == 303 and answer.headers["location"].endswith("#accuracy-dispute"), answer.text
    shown = readable((await http.get(answer.headers["location"])).text)
    assert "Recorded: the subject's statement is in the request's timeline and evidence pack." in shown
    assert f"{_EVENT} ({_BY_FORM})" in shown, shown
    count = await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid "
                                "AND event_type = 'dispute.recorded'", rid)
    assert count == 2


async def test_a_dispute_is_refused_on_another_request_or_a_correction_not_yet_decided(http, pool, settings):
    compliance = await staff_headers(pool, "compliance")
    for label, status, type_ in (("dispute-access", "denied", "access"),
                                 ("dispute-running", "in_progress", "rectification")):
        rid = await _decided_correction(pool, settings, label, status, type_)
        answer = await http.post(f"/v1/requests/{rid}/record-dispute", json={"statement": _STATEMENT},
                                 headers=compliance)
        assert answer.status_code == 409, answer.text
        assert (type_ if type_ != "rectification" else status) in answer.json()["detail"]
