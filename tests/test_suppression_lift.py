"""A subject who objected to direct marketing and later consents to it again: compliance takes the
address off the suppression list, on record in the objection's trail. Before, nothing could: the
address stayed refused to every import for good, whatever the subject asked for later. Over REST,
and on the console's "Marketing suppressions" page (api/console/suppressions.py), whose buttons
tests/test_browser_every_button.py presses in a browser."""

from __future__ import annotations

import html
import re
import uuid

from dsrflow.crypto.hashing import suppression_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.support import console_sign_in, staff_headers, unique_email

CONSENT = "Subscribed again through the newsletter form on 3 December 2026 (double opt-in confirmed)"


async def _suppressed(http, pool, email: str) -> bool:
    r = await http.post("/v1/suppressions/check", headers=await staff_headers(pool, "agent"), json={"emails": [email]})
    assert r.status_code == 200, r.text
    return r.json()["suppressed"] == [email]


async def suppressed_objection(pool, settings, email: str) -> str:
    """An objection to direct marketing by `email`, stored without its workflow, and the address
    on the list under it, as the objection's fan-out leaves it (activities/fanout.py)."""
    objection = NewRequest(type="objection", objection_scope="direct_marketing", subject={"email": email},
                           identity_attested=True)
    row, _ = await create_request(pool, objection, loaded_policy=load_policy(settings.policy_path),
                                  secret=load_secret_key(settings), actor="test", idempotency_key=None)
    await pool.execute("INSERT INTO suppressions (identifier_hash, scope, request_id) VALUES ($1, 'direct_marketing', $2)",
                       suppression_hash(load_secret_key(settings), email), row["id"])
    return str(row["id"])


async def test_compliance_takes_an_address_off_the_list_once_with_the_consent_on_record(http, pool, settings):
    email = unique_email("lift")
    rid = await suppressed_objection(pool, settings, email)
    assert await _suppressed(http, pool, email)

    # An agent may check the list, not change it; a consent must say something.
    body = {"email": email.upper(), "consent": CONSENT}  # as an importer may write it
    refused = await http.post("/v1/suppressions/lift", headers=await staff_headers(pool, "agent"), json=body)
    assert refused.status_code == 403
    vague = await http.post("/v1/suppressions/lift", headers=await staff_headers(pool, "compliance"),
                            json={**body, "consent": "yes"})
    assert vague.status_code == 422 and "consent" in vague.text
    assert await _suppressed(http, pool, email)

    lifted = await http.post("/v1/suppressions/lift", headers=await staff_headers(pool, "compliance"), json=body)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json() == {"lifted": True, "objection_request": rid}
    assert not await _suppressed(http, pool, email)

    again = await http.post("/v1/suppressions/lift", headers=await staff_headers(pool, "compliance"), json=body)
    assert again.status_code == 404 and again.json()["title"] == "Not suppressed"
    events = await http.get(f"/v1/requests/{rid}/events", headers=await staff_headers(pool, "compliance"))
    lifts = [e for e in events.json()["events"] if e["event_type"] == "suppression.lifted"]
    assert len(lifts) == 1 and lifts[0]["data"] == {"scope": "direct_marketing", "consent": CONSENT}
    assert lifts[0]["actor"].startswith("compliance:")  # who took it off


def _rows(page: str) -> dict[str, str]:
    """The page's table: each address's row, as text."""
    table = page.split('<table id="suppressions">')[1].split("</table>")[0]
    return {html.unescape(re.sub(r"<[^>]+>", "", cells[0]).strip()): re.sub(r"\s+", " ", html.unescape(
                re.sub(r"<[^>]+>", " ", "".join(cells[1:])))).strip()
            for cells in (re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in table.split("<tr")[2:])}


async def test_the_consoles_page_checks_for_every_role_and_lifts_for_compliance_only(http, pool, settings):
    """An agent pastes addresses and reads, for each, whether it is on the list, since when and
    from which objection, with no way to lift it (a forged lift is refused, nothing changes);
    compliance lifts it with the consent's evidence, refused while that is empty. Every address
    travels in a posted form, never in a page's address."""
    email, other = unique_email("console.lift"), unique_email("console.clean")
    rid = await suppressed_objection(pool, settings, email)
    pasted = f"{email.upper()}, {other}\nnot-an-address"
    csrf = await console_sign_in(http, pool, "agent")
    page = await http.get("/console/suppressions")
    assert page.status_code == 200 and 'href="/console/suppressions">Marketing suppressions</a>' in page.text
    checked = await http.post("/console/suppressions/check", data={"csrf_token": csrf, "addresses": pasted})
    assert checked.status_code == 200, checked.text
    assert email not in str(checked.url) and email.upper() not in str(checked.url)
    rows = _rows(checked.text)
    assert list(rows) == [email.upper(), other, "not-an-address"]
    assert rows[email.upper()].startswith("Suppressed") and short_reference(rid) in rows[email.upper()]
    assert f'href="/console/requests/{rid}"' in checked.text
    assert rows[other] == "Not on the list" and rows["not-an-address"] == "Not an e-mail address: not checked"
    assert "Lift" not in checked.text and "/console/suppressions/lift" not in checked.text
    empty = await http.post("/console/suppressions/check", data={"csrf_token": csrf, "addresses": " ,\n"})
    assert empty.status_code == 422 and "Paste at least one e-mail address." in empty.text

    forged = await http.post("/console/suppressions/lift", data={
        "csrf_token": csrf, "addresses": email, "email": email, f"consent:{email}": CONSENT})
    assert forged.status_code == 403
    assert "taking an address off the suppression list needs the compliance role; you are agent" in forged.text
    assert await _suppressed(http, pool, email)

    csrf = await console_sign_in(http, pool, "compliance")
    checked = await http.post("/console/suppressions/check", data={"csrf_token": csrf, "addresses": pasted})
    assert checked.text.count(">Lift</button>") == 1  # the suppressed address's alone
    stale = await http.post("/console/suppressions/lift", data={
        "addresses": pasted, "email": email.upper(), f"consent:{email.upper()}": CONSENT})
    assert stale.status_code == 403 and "CSRF check failed" in stale.text
    blank = await http.post("/console/suppressions/lift", data={
        "csrf_token": csrf, "addresses": pasted, "email": email.upper(), f"consent:{email.upper()}": "  "})
    assert blank.status_code == 422
    assert ("Write how and when the subject consented to direct marketing again (the evidence of their consent): "
            "nothing is lifted without it.") in html.unescape(blank.text)
    assert 'aria-invalid="true" aria-describedby="consent-1-error"' in blank.text
    assert _rows(blank.text)[email.upper()].startswith("Suppressed") and await _suppressed(http, pool, email)

    lifted = await http.post("/console/suppressions/lift", data={
        "csrf_token": csrf, "addresses": pasted, "email": email.upper(), f"consent:{email.upper()}": CONSENT})
    assert lifted.status_code == 200, lifted.text
    assert f"Taken off the list: {email.upper()}." in re.sub(r"<[^>]+>|\s+(?=\s)", "", lifted.text)
    assert _rows(lifted.text)[email.upper()] == "Not on the list" and not await _suppressed(http, pool, email)
    again = await http.post("/console/suppressions/lift", data={
        "csrf_token": csrf, "addresses": pasted, "email": email.upper(), f"consent:{email.upper()}": CONSENT})
    assert again.status_code == 404 and "is not on the list (any more): nothing was lifted" in again.text
    request_page = await http.get(f"/console/requests/{rid}")
    assert f"Taken off the direct-marketing list: the subject consented again ({CONSENT})" in html.unescape(
        request_page.text)
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                               "AND event_type = 'suppression.lifted'", uuid.UUID(rid)) == 1
