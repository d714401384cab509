"""A SaaS API whose answers the http connector would act on, answering as a broken or hostile
service could: ids that change the next request's path, numbers where its ids are text, dates
no hold can run from, a 200 that says the deletion failed or holds no records, a redirect to
another host, a token endpoint answering something else than a bearer token, and a base URL
in plain http outside development. Each is refused with an error naming the system and what was
wrong, before a request goes where it should not or an erasure counts as done that was not
(before: a request to the path above, a held customer deleted, "done" or "not found")."""

from __future__ import annotations

import re
import time
from datetime import date

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from activities.connectors.base import ErasureContext, PermanentConnectorError
from tests.fanout_stack import served
from tests.saas_support import (
    collect,
    connector,
    google_served,
    http_policy,
    http_system,
    hubspot_served,
    mailchimp_served,
    stripe_served,
    subject,
)

YEAR = 365 * 86400
ADA = "ada@example.com"


async def erase(loaded, name: str, pool):
    eraser = connector(loaded, name, pool)
    try:
        return await eraser.erase(subject(ADA), ErasureContext(today=date.today()))
    finally:
        await eraser.close()


async def erase_for(loaded, name: str, pool, whom):
    eraser = connector(loaded, name, pool)
    try:
        return await eraser.erase(whom)
    finally:
        await eraser.close()


async def erasure_google_stamped(monkeypatch, tmp_path, pool, loaded, stamped: str, client_id: str):
    """A GA4 erasure of one client id, whose deletion Google accepts stamped `stamped` (its
    `deletionRequestTime`): the outcome, and the request's id."""
    from tests.test_saas_ga4 import _request_with_identifiers

    async with google_served(monkeypatch, tmp_path) as (app, _):
        app.state.standin.tamper("userDeletionRequests:upsert",
                                 lambda _, document: {**document, "deletionRequestTime": stamped})
        rid = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", client_id)])
        return await erase_for(loaded, "ga4", pool, subject("tracked@example.com", rid)), rid


async def read(loaded, name: str, pool) -> list:
    reader = connector(loaded, name, pool)
    try:
        return await collect(reader, subject(ADA))
    finally:
        await reader.close()


async def test_an_id_that_would_change_the_path_is_not_sent_nor_erased(tmp_path, pool, monkeypatch):
    """A Stripe customer whose id is "..": its DELETE went to /v1/, answered 404, and the
    erasure was done, the ledger naming customer ".." deleted."""
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        app.state.standin.tamper("/v1/customers", lambda _, __: {
            "object": "list", "data": [{"id": "..", "email": ADA, "created": int(time.time())}],
            "has_more": False, "url": "/v1/customers"}, method="GET")
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: template in erase\.delete_customer "
                           r"failed: a value put into the URL path is '\.\.', which would change the path: not sent"):
            await erase(loaded, "billing_stripe", pool)
        assert {s.path for s in app.state.standin.served} == {"/v1/customers", "/v1/invoices", "/v1/charges"}


async def test_an_audience_id_that_would_change_the_path_is_not_asked_for(tmp_path, pool, monkeypatch):
    """Mailchimp's audience "..": the member was asked for at /3.0/members/{hash}."""
    async with mailchimp_served(monkeypatch, tmp_path) as (app, loaded, _):
        app.state.data.add_member(app.state.data.add_list("Newsletter"), ADA)
        app.state.standin.tamper("/3.0/lists", lambda request, document: {
            "lists": [{"id": "..", "name": "x"}], "total_items": 1} if request.url.path.endswith("/lists") else document)
        with pytest.raises(PermanentConnectorError, match=r"system newsletter: template in access\.members failed: "
                           r"a value put into the URL path is '\.\.', which would change the path: not sent"):
            await read(loaded, "newsletter", pool)
        assert [s.path for s in app.state.standin.served] == ["/3.0/lists"]


@pytest.mark.parametrize(("tampered", "rewrite", "said"), [
    ("/associations/notes", lambda _: {"results": [{"id": "9000\r\nX-Injected: 1", "type": "contact_to_note"}]},
     r"template in access\.notes failed: a value put into the URL path holds control characters: not sent"),
    ("/associations/notes", lambda _: {"results": [{"id": "../contacts/101", "type": "contact_to_note"}]},
     r"template in access\.notes failed: a value put into the URL path holds a slash"),
    ("/contacts/search", lambda document: {**document, "results": [{**r, "id": {"$ne": None}} for r in document["results"]]},
     r"HubSpot's answer to POST /crm/v3/objects/contacts/search \(access\.contacts\) has a record of contacts whose "
     r"`id` is an object, no id: not read"),
])
async def test_ids_from_an_answer_never_reshape_the_next_request(tmp_path, pool, monkeypatch, tampered, rewrite, said):
    """A HubSpot note id with CRLF and a header after it, or a path of its own (Starlette, as
    many servers, routes on the decoded path), a contact id that is an object: before, each was
    escaped and sent, to a path the service never gave."""
    async with hubspot_served(monkeypatch, tmp_path) as (app, loaded, _):
        app.state.data.add_note(app.state.data.add_contact(ADA, "Ada", "Lovelace"), "call")
        app.state.standin.tamper(tampered, lambda _, document: rewrite(document))
        with pytest.raises(PermanentConnectorError, match=rf"system crm_hubspot: {said}"):
            await read(loaded, "crm_hubspot", pool)
        assert app.state.standin.requests("GET", "/objects/notes") == []
        assert not any("{" in s.path for s in app.state.standin.served)


async def test_a_number_where_the_services_ids_are_text_still_holds_the_customer(tmp_path, pool, monkeypatch):
    """Stripe answers a customer's id as 5 and its invoice's customer as "5": the hold kept "5",
    the customer 5 was not in it and was deleted, though the statute keeps it for its invoice."""
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        data = app.state.data
        row = data.customers.pop(data.add_customer(ADA, "Ada Lovelace", phone="+32 470 00 00 00"))
        data.customers["5"] = {**row, "id": "5"}
        data.add_invoice("5", int(time.time()) - YEAR)
        app.state.standin.tamper("/v1/customers", lambda _, document: {**document, "data": [
            {**r, "id": int(r["id"])} for r in document["data"]]}, method="GET")
        outcome = await erase(loaded, "billing_stripe", pool)
    assert "5" in data.customers and data.customers["5"]["phone"] is None
    assert ("customers", "5") in {(h.dataset, h.key) for h in outcome.held}
    assert outcome.erased == {}


@pytest.mark.parametrize(("customer_id", "said"), [
    ("cus_" + "9f" * 1500, "is 3,004 characters long, no id (at most 256)"),
    ("cus_1\x00", "holds control characters, no id"),
    ("\u202e1_suc", "holds marks that reorder text, no id"),  # read as cus_1 where it is shown
])
async def test_an_id_no_ledger_can_keep_is_not_erased(tmp_path, pool, monkeypatch, customer_id, said):
    """A Stripe customer whose id is 3,000 characters, or holds a NUL, where its ids are some
    twenty: before, the first was deleted and named in the outcome, and the erasure ledger then
    refused its key (PostgreSQL's index takes at most 2,704 bytes, its text no NUL): the customer
    gone, no evidence kept, the task failing on every retry with the database's words. Now the
    read stops at that record, naming the system and why, and nothing is deleted."""
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        data = app.state.data
        row = data.customers.pop(data.add_customer(ADA, "Ada Lovelace"))
        data.customers[customer_id] = {**row, "id": customer_id}
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: Stripe's answer to GET /v1/customers "
                           rf"\(erase\.customers\) has a record of customers whose `id` {re.escape(said)}: not read"):
            await erase(loaded, "billing_stripe", pool)
        assert customer_id in data.customers
        assert app.state.standin.requests("DELETE") == [] and app.state.standin.requests("POST") == []


@pytest.mark.parametrize(("service", "tampered", "said"), [
    ("stripe", lambda document: {**document, "has_more": "false"},
     r"Stripe's answer to GET /v1/customers \(access\.customers\) says text at `has_more`, not true or false"),
    ("hubspot", lambda document: {**document, "paging": {"next": {"after": {"offset": 1}}}},
     r"HubSpot's answer to POST /crm/v3/objects/contacts/search \(access\.contacts\) gives an object as its "
     r"next-page cursor `paging\.next\.after`, not text or a number"),
    ("mailchimp", lambda document: {**document, "total_items": "1"},
     r"Mailchimp's answer to GET /3\.0/lists \(access\.lists\) gives text at `total_items`, not a whole number"),
])
async def test_paging_fields_of_another_type_are_refused(tmp_path, pool, monkeypatch, service, tampered, said):
    """Text "false" is true to Python: Stripe's next page was asked for."""
    where = {"stripe": ("/v1/customers", "billing_stripe"), "hubspot": ("/contacts/search", "crm_hubspot"),
             "mailchimp": ("/3.0/lists", "newsletter")}[service]
    if service == "stripe":
        served_ = stripe_served(monkeypatch, tmp_path, "sk_test_x")
    else:
        served_ = hubspot_served(monkeypatch, tmp_path) if service == "hubspot" else mailchimp_served(monkeypatch, tmp_path)
    async with served_ as (app, loaded, _):
        if service == "stripe":
            app.state.data.add_customer(ADA, "Ada Lovelace")
        elif service == "hubspot":
            app.state.data.add_contact(ADA, "Ada", "Lovelace")
        else:
            app.state.data.add_list("Newsletter")
        app.state.standin.tamper(where[0], lambda request, document: tampered(document)
                                 if request.method == "POST" or request.url.path == where[0] else document)
        with pytest.raises(PermanentConnectorError, match=rf"system {where[1]}: {said}: not read"):
            await read(loaded, where[1], pool)


@pytest.mark.parametrize("created", ["last year", 10**20, True])
async def test_a_date_no_hold_can_run_from_stops_the_erasure(tmp_path, pool, monkeypatch, created):
    """An invoice whose `created` is text, past the calendar or true: before, it was not held
    and its customer was deleted (or the erasure failed with an OverflowError naming nothing)."""
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        customer = app.state.data.add_customer(ADA, "Ada Lovelace")
        app.state.data.add_invoice(customer, int(time.time()) - YEAR)
        app.state.standin.tamper("/v1/invoices", lambda _, document: {**document, "data": [
            {**r, "created": created} for r in document["data"]]})
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: Stripe's answer to erase has a record "
                           r"of invoices whose `created` is no date the be_accounting hold can run from: what the "
                           r"statute keeps cannot be worked out, so nothing was erased"):
            await erase(loaded, "billing_stripe", pool)
        assert customer in app.state.data.customers
        assert app.state.standin.requests("DELETE") == [] and app.state.standin.requests("POST") == []


async def test_a_200_that_says_the_deletion_failed_is_not_done(tmp_path, pool, monkeypatch):
    """Stripe's {deleted: false}, HubSpot's error body with a 200: before, both erasures were done."""
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        customer = app.state.data.add_customer(ADA, "Ada Lovelace")
        app.state.standin.inject(200, path=f"/v1/customers/{customer}",
                                 body={"id": customer, "object": "customer", "deleted": False})
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: Stripe answered HTTP 200 to DELETE "
                           r"/v1/customers/\{\{ item\.id \}\} \(erase\.delete_customer\) without confirming it was done "
                           r"\(confirm: .*\): not counted as done; check in the service"):
            await erase(loaded, "billing_stripe", pool)
    async with hubspot_served(monkeypatch, tmp_path) as (app, loaded, _):
        app.state.data.add_contact(ADA, "Ada", "Lovelace")
        app.state.standin.inject(200, path="/gdpr-delete", body={"status": "error", "message": "not deleted"})
        with pytest.raises(PermanentConnectorError, match=r"system crm_hubspot: HubSpot answered HTTP 200 to POST "
                           r"/crm/v3/objects/contacts/gdpr-delete \(erase\.gdpr_delete\) without confirming it was done"):
            await erase(loaded, "crm_hubspot", pool)


async def test_a_200_without_the_records_is_not_not_found(tmp_path, pool, monkeypatch):
    """Stripe answers the customer search with an error body and a 200: before, the subject was
    "not found" there and the erasure was done with the customer left as it was."""
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        customer = app.state.data.add_customer(ADA, "Ada Lovelace")
        app.state.standin.inject(200, path="/v1/customers", body={"error": {"type": "api_error", "message": "later"}})
        with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: Stripe's answer to GET /v1/customers "
                           r"\(erase\.customers\) has no records at `data`: not read"):
            await erase(loaded, "billing_stripe", pool)
        assert customer in app.state.data.customers


async def test_a_redirect_is_not_followed_with_the_credentials(tmp_path, pool, monkeypatch):
    """To another host, to an internal address on loopback: neither is asked, the key stays home."""
    seen: list[dict[str, str]] = []

    async def anything(request: Request) -> Response:
        seen.append(dict(request.headers))
        return JSONResponse({"object": "list", "data": [], "has_more": False, "access_token": "stolen"})

    elsewhere = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
    async with served(elsewhere) as other:
        for target in (f"{other}/v1/customers", f"{other.replace('127.0.0.1', 'localhost')}/internal/metadata"):
            async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
                app.state.standin.tamper("/v1/customers", lambda _, __, to=target: Response(
                    status_code=307, headers={"Location": to}), method="GET")
                with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: Stripe answered HTTP 307 to "
                                   r"GET /v1/customers \(access\.customers\), a redirect to another host: not followed, "
                                   r"since the credentials would go with it; check base_url"):
                    await read(loaded, "billing_stripe", pool)
        async with hubspot_served(monkeypatch, tmp_path) as (app, loaded, _):
            app.state.standin.tamper("/token", lambda _, __: Response(status_code=302, headers={"Location": other}))
            with pytest.raises(PermanentConnectorError, match=r"system crm_hubspot: HubSpot refused the OAuth2 "
                               r"refresh_token grant \(HTTP 302\)"):
                await read(loaded, "crm_hubspot", pool)
    assert seen == []


@pytest.mark.parametrize(("answer", "said"), [
    (lambda document: {"error": "invalid_grant"}, "no access_token"),
    (lambda document: {**document, "token_type": "mac"}, "a token of another type than bearer"),
    (lambda document: {**document, "access_token": "abc\r\nX-Injected: 1"}, "an access_token that is no bearer token"),
    (lambda document: {**document, "expires_in": "soon"}, "an expires_in that is no number of seconds"),
    (lambda document: HTMLResponse("<p>maintenance</p>"), "is text/html, not JSON"),
])
async def test_a_token_endpoint_answering_no_bearer_token(tmp_path, pool, monkeypatch, answer, said):
    """Before: a KeyError or ValueError naming nothing, a "mac" token sent as a bearer one, a
    token with a header after it retried as a network error."""
    async with hubspot_served(monkeypatch, tmp_path) as (app, loaded, _):
        app.state.data.add_contact(ADA, "Ada", "Lovelace")
        app.state.standin.tamper("/token", lambda _, document: answer(document))
        with pytest.raises(PermanentConnectorError, match=r"system crm_hubspot: HubSpot's token endpoint answered the "
                           rf"OAuth2 refresh_token grant with what is no token \({said}\): check auth\.token_url"):
            await read(loaded, "crm_hubspot", pool)
        assert app.state.standin.requests("POST", "/contacts/search") == []


async def test_a_token_for_other_scopes_than_asked_is_not_used(tmp_path, pool, monkeypatch):
    async with google_served(monkeypatch, tmp_path) as (app, _):
        app.state.standin.tamper("/token", lambda _, document: {
            **document, "scope": "https://www.googleapis.com/auth/analytics.readonly"})
        loaded = http_policy(tmp_path, {"ga4": http_system("http/ga4.yaml", "GA4")}, keep=("analytics",))
        ga4 = connector(loaded, "ga4", pool)
        try:
            with pytest.raises(PermanentConnectorError, match=r"system ga4: Google Analytics 4's token endpoint answered "
                               r"the OAuth2 jwt_bearer grant with what is no token \(a token for other scopes than "
                               r"https://www\.googleapis\.com/auth/analytics\.user\.deletion\)"):
                await ga4.exchange.credentials.headers()  # what the first deletion request asks for
        finally:
            await ga4.close()


async def test_plain_http_is_refused_outside_development(tmp_path, pool, monkeypatch, settings):
    production = settings.model_copy(update={"environment": "production"})
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_x")
    stripe = http_policy(tmp_path, {"billing_stripe": http_system("http/stripe.yaml", "Stripe")})
    monkeypatch.setenv("STRIPE_API_BASE", "http://api.stripe.com")
    with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: base_url is not https: outside "
                       r"development Stripe's credentials and the subjects' data would cross the network"):
        connector(stripe, "billing_stripe", pool, production)
    await connector(stripe, "billing_stripe", pool).close()  # development: the stand-ins are plain http
    monkeypatch.setenv("STRIPE_API_BASE", "https://api.stripe.com")
    await connector(stripe, "billing_stripe", pool, production).close()

    monkeypatch.setenv("GA4_SERVICE_ACCOUNT", "{}")
    monkeypatch.setenv("GA4_PROPERTY_ID", "123456789")
    monkeypatch.setenv("GA4_TOKEN_URL", "http://oauth2.googleapis.com/token")
    ga4 = http_policy(tmp_path, {"ga4": http_system("http/ga4.yaml", "GA4")}, keep=("analytics",))
    with pytest.raises(PermanentConnectorError, match=r"system ga4: auth\.token_url is not https"):
        connector(ga4, "ga4", pool, production)


async def test_a_time_google_stamps_with_a_nul_leaves_the_erasure_done_without_the_note(tmp_path, pool, monkeypatch):
    """Google accepts the deletion and stamps it with a time holding a NUL, which the answer's
    `confirm` takes (it is text). Before, keeping what the answer said failed (PostgreSQL's jsonb
    holds no NUL) after Google had acted: the task failed on every retry with the database's
    words, each asking Google again. Now the time is not kept, the erasure is done, and the letter
    says nothing of when Google's deletion completes, staff reading why on the task."""
    from tests.test_saas_ga4 import _policy, _request_with_identifiers

    async with google_served(monkeypatch, tmp_path) as (app, _):
        app.state.standin.tamper("userDeletionRequests:upsert",
                                 lambda _, document: {**document, "deletionRequestTime": "2026-12-06T08:00:00Z\x00"})
        loaded = _policy(tmp_path)
        rid = await _request_with_identifiers(pool, loaded, [("CLIENT_ID", "GA1.1.555.666")])
        outcome = await erase_for(loaded, "ga4", pool, subject("tracked@example.com", rid))
        again = await erase_for(loaded, "ga4", pool, subject("tracked@example.com", rid))
        assert [r["userId"] for r in app.state.data.requests] == ["GA1.1.555.666"]  # asked once
    for done in (outcome, again):
        assert done.status == "done" and done.datasets == {"identifiers": {"found": 1, "submitted": 1}}
        assert done.note is None and "cannot read" in (done.message or "")


@pytest.mark.parametrize("stamped", ["1970-01-01T00:00:00Z", "2090-01-01T00:00:00Z"])
async def test_a_time_google_could_not_have_accepted_the_deletion_at_is_not_told_the_subject(
        tmp_path, pool, monkeypatch, stamped):
    """Google stamps the deletion it accepts with a time before the request was received, or
    decades on. Before, the subject's letter said Google accepted it on 1 January 1970 and would
    be done by 5 March 1970 (or in 2090). Now the erasure is done, the letter says nothing of when
    Google's deletion completes, and staff read why on the task."""
    from tests.test_saas_ga4 import _policy

    outcome, _ = await erasure_google_stamped(monkeypatch, tmp_path, pool, _policy(tmp_path), stamped, "GA1.1.777.888")
    assert outcome.status == "done" and outcome.datasets == {"identifiers": {"found": 1, "submitted": 1}}
    assert outcome.note is None and "cannot read (e.g. a time outside the calendar or before the request)" in (
        outcome.message or "")
