"""Stripe on the wire, as its API reference documents it: what the shipped configuration sends
(method, path, query, Bearer secret key, Stripe-Version, form-encoded bodies, an Idempotency-Key
on each POST that its retries share), and what the stand-in refuses as Stripe does (a JSON body,
an unknown list parameter, a limit above 100, a malformed version, a key reused with other
parameters)."""

from __future__ import annotations

import time
from datetime import date
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from activities.connectors.base import ErasureContext
from tests.saas_support import collect, connector, stripe_served, subject

KEY = "sk_test_51wire"
YEAR = 365 * 86400


@pytest.fixture
async def stripe(monkeypatch, tmp_path):
    async with stripe_served(monkeypatch, tmp_path, KEY) as served_:
        yield served_


async def test_access_sends_documented_list_requests(stripe, pool):
    app, loaded, _ = stripe
    customer = app.state.data.add_customer("Ada@example.com", "Ada Lovelace")
    app.state.data.add_invoice(customer, int(time.time()))
    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        await collect(connector_, subject("Ada@example.com"))
    finally:
        await connector_.close()
    served_ = app.state.standin.served
    assert [(s.method, s.path, s.status) for s in served_] == [
        ("GET", "/v1/customers", 200), ("GET", "/v1/invoices", 200), ("GET", "/v1/charges", 200)]
    # Stripe's e-mail filter is case-sensitive: the address goes as the subject gave it.
    assert dict(parse_qsl(served_[0].query)) == {"email": "Ada@example.com", "limit": "100"}
    assert dict(parse_qsl(served_[1].query)) == {"customer": customer, "limit": "100"}
    for s in served_:
        assert s.headers["authorization"] == f"Bearer {KEY}"
        assert s.headers["stripe-version"] == "2024-06-20"
        assert "idempotency-key" not in s.headers and s.body is None


async def test_a_minimising_post_is_form_encoded_and_its_retry_keeps_the_idempotency_key(stripe, pool):
    app, loaded, _ = stripe
    data, standin = app.state.data, app.state.standin
    kept = data.add_customer("ada@example.com", "Ada Lovelace", phone="+32 470 00 00 00")
    data.add_invoice(kept, int(time.time()) - YEAR)  # under the accounting hold: minimised
    free = data.add_customer("ada@example.com", "Ada Lovelace")  # no invoices: deleted
    standin.inject(500, path=f"/v1/customers/{kept}")
    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        outcome = await connector_.erase(subject("ada@example.com"), ErasureContext(today=date.today()))
    finally:
        await connector_.close()
    assert outcome.status == "done" and data.customers[kept]["phone"] is None and free not in data.customers
    first, retry = standin.requests("POST", f"/v1/customers/{kept}")
    assert (first.status, retry.status) == (500, 200)
    assert retry.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(retry.body, keep_blank_values=True) == [
        ("phone", ""), ("description", ""), ("shipping", ""), ("metadata[dsr_restricted]", "true")]
    key = retry.headers["idempotency-key"]
    assert first.headers["idempotency-key"] == key and 0 < len(key) <= 255
    (deleted,) = standin.requests("DELETE", f"/v1/customers/{free}")
    assert deleted.status == 200 and deleted.body is None and "idempotency-key" not in deleted.headers


async def test_the_stand_in_refuses_what_stripe_refuses(stripe):
    app, _, url = stripe
    customer = app.state.data.add_customer("ada@example.com", "Ada Lovelace")
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=auth) as http:
        as_json = await http.post(f"/v1/customers/{customer}", json={"phone": ""})
        unknown = await http.get("/v1/customers", params={"email": "ada@example.com", "page_size": 100})
        too_many = await http.get("/v1/customers", params={"limit": 1000})
        version = await http.get("/v1/customers", headers={"Stripe-Version": "latest"})
        no_key = await http.get("/v1/customers", headers={"Authorization": "Bearer sk_test_other"})
        first = await http.post(f"/v1/customers/{customer}", data={"phone": ""}, headers={"Idempotency-Key": "k1"})
        replay = await http.post(f"/v1/customers/{customer}", data={"phone": ""}, headers={"Idempotency-Key": "k1"})
        other = await http.post(f"/v1/customers/{customer}", data={"phone": "+32"}, headers={"Idempotency-Key": "k1"})
        long_key = await http.post(f"/v1/customers/{customer}", content=urlencode({"phone": ""}),
                                   headers={"Idempotency-Key": "k" * 256,
                                            "Content-Type": "application/x-www-form-urlencoded"})
        app.state.data.expired.add("sk_live_rolled")
        expired = await http.get("/v1/customers", headers={"Authorization": "Bearer sk_live_rolled"})
        app.state.standin.inject(403, path="/v1/customers")
        forbidden = await http.get("/v1/customers")
        app.state.standin.inject(429, path="/v1/customers")
        throttled = await http.get("/v1/customers")
    assert as_json.status_code == 400 and "application/x-www-form-urlencoded" in as_json.json()["error"]["message"]
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "parameter_unknown"
    assert too_many.status_code == 400 and too_many.json()["error"]["type"] == "invalid_request_error"
    assert version.status_code == 400
    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "invalid_request_error"
    assert first.status_code == replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json() and "Idempotent-Replayed" not in first.headers
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    assert long_key.status_code == 400
    # An expired key: Stripe's authentication error with its code. A restricted key without the
    # permission: 403, no code (the stand-in said parameter_invalid). A rate limit: 429, no code
    # since API version 2015-09-08 (the stand-in still said rate_limit).
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "api_key_expired"
    assert forbidden.status_code == 403 and "code" not in forbidden.json()["error"]
    assert throttled.status_code == 429 and "code" not in throttled.json()["error"]
