"""The shipped HubSpot configuration against the HubSpot stand-in over loopback: OAuth 2.0 tokens
(refreshed when expired), access with both paging styles, GDPR delete with and without
blocklisting, Retry-After, and a refused request."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Response

from activities.connectors.base import PermanentConnectorError
from devstack.saas.hubspot import create_hubspot_app
from tests.fanout_stack import served
from tests.saas_support import collect, connector, http_policy, http_system, subject


@pytest.fixture
async def hubspot(monkeypatch, tmp_path):
    app = create_hubspot_app("client-1", "secret-1", "refresh-1")
    async with served(app) as url:
        monkeypatch.setenv("HUBSPOT_API_BASE", url)
        monkeypatch.setenv("HUBSPOT_CLIENT_ID", "client-1")
        monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", "secret-1")
        monkeypatch.setenv("HUBSPOT_REFRESH_TOKEN", "refresh-1")
        yield app, url, tmp_path


def policy(tmp_path, blocklist: bool):
    return http_policy(tmp_path, {"crm_hubspot": http_system(
        "http/hubspot.yaml", "HubSpot CRM", vars={"blocklist_email": blocklist})})


async def test_access_reads_the_contact_and_pages_through_its_notes(hubspot, pool):
    app, _, tmp = hubspot
    data, standin = app.state.data, app.state.standin
    standin.max_page_size = 2
    ada = data.add_contact("ada@example.com", "Ada", "Lovelace", phone="+32 470 00 00 00")
    data.add_contact("grace@example.com", "Grace", "Hopper")
    notes = [data.add_note(ada, f"call {i}") for i in range(5)]
    connector_ = connector(policy(tmp, False), "crm_hubspot", pool)
    try:
        records = await collect(connector_, subject("ADA@example.com"))
    finally:
        await connector_.close()
    contacts = [r for r in records if r.dataset == "contacts"]
    assert [c.fields["properties"]["phone"] for c in contacts] == ["+32 470 00 00 00"]
    assert sorted(r.fields["id"] for r in records if r.dataset == "notes") == sorted(notes)
    assert {r.category for r in records if r.dataset == "notes"} == {"communications"}
    assert len(standin.requests("GET", "/associations/notes")) == 3  # paging.next.link, 2 + 2 + 1
    assert len(standin.requests("POST", "/oauth/2026-03/token")) == 1  # one token for every request


async def test_an_expired_token_is_refreshed(hubspot, pool):
    app, _, tmp = hubspot
    data, standin = app.state.data, app.state.standin
    data.add_contact("ada@example.com", "Ada", "Lovelace")
    connector_ = connector(policy(tmp, False), "crm_hubspot", pool)
    try:
        assert len(await collect(connector_, subject("ada@example.com"))) == 1
        standin.tokens.expire_all()  # HubSpot tokens live 30 minutes
        assert len(await collect(connector_, subject("ada@example.com"))) == 1
    finally:
        await connector_.close()
    statuses = [s.status for s in standin.requests("POST", "/contacts/search")]
    assert statuses == [200, 401, 200]
    assert len(standin.requests("POST", "/oauth/2026-03/token")) == 2
    # HubSpot keeps the refresh token: a later connector (the next activity) can use it too.
    later = connector(policy(tmp, False), "crm_hubspot", pool)
    try:
        assert len(await collect(later, subject("ada@example.com"))) == 1
    finally:
        await later.close()
    assert [s.status for s in standin.requests("POST", "/oauth/2026-03/token")] == [200, 200, 200]


async def test_gdpr_delete_without_blocklisting_leaves_unknown_addresses_alone(hubspot, pool):
    app, _, tmp = hubspot
    data = app.state.data
    ada = data.add_contact("ada@example.com", "Ada", "Lovelace")
    data.add_note(ada, "call")
    connector_ = connector(policy(tmp, False), "crm_hubspot", pool)
    try:
        outcome = await connector_.erase(subject("ada@example.com"))
        absent = await connector_.erase(subject("nobody@example.com"))
    finally:
        await connector_.close()
    assert outcome.status == "done" and outcome.datasets["contacts"] == {"found": 1, "deleted": 1}
    assert outcome.erased == {"contacts": [(ada, "deleted")]}
    assert ada not in data.contacts and data.notes == {}
    assert absent.status == "not_found"
    assert data.blocklist == set()
    assert len(app.state.standin.requests("POST", "/gdpr-delete")) == 1


async def test_gdpr_delete_with_blocklisting_deletes_by_address(hubspot, pool):
    app, _, tmp = hubspot
    data = app.state.data
    data.add_contact("ada@example.com", "Ada", "Lovelace")
    connector_ = connector(policy(tmp, True), "crm_hubspot", pool)
    try:
        outcome = await connector_.erase(subject("ada@example.com"))
        await connector_.erase(subject("nobody@example.com"))
    finally:
        await connector_.close()
    assert outcome.datasets["contacts"] == {"found": 1, "deleted": 1}
    assert data.contacts == {}
    assert data.blocklist == {"nobody@example.com"}


async def _erase(tmp: Any, pool: Any, blocklist: bool, email: str) -> Any:
    """The subject's erasure by the shipped configuration, in one go."""
    connector_ = connector(policy(tmp, blocklist), "crm_hubspot", pool)
    try:
        return await connector_.erase(subject(email))
    finally:
        await connector_.close()


@pytest.mark.parametrize("blocklist", [False, True], ids=["by-id", "by-address"])
async def test_a_search_lagging_behind_the_deletes_is_no_record_added_mid_run(hubspot, pool, blocklist):
    """HubSpot's search is eventually consistent: for a while after a GDPR delete it still lists
    the contact, whose notes then answer 404. The erasure's read after its deletes
    (activities/connectors/http_rounds.py) met that: the notes' 404 failed the erasure, and a delete
    by address (answered 204 whatever was there) counted the contact deleted again at each of its
    reads, until the task needed staff for records "that kept appearing". Now the erasure is done,
    each contact counted once; a contact really added meanwhile is still counted (below)."""
    app, _, tmp = hubspot
    data = app.state.data
    app.state.search_lag = 60.0  # longer than the test: every read after the deletes lags
    ada = data.add_contact("ada@example.com", "Ada", "Lovelace")
    data.add_note(ada, "call")
    outcome = await _erase(tmp, pool, blocklist, "ada@example.com")
    assert outcome.status == "done", outcome.message
    assert outcome.datasets["contacts"] == {"found": 1, "deleted": 1}
    assert "listed nothing more to erase" in outcome.message
    assert data.contacts == {} and data.notes == {}

    # The subject signs up again as the first delete is carried out: a new contact, listed beside
    # the lagging one, is erased and counted, once.
    grace = data.add_contact("grace@example.com", "Grace", "Hopper")

    again: list[str] = []

    def signed_up_again(request: Any, document: Any) -> Any:
        if document is not None:  # not carried out (a 404's error): answered as it was
            return document
        if not again:
            again.append(data.add_contact("grace@example.com", "Grace", "Hopper"))
        return Response(status_code=204)

    app.state.standin.tamper("/gdpr-delete", signed_up_again, method="POST")
    outcome = await _erase(tmp, pool, blocklist, "grace@example.com")
    assert outcome.status == "done", outcome.message
    assert outcome.datasets["contacts"] == {"found": 2, "deleted": 2}, outcome.datasets
    assert "1 record(s) added at HubSpot while the erasure ran" in outcome.message
    assert grace not in data.contacts and again[0] not in data.contacts


async def test_retry_after_on_a_write_is_honoured(hubspot, pool):
    app, _, tmp = hubspot
    app.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
    app.state.standin.inject(429, retry_after="1", path="/gdpr-delete")
    connector_ = connector(policy(tmp, False), "crm_hubspot", pool)
    try:
        outcome = await connector_.erase(subject("ada@example.com"))
    finally:
        await connector_.close()
    assert outcome.status == "done"
    first, second = app.state.standin.requests("POST", "/gdpr-delete")
    assert (first.status, second.status) == (429, 204) and second.at - first.at >= 1.0


async def test_a_refused_refresh_token_names_the_variables(hubspot, pool, monkeypatch):
    _, _, tmp = hubspot
    monkeypatch.setenv("HUBSPOT_REFRESH_TOKEN", "revoked")
    connector_ = connector(policy(tmp, False), "crm_hubspot", pool)
    try:
        with pytest.raises(PermanentConnectorError, match="system crm_hubspot: HubSpot refused the OAuth2 "
                           r"refresh_token grant \(HTTP 400\).*HUBSPOT_REFRESH_TOKEN"):
            await collect(connector_, subject("ada@example.com"))
    finally:
        await connector_.close()


async def test_a_permanent_4xx_names_system_status_and_category(hubspot, pool):
    app, _, tmp = hubspot
    app.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
    app.state.standin.inject(403, path="/gdpr-delete")
    connector_ = connector(policy(tmp, False), "crm_hubspot", pool)
    try:
        with pytest.raises(PermanentConnectorError) as raised:
            await connector_.erase(subject("ada@example.com"))
    finally:
        await connector_.close()
    assert str(raised.value).startswith(
        "system crm_hubspot: HubSpot answered HTTP 403 to POST /crm/v3/objects/contacts/gdpr-delete "
        "(erase.gdpr_delete) [MISSING_SCOPES]")
