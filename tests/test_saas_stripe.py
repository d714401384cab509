"""The shipped Stripe configuration against the Stripe stand-in over loopback: access with paging,
erasure under the billing hold, Retry-After, a refused key, and a correction that leaves what the
hold kept."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from activities.connectors.base import ErasureContext, PermanentConnectorError
from devstack.saas.stripe import create_stripe_app
from dsrflow.i18n import and_list, worded, wording_of
from policy.systems import dataset_words
from tests.letters_as_sent import LOADED, as_sent, both
from tests.saas_support import collect, connector, stripe_config, stripe_configured, stripe_served, subject

KEY = "sk_test_51standin"
NOW = int(time.time())
YEAR = 365 * 86400


@pytest.fixture
async def stripe(monkeypatch, tmp_path):
    async with stripe_served(monkeypatch, tmp_path, KEY) as (app, loaded, _):
        yield app, loaded


async def test_access_pages_through_customers_invoices_and_charges(stripe, pool):
    app, loaded = stripe
    data, standin = app.state.data, app.state.standin
    standin.max_page_size = 2  # Stripe's own cap is 100: small pages make paging visible
    customer = data.add_customer("ada@example.com", "Ada Lovelace", phone="+32 470 00 00 00")
    data.add_customer("other@example.com", "Someone Else")
    for i in range(5):
        data.add_invoice(customer, NOW - i * 86400)
    data.add_charge(customer, NOW)
    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        records = await collect(connector_, subject("ada@example.com"))
    finally:
        await connector_.close()
    by_dataset = {}
    for record in records:
        by_dataset.setdefault(record.dataset, []).append(record)
    assert len(by_dataset["customers"]) == 1
    assert by_dataset["customers"][0].fields["phone"] == "+32 470 00 00 00"
    assert by_dataset["customers"][0].category == "account"
    assert len(by_dataset["invoices"]) == 5 and by_dataset["invoices"][0].category == "payments"
    assert set(by_dataset["invoices"][0].fields) == {"id", "number", "created", "total", "currency", "status"}
    assert len(by_dataset["charges"]) == 1
    invoice_pages = standin.requests("GET", "/v1/invoices")
    assert len(invoice_pages) == 3  # 2 + 2 + 1, following starting_after


async def test_erasure_keeps_a_customer_with_invoices_under_the_billing_hold(stripe, pool):
    app, loaded = stripe
    data = app.state.data
    kept = data.add_customer("ada@example.com", "Ada Lovelace", phone="+32 470 00 00 00")
    data.add_invoice(kept, NOW - YEAR)
    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        outcome = await connector_.erase(subject("ada@example.com"), ErasureContext(today=date.today()))
    finally:
        await connector_.close()
    assert outcome.status == "done"
    customer = data.customers[kept]
    assert customer["phone"] is None and customer["metadata"] == {"dsr_restricted": "true"}
    assert customer["name"] == "Ada Lovelace"  # an invoice must show it
    held = {(h.dataset, h.hold_ref) for h in outcome.held}
    assert held == {("customers", "be_accounting"), ("invoices", "be_accounting")}
    invoice_year = datetime.fromtimestamp(NOW - YEAR, UTC).year
    assert {h.until for h in outcome.held} == {date(invoice_year + 10, 12, 31)}
    assert outcome.datasets["customers"] == {"found": 1, "minimised": 1, "kept": 1}
    assert outcome.erased == {}

    # When the hold ends, the deferred sweep erases the customer by key.
    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        erased = await connector_.erase_keys({"customers": [kept], "invoices": ["in_x"]})
    finally:
        await connector_.close()
    assert erased == {"customers": [(kept, "deleted")]}
    assert kept not in data.customers


async def test_an_invoice_issued_while_the_erasure_runs_keeps_the_customer_to_its_own_end(stripe, pool):
    """The customer is kept under the accounting hold through an invoice of three years ago. As it
    is minimised, a new invoice is issued: the erasure's read after its changes finds the customer
    held until ten years after that one, and the customer is kept until then. Before, the read
    kept only records new to the run, and the customer was to be deleted at the earlier date,
    seven years before the law allows."""
    app, loaded = stripe
    data = app.state.data
    kept = data.add_customer("ada@example.com", "Ada Lovelace")
    data.add_invoice(kept, NOW - 3 * YEAR)
    issued: list[str] = []

    def invoiced_meanwhile(request: Any, document: Any) -> Any:
        if not issued:
            issued.append(data.add_invoice(kept, NOW))
        return document

    app.state.standin.tamper(f"/v1/customers/{kept}", invoiced_meanwhile, method="POST")
    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        outcome = await connector_.erase(subject("ada@example.com"), ErasureContext(today=date.today()))
    finally:
        await connector_.close()
    assert outcome.status == "done", outcome.message
    year = datetime.fromtimestamp(NOW, UTC).year
    customer = {h.key: h.until for h in outcome.held if h.dataset == "customers"}
    assert customer == {kept: date(year + 10, 12, 31)}, customer
    assert {h.key for h in outcome.held if h.dataset == "invoices"} >= set(issued)


async def test_erasure_deletes_a_customer_without_held_documents(stripe, pool):
    app, loaded = stripe
    data = app.state.data
    old = data.add_customer("grace@example.com", "Grace Hopper")
    data.add_invoice(old, NOW - 12 * YEAR)  # beyond the 10-year hold
    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        outcome = await connector_.erase(subject("grace@example.com"), ErasureContext(today=date.today()))
        again = await connector_.erase(subject("grace@example.com"), ErasureContext(today=date.today()))
    finally:
        await connector_.close()
    assert old not in data.customers
    assert outcome.erased == {"customers": [(old, "deleted")]} and outcome.held == []
    assert outcome.datasets["customers"] == {"found": 1, "deleted": 1}
    assert again.status == "not_found"


async def test_a_429_with_retry_after_is_honoured(stripe, pool):
    app, loaded = stripe
    app.state.data.add_customer("ada@example.com", "Ada Lovelace")
    app.state.standin.inject(429, retry_after="1", path="/v1/customers")
    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        records = await collect(connector_, subject("ada@example.com"))
    finally:
        await connector_.close()
    assert [r.dataset for r in records] == ["customers"]
    first, second = app.state.standin.requests("GET", "/v1/customers")[:2]
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 1.0


async def test_a_refused_key_is_a_permanent_error_naming_system_and_status(stripe, pool, monkeypatch):
    _, loaded = stripe
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_wrong")
    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        with pytest.raises(PermanentConnectorError) as raised:
            await collect(connector_, subject("ada@example.com"))
    finally:
        await connector_.close()
    message = str(raised.value)
    assert "system billing_stripe" in message and "HTTP 401" in message and "GET /v1/customers" in message
    assert "ada@example.com" not in message


async def test_the_evidence_is_heard_before_the_first_request_changes_anything(stripe, pool):
    """A SaaS API has no transaction: the erasure's evidence (what it will minimise, delete and
    keep) is kept before any request changes the service, so a process killed part-way leaves it
    (tests/test_saas_crash.py kills one). So too when a hold ends and the kept customer goes."""
    app, loaded = stripe
    data = app.state.data
    kept = data.add_customer("ada@example.com", "Ada Lovelace", phone="+32 470 00 00 00")
    data.add_invoice(kept, NOW - YEAR)
    free = data.add_customer("ada@example.com", "Ada Lovelace", phone="+32 470 00 00 01")
    heard = []

    async def keep(outcome) -> None:  # the service untouched as yet
        assert free in data.customers and data.customers[kept]["phone"] == "+32 470 00 00 00"
        heard.append(outcome)

    async def keep_keys(erased) -> None:
        assert kept in data.customers
        heard.append(erased)

    connector_ = connector(loaded, "billing_stripe", pool)
    try:
        outcome = await connector_.erase(subject("ada@example.com"),
                                         ErasureContext(today=date.today(), before_commit=keep))
        assert free not in data.customers and data.customers[kept]["phone"] is None
        (planned,) = heard
        heard.clear()
        erased = await connector_.erase_keys({"customers": [kept]}, before_commit=keep_keys)
    finally:
        await connector_.close()
    assert planned.datasets == outcome.datasets and planned.datasets["customers"] == {
        "found": 2, "minimised": 1, "deleted": 1, "kept": 1}
    assert planned.erased == outcome.erased == {"customers": [(free, "deleted")]}
    assert planned.held == outcome.held
    assert heard == [{"customers": [(kept, "deleted")]}] and erased == heard[0]
    assert kept not in data.customers


def _correcting_names() -> dict[str, Any]:
    """The shipped stripe.yaml with a correction of the customers' names, found by its access
    lookup (which reads customers, their invoices and charges)."""
    config = stripe_config()
    config["actions"]["rectify"] = {"find": "access", "steps": [{
        "name": "correct_name", "for_each": "customers", "effect": "changed",
        "request": {"method": "POST", "path": "/v1/customers/{{ item.id }}",
                    "body": {"name": "{{ corrections.name }}"}}}]}
    return config


async def test_a_correction_leaves_the_customer_an_erasure_kept_for_its_invoices(monkeypatch, tmp_path, pool):
    """A Stripe configuration that corrects names (the shipped one has no rectification): the
    customer an erasure kept, minimised, for its invoices under the accounting hold stays as the law
    keeps it, whatever the steps would send; another customer of the subject is corrected, and the
    task says how many it left."""
    app, config = create_stripe_app(KEY), _correcting_names()
    data = app.state.data
    kept = data.add_customer("ada@example.com", "Ada Lovelace")
    data.add_invoice(kept, NOW - YEAR)
    current = data.add_customer("ada@example.com", "Ada Lovelace")
    alone = data.add_customer("grace@example.com", "Grace Hopper")  # her one customer, kept
    data.add_invoice(alone, NOW - YEAR)
    async with stripe_configured(app, KEY, config, monkeypatch, tmp_path, pool) as connector_:
        who = replace(subject("ada@example.com"), held={"billing_stripe.customers": [kept]})
        outcome = await connector_.rectify(who, {"name": "Ada King"})
        grace = replace(subject("grace@example.com"), held={"billing_stripe.customers": [alone]})
        left_alone = await connector_.rectify(grace, {"name": "Grace Murray"})
    assert (data.customers[kept]["name"], data.customers[current]["name"]) == ("Ada Lovelace", "Ada King")
    # The record left is counted apart from those found, as the sql connector counts it.
    assert outcome.datasets["customers"] == {"found": 1, "changed": 1, "left": 1} and outcome.changed == 1
    assert outcome.message == ("1 record(s) kept under a hold since an erasure were left as kept: the law keeps "
                               "them as they were")
    # Every record left: done (the record exists), nothing found to correct; not "not_found".
    assert data.customers[alone]["name"] == "Grace Hopper"
    assert (left_alone.status, left_alone.changed, left_alone.datasets["customers"]) == (
        "done", 0, {"found": 0, "left": 1}), left_alone


@pytest.mark.parametrize("language", ["en", "fr"])
async def test_a_correction_letter_names_as_corrected_only_the_dataset_it_changed(monkeypatch, tmp_path, pool,
                                                                                  language):
    """The lookup reads the customer and its invoice; the correction changes the customer alone.
    The letter said "customers and invoices corrected (1 record)": now the customers corrected,
    the invoices as holding nothing to correct. The letter is read under the shipped policy, whose
    translations cover its own systems: the task's counts as billing's, whose datasets are named
    alike (a policy moving billing to Stripe records them so)."""
    app, config = create_stripe_app(KEY), _correcting_names()
    customer = app.state.data.add_customer("ada@example.com", "Ada Lovelace")
    app.state.data.add_invoice(customer, NOW - YEAR)
    async with stripe_configured(app, KEY, config, monkeypatch, tmp_path, pool) as connector_:
        outcome = await connector_.rectify(subject("ada@example.com"), {"name": "Ada King"})
    assert {name: counts for name, counts in outcome.datasets.items() if counts.get("found")} == {
        "customers": {"found": 1, "changed": 1}, "invoices": {"found": 1}}, outcome.datasets
    result = {"system": "billing", "action": "rectify", "status": outcome.status, "found": outcome.found,
              "changed": outcome.changed, "datasets": outcome.datasets}
    letter = await as_sent("response", "rectification", {"report": {"results": [result]}}, language=language)
    t = worded(language, wording_of("gdpr"))
    systems = LOADED.in_language(language).systems
    customers, invoices = (dataset_words(systems, "billing", d) for d in ("customers", "invoices"))
    one = t.ngettext("%(num)d record", "%(num)d records", 1) % {"num": 1}
    corrected = t.ngettext("%(datasets)s corrected (%(num)d record)", "%(datasets)s corrected (%(num)d records)",
                           1) % {"datasets": customers, "num": 1}
    text, html = both(letter)
    assert corrected in text, text
    assert f"{invoices} – {t.gettext('nothing to correct')} ({one})" in text, text
    for part in (text, html):
        assert t.gettext("We have now completed your request.") in part, part
        for untrue in (and_list(sorted([customers, invoices]), language), f"{invoices} {t.gettext('corrected')}",
                       t.ngettext("%(datasets)s corrected (%(num)d record)", "%(datasets)s corrected (%(num)d records)",
                                  1) % {"datasets": invoices, "num": 1}):
            assert untrue not in part, (untrue, part)
    if language == "en":
        assert "- Billing (customers, invoices, payments, mandates): customers corrected (1 record)" in text
        assert "- Billing (customers, invoices, payments, mandates): invoices – nothing to correct (1 record)" in text
