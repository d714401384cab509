"""The Google Analytics User Deletion API on the wire, as its reference documents it: the
service-account JWT bearer grant (form-encoded, an assertion for the token URL with the
analytics.user.deletion scope, valid an hour at most), then one `userDeletionRequests:upsert` per
identifier with the resource {kind, id: {type, userId}, propertyId} as JSON and the Bearer token;
and what the stand-in refuses as Google does (a property id that is not the GA4 property's
number, a field the resource lacks, a body that is not JSON)."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import ValidationError

from activities.connectors.base import PermanentConnectorError
from devstack.saas.ga4 import SCOPE, UPSERT, new_service_account
from dsrflow.stores.requests_store import create_request
from policy.http_model import Identifier
from policy.model import DEFAULT_POLICY
from schemas.requests import NewRequest
from tests.saas_support import connector, google_served, http_policy, http_system, subject
from tests.yaml_files import read_yaml


@pytest.fixture
async def google(monkeypatch, tmp_path):
    async with google_served(monkeypatch, tmp_path) as (app, url):
        yield app, url, tmp_path


async def _erase(pool, tmp_path, values: list[tuple[str, str]]):
    loaded = http_policy(tmp_path, {"ga4": http_system("http/ga4.yaml", "Google Analytics 4")}, keep=("analytics",))
    row, _ = await create_request(pool, NewRequest(type="erasure", subject={"email": "tracked@example.com"}),
                                  loaded_policy=loaded, secret=b"s" * 32, actor="tests", idempotency_key=None)
    await pool.executemany(
        "INSERT INTO http_identifiers (request_id, system, id_type, value_hash, value) VALUES ($1, 'ga4', $2, $3, $4)",
        [(row["id"], kind, f"h{i}", value) for i, (kind, value) in enumerate(values)])
    connector_ = connector(loaded, "ga4", pool)
    try:
        return await connector_.erase(subject("tracked@example.com", str(row["id"])))
    finally:
        await connector_.close()


def _claims(assertion: str) -> dict:
    part = assertion.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def test_the_grant_and_each_upsert_are_what_google_documents(google, pool, monkeypatch):
    app, url, tmp = google
    outcome = await _erase(pool, tmp, [("CLIENT_ID", "GA1.1.111.222"), ("USER_ID", "C-0001")])
    assert outcome.status == "done"
    token, *upserts = app.state.standin.served
    assert (token.method, token.path, token.status) == ("POST", "/token", 200)
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(parse_qsl(token.body))
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer" and set(form) == {"grant_type", "assertion"}
    claims = _claims(form["assertion"])
    assert claims["aud"] == f"{url}/token" and claims["scope"] == SCOPE
    assert claims["exp"] - claims["iat"] <= 3600 and claims["iss"].endswith(".iam.gserviceaccount.com")
    property_id = app.state.data.requests[0]["propertyId"]
    assert [(u.method, u.path, u.status) for u in upserts] == [("POST", UPSERT, 200)] * 2
    assert sorted(json.loads(u.body)["id"]["type"] for u in upserts) == ["CLIENT_ID", "USER_ID"]
    for u in upserts:
        assert u.headers["content-type"] == "application/json"
        assert u.headers["authorization"].startswith("Bearer ")
        body = json.loads(u.body)
        assert set(body) == {"kind", "id", "propertyId"} and body["kind"] == "analytics#userDeletionRequest"
        assert body["propertyId"] == property_id and property_id.isdigit()


@pytest.mark.parametrize("property_id", ["properties/123456789", "G-ABC123DEF4"])
async def test_a_property_id_that_is_not_the_number_is_refused_and_named(google, pool, monkeypatch, property_id):
    """The GA4 Admin API writes properties as "properties/123456789" and a web stream has a
    "G-" measurement id: neither is the propertyId the User Deletion API takes."""
    _, _, tmp = google
    monkeypatch.setenv("GA4_PROPERTY_ID", property_id)
    with pytest.raises(PermanentConnectorError) as raised:
        await _erase(pool, tmp, [("CLIENT_ID", "GA1.1.1.1")])
    assert str(raised.value).startswith(
        "system ga4: Google Analytics 4 answered HTTP 400 to POST /userDeletion/userDeletionRequests:upsert "
        "(erase.user_deletion) [INVALID_ARGUMENT, invalid]")


async def test_the_stand_in_refuses_what_google_refuses(google):
    app, url, _ = google
    token = app.state.standin.tokens.issue()["access_token"]
    good = {"kind": "analytics#userDeletionRequest", "id": {"type": "CLIENT_ID", "userId": "GA1.1.1.1"},
            "propertyId": "123456789"}
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        answers = {
            "ok": await http.post(UPSERT, json=good),
            "form": await http.post(UPSERT, data={"propertyId": "123456789"}),
            "unknown field": await http.post(UPSERT, json={**good, "property_id": "123456789"}),
            "unknown id field": await http.post(UPSERT, json={**good, "id": {**good["id"], "value": "x"}}),
            "bad type": await http.post(UPSERT, json={**good, "id": {"type": "EMAIL", "userId": "a@b"}}),
            "no user id": await http.post(UPSERT, json={**good, "id": {"type": "USER_ID"}}),
            "universal analytics": await http.post(UPSERT, json={**{k: v for k, v in good.items() if k != "propertyId"},
                                                                 "webPropertyId": "UA-1234-1"}),
            "no token": await http.post(UPSERT, json=good, headers={"Authorization": ""}),
        }
    assert answers.pop("ok").json()["deletionRequestTime"].endswith("Z")
    assert answers.pop("no token").status_code == 401
    for what, answer in answers.items():
        assert answer.status_code == 400, what
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT", what
        assert answer.json()["error"]["errors"][0]["reason"] == "invalid", what


async def test_a_403_for_the_days_quota_waits_for_googles_next_quota_day(google, pool):
    """Google's APIs say an exceeded quota with a 403 as often as with a 429 (reason
    dailyLimitExceeded): the per-project quota may be used by another client of the same Cloud
    project. It is no refused credential: the task waits for the next quota day."""
    app, _, tmp = google
    app.state.standin.inject(403, path=":upsert", body={"error": {
        "code": 403, "message": "Daily Limit Exceeded", "status": "PERMISSION_DENIED",
        "errors": [{"message": "Daily Limit Exceeded", "domain": "usageLimits", "reason": "dailyLimitExceeded"}]}})
    outcome = await _erase(pool, tmp, [("CLIENT_ID", "GA1.1.1.1"), ("CLIENT_ID", "GA1.1.2.2")])
    assert outcome.status == "pending" and outcome.changed == 0
    assert "daily quota (500) is used up, the rest follows after" in outcome.message
    # When, for a person: the task's note shows on the request page (not "2026-12-06T08:00+00:00").
    assert outcome.message.endswith(" UTC") and not re.search(r"\d{4}-\d{2}-\d{2}", outcome.message), outcome.message
    assert [u.status for u in app.state.standin.requests("POST", ":upsert")] == [403]


async def test_a_403_for_a_rate_limit_is_retried(google, pool):
    app, _, tmp = google
    app.state.standin.inject(403, path=":upsert", body={"error": {
        "code": 403, "message": "User Rate Limit Exceeded", "status": "PERMISSION_DENIED",
        "errors": [{"message": "User Rate Limit Exceeded", "domain": "usageLimits", "reason": "userRateLimitExceeded"}]}})
    outcome = await _erase(pool, tmp, [("CLIENT_ID", "GA1.1.1.1")])
    assert outcome.status == "done"
    assert [u.status for u in app.state.standin.requests("POST", ":upsert")] == [403, 200]


async def test_the_token_endpoint_refuses_as_rfc_6749_says(google, pool, monkeypatch, tmp_path):
    app, url, tmp = google
    stranger = tmp_path / "stranger.json"
    stranger.write_text(json.dumps(new_service_account("stranger@standin.iam.gserviceaccount.com")))
    monkeypatch.setenv("GA4_SERVICE_ACCOUNT", str(stranger))  # a key Google does not know
    with pytest.raises(PermanentConnectorError, match="Google Analytics 4 refused the OAuth2 jwt_bearer grant "
                       r"\(HTTP 400\).*GA4_SERVICE_ACCOUNT"):
        await _erase(pool, tmp, [("CLIENT_ID", "GA1.1.1.1")])
    async with httpx.AsyncClient(base_url=url) as http:
        as_json = await http.post("/token", json={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"})
        other_grant = await http.post("/token", data={"grant_type": "client_credentials"})
    (refused,) = app.state.standin.requests("POST", "/token")[:1]
    assert refused.status == 400
    assert as_json.json() == {"error": "invalid_request", "error_description": "the body must be form-encoded"}
    assert other_grant.json()["error"] == "unsupported_grant_type"
    assert app.state.data.requests == []



async def test_only_a_request_naming_what_google_knows_deletes_anything(google):
    """Google accepts a deletion request for any string: one naming the _ga cookie value
    ("GA1.1.1197596843.1673515099") instead of the client id Google knows the browser by
    ("1197596843.1673515099") is accepted and deletes nothing."""
    app, url, _ = google
    data = app.state.data
    data.users = {("CLIENT_ID", "1197596843.1673515099")}
    token = app.state.standin.tokens.issue()["access_token"]

    def body(user_id: str) -> dict:
        return {"kind": "analytics#userDeletionRequest", "id": {"type": "CLIENT_ID", "userId": user_id},
                "propertyId": "123456789"}

    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        cookie = await http.post(UPSERT, json=body("GA1.1.1197596843.1673515099"))
        assert cookie.status_code == 200 and data.users == {("CLIENT_ID", "1197596843.1673515099")}
        client_id = await http.post(UPSERT, json=body("1197596843.1673515099"))
    assert client_id.status_code == 200 and data.users == set()
    assert data.erased == {("CLIENT_ID", "1197596843.1673515099")}


def test_the_shipped_configuration_sends_a_stored_cookie_value_as_the_client_id_google_knows():
    """ga4.yaml's CLIENT_ID identifier cuts a stored _ga cookie value to the client id; a value of
    another shape (a site that sets its own client ids) is sent as it is stored."""
    config = read_yaml(DEFAULT_POLICY.parent / "http/ga4.yaml")
    client_id = Identifier.model_validate(next(i for i in config["identifiers"] if i["type"] == "CLIENT_ID"))
    assert client_id.value_of("GA1.1.1197596843.1673515099") == "1197596843.1673515099"
    assert client_id.value_of("GA1.2.555.666") == "555.666"
    assert client_id.value_of("1197596843.1673515099") == "1197596843.1673515099"
    assert client_id.value_of("site-chosen-id") == "site-chosen-id"


@pytest.mark.parametrize(("pattern", "said"), [("GA(", "not a regular expression"), ("GA1.1.", "needs a group")])
def test_an_identifier_pattern_that_cannot_cut_a_value_is_refused_naming_it(pattern, said):
    with pytest.raises(ValidationError, match=said):
        Identifier.model_validate({"type": "CLIENT_ID", "system": "analytics", "dataset": "page_events",
                                   "field": "client_id", "pattern": pattern})
