"""An appeal is the same subject's follow-up of a refused request (dsrflow/domain/appeals.py): it
takes that request's country, as it takes its regime, unless the appeal states one. Over the real
app, worker, PostgreSQL and Temporal dev server."""

from __future__ import annotations

from tests.support import refused_vcdpa_erasure, staff_headers, unique_email


async def _country(pool, request_id: str) -> str:
    return await pool.fetchval("SELECT country FROM dsr_requests WHERE id = $1::uuid", request_id)


async def test_an_appeal_takes_the_appealed_requests_country_unless_it_states_one(http, pool, mail_sink):
    email = unique_email("appeal-country")
    refused = await refused_vcdpa_erasure(http, pool, mail_sink, email, country="US")  # a Virginian's

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
