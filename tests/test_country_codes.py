"""A country is a code ISO 3166-1 assigns (schemas/countries.py), wherever one is taken: the staff
API, the public API, the console's and the portal's forms, and the policy's default and its
supervisory authorities. Codes of the right shape that name no country are refused naming the
field; UK and EL are taken as GB and GR; XK (Kosovo) is accepted."""

from __future__ import annotations

import copy
import re

import pytest

from policy.model import DEFAULT_POLICY, PolicyError, parse_policy
from schemas.countries import country_code
from tests.support import console_new_request, staff_headers, unique_email
from tests.test_portal import submit
from tests.yaml_files import read_yaml

UNASSIGNED = ["ZZ", "XX", "AA", "QM"]
RAW = read_yaml(DEFAULT_POLICY)


@pytest.mark.parametrize("typed", UNASSIGNED + ["zz", "qm"])
def test_codes_that_name_no_country_are_refused_saying_so(typed: str) -> None:
    with pytest.raises(ValueError, match=rf"^{typed.upper()} is not an ISO 3166-1 country code; use a code such as BE$"):
        country_code(typed)


@pytest.mark.parametrize(("typed", "stored"), [
    ("be", "BE"), (" fr ", "FR"), ("US", "US"), ("UK", "GB"), ("uk", "GB"), ("EL", "GR"), ("XK", "XK")])
def test_assigned_codes_and_the_eu_spellings_are_taken(typed: str, stored: str) -> None:
    assert country_code(typed) == stored


@pytest.mark.parametrize("typed", ["Belgium", "B", "ß", "B1", ""])
def test_a_wrong_shape_says_what_a_code_looks_like(typed: str) -> None:
    # "ß".upper() is "SS" (South Sudan): the shape is checked before the case is changed.
    with pytest.raises(ValueError, match="^must be a two-letter ISO 3166-1 country code such as BE$"):
        country_code(typed)


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.setdefault("defaults", {}).update(country="ZZ"),
     r"defaults\.country: .*ZZ is not an ISO 3166-1 country code"),
    (lambda c: c["supervisory_authorities"].update(ZZ=c["supervisory_authorities"]["BE"]),
     r"supervisory_authorities: .*key 'ZZ': ZZ is not an ISO 3166-1 country code"),
    # Found by a request's stored country, always upper-case and GB for UK: any other spelling
    # would never be found.
    (lambda c: c["supervisory_authorities"].update(UK=c["supervisory_authorities"]["BE"]),
     r"supervisory_authorities: .*key 'UK': write it as GB"),
])
def test_the_policys_countries_are_checked_alike(change, message: str) -> None:
    content = copy.deepcopy(RAW)
    change(content)
    with pytest.raises(PolicyError, match=message):
        parse_policy(content)


async def test_the_apis_refuse_an_unassigned_country_naming_the_field(http, pool):
    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    headers = await staff_headers(pool, "agent")
    for code in UNASSIGNED:
        expected = {"field": "country", "message": f"{code} is not an ISO 3166-1 country code; use a code such as BE"}
        staff = await http.post("/v1/requests", headers=headers, json={
            "type": "access", "country": code, "subject": {"email": unique_email("country")}})
        public = await http.post("/v1/public/requests", json={
            "type": "access", "country": code, "email": unique_email("country")})
        for response in (staff, public):
            assert response.status_code == 422, response.text
            assert response.json()["errors"] == [expected]
            assert response.json()["detail"] == f"country: {expected['message']}"
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before

    for typed, stored in (("uk", "GB"), ("XK", "XK")):
        made = await http.post("/v1/requests", headers=headers, json={
            "type": "access", "country": typed, "subject": {"email": unique_email("country")}})
        assert made.status_code == 201, made.text
        assert await pool.fetchval("SELECT country FROM dsr_requests WHERE id = $1::uuid", made.json()["id"]) == stored


async def test_the_console_form_shows_the_error_beside_the_field(http, pool):
    email = unique_email("console-country")
    bad = await console_new_request(http, pool, "agent", type="access", email=email, country="ZZ", regime="gdpr")
    assert bad.status_code == 422
    assert 'id="country-error"' in bad.text
    assert "ZZ is not an ISO 3166-1 country code; use a code such as BE" in bad.text
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0


@pytest.mark.parametrize(("language", "words"), [
    ("en", "Choose your country from the list, or leave it empty."),
    ("nl", "Kies uw land uit de lijst, of laat het leeg."),
    ("fr", "Choisissez votre pays dans la liste, ou laissez le champ vide."),
    ("de", "Wählen Sie Ihr Land aus der Liste aus oder lassen Sie das Feld leer."),
])
async def test_the_portal_form_says_so_in_the_subjects_language(http, pool, language: str, words: str):
    email = unique_email(f"portal-country-{language}")
    bad = await http.post("/portal/requests", params={"lang": language}, data={
        "type": "access", "email": email, "country": "ZZ", "language": language})
    assert bad.status_code == 422
    assert 'id="country-error"' in bad.text and words in bad.text
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0
    # The EU's spelling of the United Kingdom is the subject's country all the same.
    rid = await submit(http, type="access", email=email, country="uk", language=language)
    assert await pool.fetchval("SELECT country FROM dsr_requests WHERE id = $1::uuid", rid) == "GB"


@pytest.mark.parametrize(("language", "germany", "georgia", "before", "after"), [
    ("en", "Germany", "Georgia", "Egypt", "Spain"),
    ("nl", "Duitsland", "Georgië", "Egypte", "Spanje"),
    ("fr", "Allemagne", "Géorgie", "Égypte", "Espagne"),
    ("de", "Deutschland", "Georgien", "Ägypten", "Spanien"),
])
async def test_the_portal_lists_countries_by_their_names_in_the_subjects_language(
        http, pool, language, germany, georgia, before, after):
    """A subject picks their country by name: asked for its code, a German who typed GE was
    recorded as living in Georgia (and a refusal named the authority the policy lists for it, if
    any: Art. 77). Listed by
    the name as read, accents aside ("Égypte" among the E's, "Ägypten" among the A's)."""
    page = (await http.get("/portal", params={"lang": language})).text
    listed = re.findall(r'<option value="([A-Z]{2})"[^>]*>([^<]+)</option>', page)
    names = dict(listed)
    assert (names["DE"], names["GE"], names["BE"] != "BE") == (germany, georgia, True)
    assert len(listed) >= 249 and '<option value="">' in page  # every ISO country, and none given
    order = [name for _, name in listed]
    assert order.index(before) < order.index(after)
    # A form sent back with an error keeps the country chosen.
    email = unique_email(f"portal-pick-{language}")
    bad = await http.post("/portal/requests", params={"lang": language}, data={
        "email": "not-an-address", "country": "DE", "language": language})
    assert bad.status_code == 422 and '<option value="DE" selected>' in bad.text
    rid = await submit(http, type="access", email=email, country="DE", language=language)
    assert await pool.fetchval("SELECT regime || ' ' || country FROM dsr_requests WHERE id = $1::uuid", rid) == "gdpr DE"
