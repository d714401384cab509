"""A restriction and an objection through an http system whose lookup reads two datasets and acts
on one: a Stripe configuration that marks the customer in its metadata (the shipped one has neither
action), run by the real http connector against the Stripe stand-in, its lookup reading the
customer and its invoice. The response letter named both as restricted ("processing of customers
and invoices restricted (1 record)"); now only the customer, the invoice apart as needing nothing.
The console's Systems table and the evidence pack showed Found 2, Changed 1 without saying which:
they now say, per dataset, what the letter says (schemas/dataset_split.py)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from activities.letter_outcome import ACTION_WORDS, NOTHING_NEEDED
from devstack.saas.stripe import create_stripe_app
from dsrflow.i18n import and_list, worded, wording_of
from policy.systems import dataset_words
from tests.evidence_pages import readable, section
from tests.letters_as_sent import LOADED, as_sent, both
from tests.policy_once import policy_of
from tests.saas_support import stripe_config, stripe_configured, subject
from tests.support import console_sign_in, staff_headers, stored_request

KEY = "sk_test_51standin"
# Per request type: the task's action, the metadata its step sets, the request's details, and the
# letter's words for what it did to a dataset.
_TYPES: dict[str, tuple[str, str, dict[str, Any], tuple[str, str]]] = {
    "restriction": ("restrict", "dsr_restricted", {"restriction_grounds": ["accuracy_contested"]},
                    ("processing of %(datasets)s restricted (%(num)d record)",
                     "processing of %(datasets)s restricted (%(num)d records)")),
    "objection": ("object", "dsr_no_marketing", {"objection_scope": "direct_marketing"},
                  ("processing of %(datasets)s stopped, as you objected (%(num)d record)",
                   "processing of %(datasets)s stopped, as you objected (%(num)d records)")),
}


async def _task(request_type: str, monkeypatch: Any, tmp_path: Any, pool: Any) -> dict[str, Any]:
    """The task result of the action on a customer with one invoice, as the fan-out records it
    (under `billing`, whose datasets the shipped policy names alike, so that its letters and pages
    name them in its words)."""
    action, mark, _, _ = _TYPES[request_type]
    step = {"name": "mark", "for_each": "customers", "effect": "changed",
            "request": {"method": "POST", "path": "/v1/customers/{{ item.id }}", "body": {"metadata": {mark: "true"}}}}
    config = stripe_config()
    config["actions"][action] = ({"direct_marketing": {"find": "access", "steps": [step]}} if action == "object"
                                 else {"find": "access", "steps": [step]})
    app = create_stripe_app(KEY)
    customer = app.state.data.add_customer("ada@example.com", "Ada Lovelace")
    app.state.data.add_invoice(customer, int(time.time()) - 86400)
    async with stripe_configured(app, KEY, config, monkeypatch, tmp_path, pool) as connector_:
        who = subject("ada@example.com")
        outcome = await (connector_.object(who, "direct_marketing") if action == "object" else connector_.restrict(who))
    assert app.state.data.customers[customer]["metadata"] == {mark: "true"}
    assert (outcome.status, outcome.found, outcome.changed) == ("done", 2, 1), outcome
    assert {name: counts for name, counts in outcome.datasets.items() if counts.get("found")} == {
        "customers": {"found": 1, "changed": 1}, "invoices": {"found": 1}}, outcome.datasets
    return {"system": "billing", "action": action, "status": outcome.status, "found": outcome.found,
            "changed": outcome.changed, "datasets": outcome.datasets}


@pytest.mark.parametrize("language", ["en", "nl"])
@pytest.mark.parametrize("request_type", ["restriction", "objection"])
async def test_the_letter_names_only_the_dataset_acted_on(monkeypatch, tmp_path, pool, request_type, language):
    action, _, _, done_to = _TYPES[request_type]
    result = await _task(request_type, monkeypatch, tmp_path, pool)
    letter = await as_sent("response", request_type, {"report": {"results": [result]}}, language=language)
    t = worded(language, wording_of("gdpr"))
    systems = LOADED.in_language(language).systems
    customers, invoices = (dataset_words(systems, "billing", d) for d in ("customers", "invoices"))
    one = t.ngettext("%(num)d record", "%(num)d records", 1) % {"num": 1}
    text, html = both(letter)
    assert t.ngettext(*done_to, 1) % {"datasets": customers, "num": 1} in text, text
    assert f"{invoices} – {t.gettext(NOTHING_NEEDED[action])} ({one})" in text, text
    billing = systems["billing"].label
    assert f"{billing} {customers} {t.gettext(ACTION_WORDS[action])} 1" in html, html
    assert f"{billing} {invoices} {t.gettext(NOTHING_NEEDED[action])} 1" in html, html
    for part in (text, html):
        for untrue in (and_list(sorted([customers, invoices]), language),
                       t.ngettext(*done_to, 1) % {"datasets": invoices, "num": 1},
                       f"{invoices} {t.gettext(ACTION_WORDS[action])}"):
            assert untrue not in part, (untrue, part)
    if language == "en" and request_type == "restriction":
        assert "- Billing (customers, invoices, payments, mandates): processing of customers restricted (1 record)" in text
        assert "- Billing (customers, invoices, payments, mandates): invoices – nothing to restrict (1 record)" in text


@pytest.mark.parametrize("request_type", ["restriction", "objection"])
async def test_the_console_and_the_evidence_pack_say_what_the_letter_says(monkeypatch, tmp_path, http, pool,
                                                                        settings, request_type):
    """The Systems table and the pack's Results per system keep Found 2 and Changed 1, and say
    beside them that 1 is the customer's, restricted (objected to), and 1 the invoice's, which
    needed nothing: the letter's lines and counts (the test above)."""
    action, _, details, _ = _TYPES[request_type]
    result = await _task(request_type, monkeypatch, tmp_path, pool)
    rid = await stored_request(pool, settings, f"http-{request_type}", type_=request_type, **details)
    await pool.execute(
        """INSERT INTO system_tasks (request_id, system, action, status, found, changed, datasets)
           VALUES ($1, 'billing', $2, 'done', $3, $4, $5)""",
        uuid.UUID(rid), action, result["found"], result["changed"], result["datasets"])
    systems = policy_of(settings).policy.systems
    customers, invoices = (dataset_words(systems, "billing", d) for d in ("customers", "invoices"))
    said = (f"2 1 — {customers}: {ACTION_WORDS[action]}, 1 record(s); "
            f"{invoices}: {NOTHING_NEEDED[action]}, 1 record(s)")

    pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=await staff_headers(pool))).json()
    (task,) = pack["results"]
    assert task["as_told"] == {"acted_on": ["customers"], "records": 1, "needed_nothing": ["invoices"], "found": 1}
    page = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text)
    assert said in section(page, "Results per system", "Holds and kept records"), page

    await console_sign_in(http, pool, "agent")
    assert said in section(readable((await http.get(f"/console/requests/{rid}")).text), "Systems", "Timeline")
