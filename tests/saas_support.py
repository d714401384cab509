"""Helpers for the SaaS connector tests: a stand-in served over loopback, a policy with http
systems using the shipped configurations (policy/http/*.yaml), and a connector for one of them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from activities.connectors import build_connector
from activities.connectors.base import ConnectorEnv, Subject
from devstack.policy_copies import only_systems
from devstack.saas.ga4 import create_ga4_app, new_service_account
from devstack.saas.hubspot import create_hubspot_app
from devstack.saas.mailchimp import create_mailchimp_app
from devstack.saas.stripe import create_stripe_app
from dsrflow.settings import Settings
from policy.model import DEFAULT_POLICY, LoadedPolicy, load_policy
from tests.fanout_stack import served
from tests.support import english_only
from tests.yaml_files import dump_yaml, read_yaml

SECRET = b"s" * 32


def http_policy(tmp: Path, systems: dict[str, dict[str, Any]], keep: tuple[str, ...] = ()) -> LoadedPolicy:
    """The default policy with only `keep` of its systems, plus the given http systems."""
    content = only_systems(read_yaml(DEFAULT_POLICY), keep)
    content["systems"].update(systems)
    english_only(content)
    path = tmp / f"policy-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(dump_yaml(content, sort_keys=False))
    return load_policy(path)


def http_system(file: str, label: str, vars: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"file": file}
    if vars:
        config["vars"] = vars
    return {"label": label, "connector": "http", "config": config, **extra}


def connector(loaded: LoadedPolicy, name: str, pool: asyncpg.Pool, settings: Settings | None = None):
    policy = loaded.policy
    return build_connector(ConnectorEnv(
        system_name=name, system=policy.systems[name], policy=policy,
        settings=settings or Settings(), secret=SECRET, callback_url="", pool=pool))


def subject(email: str, request_id: str | None = None) -> Subject:
    return Subject(request_id=request_id or str(uuid.uuid4()), email=email, name="Test Subject")


async def collect(connector_, who: Subject) -> list:
    return [record async for record in connector_.access(who)]


@asynccontextmanager
async def google_served(monkeypatch: Any, tmp: Path) -> AsyncIterator[tuple[Any, str]]:
    """The GA4 stand-in on loopback, trusting a new service account (its key in `tmp`), with the
    environment the shipped ga4.yaml reads; yields the app and its URL."""
    app = create_ga4_app()
    account = new_service_account()
    app.state.data.trust(account)
    key_file = tmp / "service-account.json"
    key_file.write_text(json.dumps(account))
    async with served(app) as url:
        monkeypatch.setenv("GA4_API_BASE", f"{url}/analytics/v3")
        monkeypatch.setenv("GA4_TOKEN_URL", f"{url}/token")
        monkeypatch.setenv("GA4_SERVICE_ACCOUNT", str(key_file))
        monkeypatch.setenv("GA4_PROPERTY_ID", str(uuid.uuid4().int % 10**9))  # its own quota ledger
        yield app, url


@asynccontextmanager
async def stripe_served(monkeypatch: Any, tmp: Path, key: str) -> AsyncIterator[tuple[Any, LoadedPolicy, str]]:
    """The Stripe stand-in on loopback with secret key `key`, and a policy whose `billing_stripe`
    system is the shipped stripe.yaml; yields the app, the policy and the URL."""
    app = create_stripe_app(key)
    async with served(app) as url:
        monkeypatch.setenv("STRIPE_API_BASE", url)
        monkeypatch.setenv("STRIPE_SECRET_KEY", key)
        yield app, http_policy(tmp, {"billing_stripe": http_system("http/stripe.yaml", "Stripe billing")}), url


def stripe_config() -> dict[str, Any]:
    """The shipped stripe.yaml, for a test to add actions to (it has access and erasure only)."""
    return read_yaml(DEFAULT_POLICY.parent / "http/stripe.yaml")


@asynccontextmanager
async def stripe_configured(app: Any, key: str, config: dict[str, Any], monkeypatch: Any, tmp: Path,
                            pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """The http connector of a `billing_stripe` system with `config` (`stripe_config` and the
    actions a test adds), on the Stripe stand-in `app` (secret key `key`) served on loopback;
    closed afterwards."""
    async with served(app) as url:
        monkeypatch.setenv("STRIPE_API_BASE", url)
        monkeypatch.setenv("STRIPE_SECRET_KEY", key)
        loaded = http_policy(tmp, {"billing_stripe": {"label": "Stripe", "connector": "http", "config": config}})
        connector_ = connector(loaded, "billing_stripe", pool)
        try:
            yield connector_
        finally:
            await connector_.close()


@asynccontextmanager
async def hubspot_served(monkeypatch: Any, tmp: Path) -> AsyncIterator[tuple[Any, LoadedPolicy, str]]:
    """The HubSpot stand-in on loopback and a policy whose `crm_hubspot` is the shipped
    hubspot.yaml (deleting the contacts found, by id); yields the app, the policy and the URL."""
    app = create_hubspot_app("client-1", "secret-1", "refresh-1")
    async with served(app) as url:
        for name, value in {"HUBSPOT_API_BASE": url, "HUBSPOT_CLIENT_ID": "client-1",
                            "HUBSPOT_CLIENT_SECRET": "secret-1", "HUBSPOT_REFRESH_TOKEN": "refresh-1"}.items():
            monkeypatch.setenv(name, value)
        yield app, http_policy(tmp, {"crm_hubspot": http_system(
            "http/hubspot.yaml", "HubSpot CRM", vars={"blocklist_email": False})}), url


@asynccontextmanager
async def mailchimp_served(monkeypatch: Any, tmp: Path) -> AsyncIterator[tuple[Any, LoadedPolicy, str]]:
    """The Mailchimp stand-in on loopback and a policy whose `newsletter` is the shipped
    mailchimp.yaml; yields the app, the policy and the URL."""
    key = "0123456789abcdef-us21"
    app = create_mailchimp_app(key)
    async with served(app) as url:
        monkeypatch.setenv("MAILCHIMP_API_BASE", url)
        monkeypatch.setenv("MAILCHIMP_API_KEY", key)
        yield app, http_policy(tmp, {"newsletter": http_system("http/mailchimp.yaml", "Newsletter")}), url
