"""The shipped Mailchimp configuration against the Mailchimp stand-in over loopback: members of
every audience (offset paging), permanent deletion, unsubscribe on objection, Retry-After, and a
refused API key."""

from __future__ import annotations

import pytest

from activities.connectors.base import PermanentConnectorError
from devstack.saas.mailchimp import create_mailchimp_app, subscriber_hash
from tests.fanout_stack import served
from tests.saas_support import collect, connector, http_policy, http_system, subject

KEY = "0123456789abcdef-us21"


@pytest.fixture
async def mailchimp(monkeypatch, tmp_path, pool):
    app = create_mailchimp_app(KEY)
    async with served(app) as url:
        monkeypatch.setenv("MAILCHIMP_API_BASE", url)
        monkeypatch.setenv("MAILCHIMP_API_KEY", KEY)
        loaded = http_policy(tmp_path, {"newsletter": http_system("http/mailchimp.yaml", "Newsletter")})
        data = app.state.data
        audiences = [data.add_list(f"Audience {i}") for i in range(5)]
        connector_ = connector(loaded, "newsletter", pool)
        try:
            yield app, data, audiences, connector_
        finally:
            await connector_.close()


async def test_access_finds_the_member_in_every_audience(mailchimp):
    app, data, audiences, connector_ = mailchimp
    app.state.standin.max_page_size = 2
    data.add_member(audiences[0], "Ada@Example.com", FNAME="Ada")
    data.add_member(audiences[4], "ada@example.com", status="unsubscribed")
    data.add_member(audiences[2], "grace@example.com")
    records = await collect(connector_, subject("ada@example.com"))
    assert sorted(r.fields["list_id"] for r in records) == sorted([audiences[0], audiences[4]])
    assert {r.dataset for r in records} == {"members"} and {r.category for r in records} == {"marketing"}
    assert len(app.state.standin.requests("GET", "/3.0/lists")) == 3 + 5  # 3 pages, then each audience
    looked_up = {s.path.rsplit("/", 1)[-1] for s in app.state.standin.requests("GET", "/members/")}
    assert looked_up == {subscriber_hash("ada@example.com")}


async def test_erasure_deletes_every_membership_permanently(mailchimp):
    app, data, audiences, connector_ = mailchimp
    data.add_member(audiences[0], "ada@example.com")
    data.add_member(audiences[1], "ada@example.com")
    outcome = await connector_.erase(subject("ada@example.com"))
    assert outcome.status == "done" and outcome.datasets == {"members": {"found": 2, "deleted": 2}}
    assert all(not members for members in data.members.values())
    assert data.deleted == {f"{a}/{subscriber_hash('ada@example.com')}" for a in audiences[:2]}
    assert (await connector_.erase(subject("ada@example.com"))).status == "not_found"


async def test_a_direct_marketing_objection_unsubscribes(mailchimp):
    _, data, audiences, connector_ = mailchimp
    digest = data.add_member(audiences[0], "ada@example.com")
    data.add_member(audiences[1], "ada@example.com", status="unsubscribed")
    outcome = await connector_.object(subject("ada@example.com"), "direct_marketing")
    assert outcome.status == "done" and outcome.datasets == {"members": {"found": 2, "changed": 1}}
    assert data.members[audiences[0]][digest]["status"] == "unsubscribed"
    profiling = await connector_.object(subject("ada@example.com"), "profiling")
    assert profiling.status == "not_found" and "not configured for objections to profiling" in profiling.message


async def test_a_429_with_retry_after_is_honoured(mailchimp):
    app, data, audiences, connector_ = mailchimp
    data.add_member(audiences[0], "ada@example.com")
    app.state.standin.inject(429, retry_after="1", path="/actions/delete-permanent")
    outcome = await connector_.erase(subject("ada@example.com"))
    assert outcome.datasets["members"]["deleted"] == 1
    first, second = app.state.standin.requests("POST", "/actions/delete-permanent")
    assert (first.status, second.status) == (429, 204) and second.at - first.at >= 1.0


async def test_a_5xx_is_retried_with_backoff(mailchimp):
    app, data, audiences, connector_ = mailchimp
    data.add_member(audiences[0], "ada@example.com")
    app.state.standin.inject(503, times=2, path="/3.0/lists")
    assert len(await collect(connector_, subject("ada@example.com"))) == 1
    assert [s.status for s in app.state.standin.requests("GET", "/3.0/lists")][:3] == [503, 503, 200]


async def test_a_refused_api_key_is_permanent(mailchimp, monkeypatch, pool, tmp_path):
    monkeypatch.setenv("MAILCHIMP_API_KEY", "wrong-us21")
    loaded = http_policy(tmp_path, {"newsletter": http_system("http/mailchimp.yaml", "Newsletter")})
    refused = connector(loaded, "newsletter", pool)
    try:
        with pytest.raises(PermanentConnectorError, match=r"system newsletter: Mailchimp answered HTTP 401 "
                           r"to GET /3.0/lists \(erase.lists\): the credentials were refused"):
            await refused.erase(subject("ada@example.com"))
    finally:
        await refused.close()
