"""An appeal is the same subject's follow-up of a refused request (dsrflow/domain/appeals.py): it
takes that request's country, as it takes its regime, unless the appeal states one. Over the real
app, worker, PostgreSQL and Temporal dev server."""

from __future__ import annotations

import re

import pytest

from tests.support import console_new_request, refused_erasure, staff_headers, unique_email


async def _country(pool, request_id: str) -> str:
    return await pool.fetchval("SELECT country FROM dsr_requests WHERE id = $1::uuid", request_id)


async def test_an_appeal_takes_the_appealed_requests_country_unless_it_states_one(http, pool, mail_sink):
    email = unique_email("appeal-country")
    refused, _ = await refused_erasure(http, pool, mail_sink, email, "vcdpa", "US")  # a Virginian's

    # The subject appeals through the public intake, saying nothing of their country: they are
    # still the Virginian they were, not a subject in the policy's default country (BE).
    public = await http.post("/v1/public/requests", json={"type": "erasure", "email": email, "appeal_of": refused})
    assert public.status_code == 202, public.text
    assert await _country(pool, public.json()["id"]) == "US"

    # Staff open one (as from a letter): the same. A country the appeal states is newer news.
    headers = await staff_headers(pool, "agent")
    for stated, stored in ((None, "US"), ("CA", "CA")):
        r = await http.post("/v1/requests", headers=headers, json={
            "type": "erasure", "appeal_of": refused, "subject": {"email": email},
            **({"country": stated} if stated else {})})
        assert r.status_code == 201, r.text
        assert await _country(pool, r.json()["id"]) == stored


async def test_a_request_without_a_country_is_in_the_country_of_its_law(http, pool):
    """Staff choose the law; without a country the request was stored in the policy's default
    country whatever the law (a Virginian's VCDPA request in Belgium), and its appeal with it."""
    headers = await staff_headers(pool, "agent")
    for regime, stored in (("vcdpa", "US"), ("lgpd", "BR"), ("pipeda", "CA"), ("uk_gdpr", "GB"), ("gdpr", "BE")):
        r = await http.post("/v1/requests", headers=headers, json={
            "type": "access", "regime": regime, "subject": {"email": unique_email(f"law-{regime}")}})
        assert r.status_code == 201, r.text
        assert (r.json()["country"], await _country(pool, r.json()["id"])) == (stored, stored), regime


@pytest.mark.parametrize(("regime", "state"), [("ccpa", "California"), ("vcdpa", "Virginia"),
                                               ("ctdpa", "Connecticut"), ("cpa", "Colorado")])
async def test_a_us_state_law_is_refused_for_a_subject_outside_the_united_states(http, pool, regime, state):
    """Each of the four US state laws protects its own state's residents only. Before, staff could
    open a CCPA request for a Belgian subject, and its letters promised them that law's 45 days and
    an appeal. Now refused naming the country, nothing stored; US, or no country, is taken."""
    headers = await staff_headers(pool, "agent")
    email = unique_email(f"outside-{regime}")
    r = await http.post("/v1/requests", headers=headers, json={
        "type": "access", "regime": regime, "country": "BE", "subject": {"email": email}})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "country", "message": f"the {regime.upper()} protects residents of "
                                   f"{state} only, and BE is not the United States: give US (or no country), "
                                   "or choose the law that protects this subject"}]
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0
    r = await http.post("/v1/requests", headers=headers, json={
        "type": "access", "regime": regime, "country": "US", "subject": {"email": email}})
    assert r.status_code == 201, r.text


async def test_the_other_laws_go_with_any_country_and_the_console_names_the_field(http, pool):
    """The GDPR, the UK GDPR, the LGPD and PIPEDA apply by where the controller is and what it does,
    not by where the subject lives: a US subject under the GDPR is taken. The console's form shows
    the refusal beside the country field."""
    headers = await staff_headers(pool, "agent")
    for regime in ("gdpr", "uk_gdpr", "lgpd", "pipeda"):
        r = await http.post("/v1/requests", headers=headers, json={
            "type": "access", "regime": regime, "country": "US", "subject": {"email": unique_email(f"any-{regime}")}})
        assert r.status_code == 201, (regime, r.text)

    email = unique_email("outside-console")
    refused = await console_new_request(http, pool, "agent", type="erasure", email=email, regime="ccpa", country="FR")
    assert refused.status_code == 422
    error = re.search(r'<p class="error" id="country-error">(.*?)</p>', refused.text, re.S)
    assert error and "protects residents of California only" in error.group(1), re.findall(r'class="error"[^\n]*', refused.text)
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0
