"""A denial's ground must be one the request's law has (schemas/requests.py `denial_reasons`).
PIPEDA and the LGPD know no "manifestly unfounded or excessive" ground; before, compliance could
deny a Canadian's access request as excessive and the letter refused it on nothing the law says
(it cites no article there). Now the workflow refuses such a denial naming the law and the way
out, and nothing is closed or sent; the same request denied on `other`, with its explanation, is.
Over the real app, worker, PostgreSQL and Temporal dev server."""

from __future__ import annotations

import re

import pytest

from schemas.requests import DenialReason, denial_reasons
from tests.support import console_sign_in, letters_for, staff_headers, unique_email, wait_for_letter


def test_the_grounds_each_law_offers():
    for regime in ("gdpr", "uk_gdpr", "ccpa", "vcdpa", "ctdpa", "cpa"):
        assert denial_reasons(regime) == list(DenialReason), regime
    for regime in ("pipeda", "lgpd"):
        assert denial_reasons(regime) == [DenialReason.identity_not_established, DenialReason.other], regime


@pytest.mark.parametrize("regime", ["pipeda", "lgpd"])
async def test_a_denial_on_a_ground_the_law_lacks_is_refused_and_changes_nothing(http, pool, mail_sink, regime):
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "regime": regime, "subject": {"email": unique_email(f"grounds-{regime}")}})
    assert r.status_code == 201, r.text
    request_id = r.json()["id"]
    await wait_for_letter(mail_sink, request_id, "verification")
    compliance = await staff_headers(pool, "compliance")

    for reason in ("manifestly_unfounded", "excessive"):
        r = await http.post(f"/v1/requests/{request_id}/deny", headers=compliance, json={
            "reason_code": reason, "explanation": "Ten requests this week."})
        assert r.status_code == 409, r.text
        assert f"under {regime.upper()} cannot be denied as {reason}" in r.text
        assert "deny it as other" in r.text
    # The console's deny form offers only the grounds the law has.
    await console_sign_in(http, pool, "compliance")
    page = (await http.get(f"/console/requests/{request_id}")).text
    http.cookies.clear()
    deny_form = page[page.index('name="reason_code"'):]
    offered = re.findall(r'<option value="(\w+)"', deny_form[:deny_form.index("</select>")])
    assert offered == ["identity_not_established", "other"], offered
    view = (await http.get(f"/v1/requests/{request_id}", headers=compliance)).json()
    assert view["status"] == "awaiting_verification"
    assert not letters_for(mail_sink, request_id, "denial")

    r = await http.post(f"/v1/requests/{request_id}/deny", headers=compliance, json={
        "reason_code": "other", "explanation": "The records hold another person's personal information."})
    assert r.status_code == 200, r.text
    await wait_for_letter(mail_sink, request_id, "denial")
