"""HubSpot on the wire, as its developer documentation describes it: the OAuth refresh grant
(form-encoded), CRM v3 search and GDPR delete (JSON bodies, Bearer token), next-page links in
both the documented relative form (`?after=...`) and the absolute form HubSpot answers with
(another path: object type ids), the search limit of a few requests a second, and what the
stand-in refuses as HubSpot does."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from devstack.saas.hubspot import create_hubspot_app
from tests.fanout_stack import served
from tests.saas_support import collect, connector, http_policy, http_system, subject


@pytest.fixture
async def hubspot(monkeypatch, tmp_path):
    app = create_hubspot_app("client-w", "secret-w", "refresh-w")
    async with served(app) as url:
        for name, value in {"HUBSPOT_API_BASE": url, "HUBSPOT_CLIENT_ID": "client-w",
                            "HUBSPOT_CLIENT_SECRET": "secret-w", "HUBSPOT_REFRESH_TOKEN": "refresh-w"}.items():
            monkeypatch.setenv(name, value)
        yield app, url, tmp_path


def policy(tmp_path, blocklist: bool = False):
    return http_policy(tmp_path, {"crm_hubspot": http_system(
        "http/hubspot.yaml", "HubSpot CRM", vars={"blocklist_email": blocklist})})


async def _access(app, tmp, email: str, pool) -> list:
    connector_ = connector(policy(tmp), "crm_hubspot", pool)
    try:
        return await collect(connector_, subject(email))
    finally:
        await connector_.close()


async def test_the_token_grant_and_the_search_are_what_hubspot_documents(hubspot, pool):
    app, _, tmp = hubspot
    ada = app.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
    note = app.state.data.add_note(ada, "call")
    await _access(app, tmp, "ada@example.com", pool)
    token, search, links, read = app.state.standin.served
    assert (token.method, token.path) == ("POST", "/oauth/2026-03/token")
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(token.body)) == {"grant_type": "refresh_token", "client_id": "client-w",
                                           "client_secret": "secret-w", "refresh_token": "refresh-w"}
    assert (search.method, search.path, search.status) == ("POST", "/crm/v3/objects/contacts/search", 200)
    assert search.headers["content-type"] == "application/json"
    assert json.loads(search.body) == {
        "filterGroups": [  # ORed: the address, or among the secondary ones
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": "ada@example.com"}]},
            {"filters": [{"propertyName": "hs_additional_emails", "operator": "CONTAINS_TOKEN",
                          "value": "ada@example.com"}]}],
        "properties": ["email", "hs_additional_emails", "firstname", "lastname", "phone", "company", "jobtitle",
                       "lifecyclestage", "createdate"],
        "limit": 100}
    assert (links.method, links.path) == ("GET", f"/crm/v3/objects/contacts/{ada}/associations/notes")
    assert (read.method, read.path, read.query) == ("GET", f"/crm/v3/objects/notes/{note}",
                                                    "properties=hs_note_body%2Chs_timestamp")
    for s in (search, links, read):
        assert s.headers["authorization"].startswith("Bearer ") and s.status == 200


async def test_the_versioned_token_endpoint_that_replaces_v1(hubspot, pool):
    """HubSpot ends /oauth/v1/token on 16 February 2027; /oauth/2026-03/token, the shipped
    default, takes the same form fields, in the body only, and answers the same fields."""
    app, url, tmp = hubspot
    app.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
    assert len(await _access(app, tmp, "ada@example.com", pool)) == 1
    (token,) = [s for s in app.state.standin.served if "/oauth/" in s.path]
    assert (token.path, token.status, token.query) == ("/oauth/2026-03/token", 200, "")
    assert dict(parse_qsl(token.body))["grant_type"] == "refresh_token"
    async with httpx.AsyncClient(base_url=url) as http:
        in_url = await http.post("/oauth/2026-03/token", params={"client_secret": "secret-w"},
                                 data={"grant_type": "refresh_token", "client_id": "client-w", "refresh_token": "refresh-w"})
        revoked = await http.post("/oauth/2026-03/token", data={
            "grant_type": "refresh_token", "client_id": "client-w", "client_secret": "secret-w", "refresh_token": "x"})
    assert in_url.status_code == 400 and in_url.json()["error"] == "invalid_request"
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("style", ["relative", "type_ids"])
async def test_next_page_links_in_either_form_lead_to_every_note(hubspot, pool, style):
    """HubSpot's reference shows `"link": "?after=NTI1Cg%3D%3D"`, relative to the page just read;
    its answers carry an absolute URL by object type ids (/objects/0-1/.../associations/0-46)."""
    app, _, tmp = hubspot
    app.state.link_style = style
    app.state.standin.max_page_size = 2
    ada = app.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
    notes = [app.state.data.add_note(ada, f"call {i}") for i in range(5)]
    records = await _access(app, tmp, "ada@example.com", pool)
    assert sorted(r.fields["id"] for r in records if r.dataset == "notes") == sorted(notes)
    pages = [s for s in app.state.standin.served if "/associations/" in s.path]
    assert [s.status for s in pages] == [200, 200, 200]
    assert [dict(parse_qsl(s.query)).get("after") for s in pages] == [None, "2", "4"]
    later = {s.path for s in pages[1:]}
    assert later == ({f"/crm/v3/objects/contacts/{ada}/associations/notes"} if style == "relative"
                     else {f"/crm/v3/objects/0-1/{ada}/associations/0-46"})


async def test_searches_stay_under_hubspots_search_limit(hubspot, pool):
    """HubSpot refuses more than a few searches a second per token (429): the shipped pace keeps
    a run of requests, each starting with a search, under it."""
    app, _, tmp = hubspot
    connector_ = connector(policy(tmp), "crm_hubspot", pool)
    try:
        for i in range(8):
            await collect(connector_, subject(f"nobody{i}@example.com"))
    finally:
        await connector_.close()
    searches = app.state.standin.requests("POST", "/contacts/search")
    assert [s.status for s in searches] == [200] * 8


async def test_a_429_without_retry_after_waits_out_hubspots_window(hubspot, pool):
    """HubSpot's 429 carries no Retry-After: X-HubSpot-RateLimit-Remaining 0 says the window of
    X-HubSpot-RateLimit-Interval-Milliseconds is used up, so the retry waits that long (not the
    1 s first backoff, which would hit the same window again)."""
    app, _, tmp = hubspot
    app.state.standin.throttle_headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = "2500"
    app.state.standin.inject(429, path="/contacts/search")
    await _access(app, tmp, "ada@example.com", pool)
    first, second = app.state.standin.requests("POST", "/contacts/search")
    assert (first.status, second.status) == (429, 200) and "retry-after" not in first.headers
    assert second.at - first.at >= 2.5


async def test_hubspots_daily_limit_waits_for_the_next_day(hubspot, pool):
    app, _, tmp = hubspot
    app.state.standin.inject(429, path="/contacts/search", body={
        "status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
        "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24", "policyName": "DAILY"})
    with pytest.raises(ApplicationError) as raised:
        await _access(app, tmp, "ada@example.com", pool)
    assert raised.value.type == "HttpQuotaExhausted" and raised.value.next_retry_delay is not None
    # The task's note, as staff read it: when the quota renews in words, in UTC and saying so (was ISO).
    assert re.search(r"daily quota used up; it renews at \d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2} UTC$", str(raised.value))
    assert len(app.state.standin.requests("POST", "/contacts/search")) == 1  # not hammered


async def test_gdpr_delete_bodies_by_id_and_by_address(hubspot, pool):
    app, _, tmp = hubspot
    ada = app.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
    app.state.data.add_contact("grace@example.com", "Grace", "Hopper")
    for blocklist, email in ((False, "ada@example.com"), (True, "grace@example.com")):
        connector_ = connector(policy(tmp, blocklist), "crm_hubspot", pool)
        try:
            await connector_.erase(subject(email))
        finally:
            await connector_.close()
    by_id, by_address = app.state.standin.requests("POST", "/gdpr-delete")
    assert json.loads(by_id.body) == {"objectId": ada}
    assert json.loads(by_address.body) == {"objectId": "grace@example.com", "idProperty": "email"}
    for s in (by_id, by_address):
        assert s.status == 204 and s.headers["content-type"] == "application/json"
        assert s.path == "/crm/v3/objects/contacts/gdpr-delete"


async def test_the_stand_in_refuses_what_hubspot_refuses(hubspot):
    app, url, _ = hubspot
    token = app.state.standin.tokens.issue()["access_token"]
    app.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
    app.state.standin.inject(429, path="/contacts/search")
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        throttled = await http.post("/crm/v3/objects/contacts/search", json={})
        as_form = await http.post("/crm/v3/objects/contacts/search", data={"limit": "10"})
        too_many = await http.post("/crm/v3/objects/contacts/search", json={"limit": 201})
        no_id = await http.post("/crm/v3/objects/contacts/gdpr-delete", json={"idProperty": "email"})
        by_phone = await http.post("/crm/v3/objects/contacts/gdpr-delete",
                                   json={"objectId": "+32", "idProperty": "phone"})
        unknown = await http.post("/crm/v3/objects/contacts/gdpr-delete", json={"objectId": "999999"})
        no_token = await http.post("/crm/v3/objects/contacts/search", json={}, headers={"Authorization": ""})
        burst = [(await http.post("/crm/v3/objects/contacts/search", json={})).status_code for _ in range(7)]
    assert throttled.status_code == 429
    assert throttled.json()["errorType"] == "RATE_LIMIT" and "category" not in throttled.json()
    assert throttled.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert as_form.status_code == 415
    assert too_many.status_code == 400 and too_many.json()["category"] == "VALIDATION_ERROR"
    assert no_id.status_code == 400 and by_phone.status_code == 400
    assert unknown.status_code == 404 and unknown.json()["category"] == "OBJECT_NOT_FOUND"
    assert no_token.status_code == 401
    assert 429 in burst  # more than five searches in a second
