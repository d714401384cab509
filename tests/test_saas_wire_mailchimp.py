"""The Mailchimp Marketing API on the wire, as its reference documents it: HTTP basic auth with
any user name and the API key, audiences paged by count/offset with only the `fields` asked for,
members addressed by the MD5 of the lower-cased address, `actions/delete-permanent` (a POST
without a body), a JSON PATCH to unsubscribe; no default datacenter; and what the stand-in
refuses as Mailchimp does."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qsl

import httpx
import pytest

from activities.connectors.base import PermanentConnectorError
from devstack.saas.mailchimp import create_mailchimp_app, subscriber_hash
from tests.fanout_stack import served
from tests.saas_support import collect, connector, http_policy, http_system, subject

KEY = "0123456789abcdef0123456789abcdef-us21"
BASIC = "Basic " + base64.b64encode(f"dsrflow:{KEY}".encode()).decode()


@pytest.fixture
async def mailchimp(monkeypatch, tmp_path):
    app = create_mailchimp_app(KEY)
    async with served(app) as url:
        monkeypatch.setenv("MAILCHIMP_API_BASE", url)
        monkeypatch.setenv("MAILCHIMP_API_KEY", KEY)
        loaded = http_policy(tmp_path, {"newsletter": http_system("http/mailchimp.yaml", "Newsletter")})
        yield app, loaded, url


async def test_access_erasure_and_objection_send_documented_requests(mailchimp, pool):
    app, loaded, _ = mailchimp
    data, standin = app.state.data, app.state.standin
    news, updates = data.add_list("Newsletter"), data.add_list("Product updates")
    digest = data.add_member(news, "Ada@Example.com")
    data.add_member(updates, "ada@example.com")
    connector_ = connector(loaded, "newsletter", pool)
    try:
        records = await collect(connector_, subject("ADA@example.com"))
        await connector_.object(subject("ada@example.com"), "direct_marketing")
        await connector_.erase(subject("ada@example.com"))
    finally:
        await connector_.close()
    assert {r.fields["list_id"] for r in records} == {news, updates}
    assert digest == hashlib.md5(b"ada@example.com").hexdigest()  # of the lower-cased address
    lists = standin.requests("GET", "/3.0/lists")[0]
    assert dict(parse_qsl(lists.query)) == {"count": "1000", "offset": "0", "fields": "lists.id,lists.name,total_items"}
    members = [s for s in standin.served if s.method == "GET" and "/members/" in s.path]
    assert {s.path for s in members} == {f"/3.0/lists/{news}/members/{digest}", f"/3.0/lists/{updates}/members/{digest}"}
    patches = standin.requests("PATCH")
    assert len(patches) == 2 and all(json.loads(p.body) == {"status": "unsubscribed"} for p in patches)
    assert all(p.headers["content-type"] == "application/json" for p in patches)
    deletes = standin.requests("POST", "/actions/delete-permanent")
    assert {s.path for s in deletes} == {f"/3.0/lists/{news}/members/{digest}/actions/delete-permanent",
                                         f"/3.0/lists/{updates}/members/{digest}/actions/delete-permanent"}
    assert all(s.status == 204 and s.body is None for s in deletes)
    assert all(s.headers["authorization"] == BASIC for s in standin.served)


async def test_there_is_no_default_datacenter(mailchimp, pool, monkeypatch):
    """A key names its datacenter (the part after the dash); us1 for every account would send the
    key of an account elsewhere to a datacenter that answers 401."""
    _, loaded, _ = mailchimp
    monkeypatch.delenv("MAILCHIMP_API_BASE")
    with pytest.raises(PermanentConnectorError,
                       match="system newsletter: config: environment variable MAILCHIMP_API_BASE is not set"):
        connector(loaded, "newsletter", pool)


async def test_the_stand_in_answers_only_the_fields_asked_for_and_refuses_what_mailchimp_refuses(mailchimp):
    app, _, url = mailchimp
    news = app.state.data.add_list("Newsletter")
    digest = app.state.data.add_member(news, "ada@example.com")
    member = f"/3.0/lists/{news}/members/{digest}"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": BASIC}) as http:
        shaped = (await http.get("/3.0/lists", params={"fields": "lists.id,total_items"})).json()
        excluded = (await http.get(member, params={"exclude_fields": "merge_fields,tags"})).json()
        as_form = await http.patch(member, data={"status": "unsubscribed"})
        wrong_key = await http.get("/3.0/lists", auth=("anystring", "0000-us21"))
        no_auth = await http.get("/3.0/lists", headers={"Authorization": ""})
        unknown = await http.get(f"/3.0/lists/{news}/members/{subscriber_hash('nobody@example.com')}")
    assert shaped == {"lists": [{"id": news}], "total_items": 1}
    assert "merge_fields" not in excluded and "tags" not in excluded and excluded["id"] == digest
    assert as_form.status_code == 400 and as_form.headers["content-type"] == "application/problem+json"
    for refused in (wrong_key, no_auth):
        assert refused.status_code == 401 and refused.json()["title"] == "API Key Invalid"
    assert unknown.status_code == 404 and set(unknown.json()) == {"type", "title", "status", "detail", "instance"}
