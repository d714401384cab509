"""`python -m devstack.saas --port P --home DIR`: the four SaaS stand-ins in one process for
`dsrflow up --demo-saas`, each under its own prefix, seeded with the demo population.

    /stripe     Stripe           (customers of the billing demo system, with invoices and charges)
    /hubspot    HubSpot          (contacts of the CRM demo system, with a note each)
    /mailchimp  Mailchimp        (newsletter subscribers of the demo population)
    /ga4        Google Analytics (accepts deletion requests for the analytics identifiers)

Credentials are fixed demo values (DEMO_ENV); the GA4 service-account key is written to
DIR/ga4-service-account.json. `demo_environment` gives the variables the worker needs."""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from devstack.demo.subjects import demo_subjects
from devstack.saas.ga4 import create_ga4_app, new_service_account
from devstack.saas.hubspot import create_hubspot_app
from devstack.saas.mailchimp import create_mailchimp_app
from devstack.saas.stripe import create_stripe_app

DEMO_ENV = {
    "STRIPE_SECRET_KEY": "sk_test_dsrflow_demo",
    "HUBSPOT_CLIENT_ID": "dsrflow-demo", "HUBSPOT_CLIENT_SECRET": "dsrflow-demo-secret",
    "HUBSPOT_REFRESH_TOKEN": "dsrflow-demo-refresh",
    "MAILCHIMP_API_KEY": "0000dsrflowdemo0000-us1",
    "GA4_PROPERTY_ID": "123456789",
}
KEY_FILE = "ga4-service-account.json"


def demo_environment(port: int, home: Path) -> dict[str, str]:
    base = f"http://127.0.0.1:{port}"
    return {**DEMO_ENV, "STRIPE_API_BASE": f"{base}/stripe", "HUBSPOT_API_BASE": f"{base}/hubspot",
            "MAILCHIMP_API_BASE": f"{base}/mailchimp", "GA4_API_BASE": f"{base}/ga4/analytics/v3",
            "GA4_TOKEN_URL": f"{base}/ga4/token", "GA4_SERVICE_ACCOUNT": str(home / KEY_FILE)}


def create_demo_app(home: Path) -> FastAPI:
    rng = random.Random(20260617)
    now = int(time.time())
    stripe = create_stripe_app(DEMO_ENV["STRIPE_SECRET_KEY"])
    hubspot = create_hubspot_app(DEMO_ENV["HUBSPOT_CLIENT_ID"], DEMO_ENV["HUBSPOT_CLIENT_SECRET"],
                                 DEMO_ENV["HUBSPOT_REFRESH_TOKEN"])
    mailchimp = create_mailchimp_app(DEMO_ENV["MAILCHIMP_API_KEY"])
    ga4 = create_ga4_app()
    newsletter, updates = mailchimp.state.data.add_list("Newsletter"), mailchimp.state.data.add_list("Product updates")
    for subject in demo_subjects():
        if subject.in_billing:
            customer = stripe.state.data.add_customer(subject.email, subject.name, phone=subject.phone)
            for _ in range(rng.randint(1, 4) if subject.has_invoices else 0):
                created = now - rng.randint(1, 900) * 86400
                stripe.state.data.add_invoice(customer, created)
                stripe.state.data.add_charge(customer, created)
        if subject.in_crm:
            contact = hubspot.state.data.add_contact(subject.email, subject.first_name, subject.last_name,
                                                     phone=subject.phone, company=subject.company)
            hubspot.state.data.add_note(contact, "Demo call about OneTagger pricing")
        if subject.in_email_marketing:
            mailchimp.state.data.add_member(newsletter, subject.email, FNAME=subject.first_name)
            if rng.random() < 0.3:
                mailchimp.state.data.add_member(updates, subject.email, FNAME=subject.first_name)
    account = new_service_account()
    ga4.state.data.trust(account)
    home.mkdir(parents=True, exist_ok=True)
    key_file = home / KEY_FILE
    key_file.write_text(json.dumps(account))
    key_file.chmod(0o600)
    root = FastAPI(title="dsrflow SaaS stand-ins", docs_url=None, redoc_url=None, openapi_url=None)
    for prefix, app in (("/stripe", stripe), ("/hubspot", hubspot), ("/mailchimp", mailchimp), ("/ga4", ga4)):
        root.mount(prefix, app)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(create_demo_app(args.home), host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
