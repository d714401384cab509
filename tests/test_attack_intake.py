"""Attacks on public intake the attacker audit of 2026-12-04 found beyond tests/test_intake_api.py
and tests/test_portal.py: the real app, worker, Temporal dev server and PostgreSQL
(docs/security.md, "Anonymous internet user")."""

from __future__ import annotations

import re

from dsrflow.domain.references import short_reference
from tests.support import refused_erasure, stored_request, unique_email


async def _appeal(http, email: str, appeal_of: str, type_: str = "access") -> tuple[int, str]:
    r = await http.post("/v1/public/requests", json={"type": type_, "email": email, "appeal_of": appeal_of})
    return r.status_code, r.json().get("detail", "")


async def _portal_appeal(http, email: str, appeal_of: str) -> tuple[int, str]:
    form = await http.get("/portal")
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    r = await http.post("/portal/requests", data={"submission": submission, "type": "access", "email": email,
                                                  "appeal_of": appeal_of})
    return r.status_code, re.sub(r"\s+", " ", r.text)


async def test_an_appeal_does_not_tell_a_stranger_whose_request_a_reference_is(http, pool, settings, mail_sink):
    """Someone holding a request's reference (a letter seen over a shoulder, a forwarded e-mail,
    the processor's link page) guesses the subject's address: they appeal the request in that
    name. Before, the owner's address got the reason that request could not be appealed ("the
    gdpr regime of that request grants no appeal", "was not refused", "of the same type
    (erasure)"), anyone else "no request ... of this data subject": one anonymous call confirmed
    who made a request, and told its type. Now every refusal of a public appeal reads the same,
    whoever's the address; nothing is stored; the owner's real appeal is still opened."""
    owner = unique_email("appealed")
    gdpr = short_reference(await stored_request(pool, settings, "appealed", email=owner))
    vcdpa = short_reference(await stored_request(pool, settings, "appealed", regime="vcdpa", email=owner))
    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    for reference, type_ in ((gdpr, "access"), (vcdpa, "access"), (vcdpa, "erasure")):
        theirs = await _appeal(http, owner, reference, type_)
        strangers = await _appeal(http, unique_email("stranger"), reference, type_)
        assert theirs == strangers and theirs[0] == 422, (theirs, strangers)
        assert "gdpr" not in theirs[1] and "(erasure)" not in theirs[1] and "(access)" not in theirs[1]
    portal = await _portal_appeal(http, owner, gdpr), await _portal_appeal(http, unique_email("stranger"), gdpr)
    assert portal[0][0] == portal[1][0] == 422
    assert "grants no appeal" not in portal[0][1] and "No request" in portal[0][1] and "No request" in portal[1][1]
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before

    # The owner's appeal of a request we refused is still opened.
    refused, _ = await refused_erasure(http, pool, mail_sink, owner, "vcdpa")
    assert (await _appeal(http, unique_email("stranger"), short_reference(refused), "erasure"))[0] == 422
    opened = await http.post("/v1/public/requests", json={"type": "erasure", "email": owner,
                                                          "appeal_of": short_reference(refused)})
    assert opened.status_code == 202, opened.text
