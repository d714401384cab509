"""The http connector kind itself: configurations refused at load with a message naming the
problem, secrets only from the environment, the OAuth2 client-credentials grant, the per-second
rate limit shared through Postgres, and a long Retry-After handed to Temporal."""

from __future__ import annotations

import copy
import time

import pytest
from temporalio.exceptions import ApplicationError

from activities.connectors.base import PermanentConnectorError
from devstack.saas.hubspot import create_hubspot_app
from policy.model import DEFAULT_POLICY, PolicyError
from tests.fanout_stack import served
from tests.saas_support import collect, connector, http_policy, http_system, stripe_served, subject
from tests.yaml_files import dump_yaml, read_yaml

STRIPE = read_yaml(DEFAULT_POLICY.parent / "http/stripe.yaml")


def _inline(tmp_path, config: dict):
    return http_policy(tmp_path, {"billing_stripe": {"label": "Stripe", "connector": "http", "config": config}})


def test_an_unknown_field_fails_at_load_naming_its_path(tmp_path):
    config = copy.deepcopy(STRIPE)
    config["auth"]["token_envv"] = "STRIPE_SECRET_KEY"
    with pytest.raises(PolicyError, match=r"systems\.billing_stripe: .*config\.auth\.bearer\.token_envv: "
                       r"Extra inputs are not permitted"):
        _inline(tmp_path, config)


def test_a_step_with_an_unknown_field_or_a_broken_template_fails_at_load(tmp_path):
    config = copy.deepcopy(STRIPE)
    config["actions"]["access"]["steps"][0]["recrods"] = "data"
    with pytest.raises(PolicyError, match=r"config\.actions\.access\.steps\.0\.recrods: Extra inputs"):
        _inline(tmp_path, config)
    config = copy.deepcopy(STRIPE)
    config["actions"]["erase"]["steps"][1]["request"]["path"] = "/v1/customers/{{ item.id "
    with pytest.raises(PolicyError, match=r"config\.actions\.erase\.steps\.1\.request\.path: .*template"):
        _inline(tmp_path, config)


def test_references_are_checked_against_the_policy(tmp_path):
    config = copy.deepcopy(STRIPE)
    config["datasets"]["invoices"]["hold"]["statute"] = "be_acounting"
    with pytest.raises(PolicyError, match=r"systems\.billing_stripe\.config\.datasets: unknown statutory hold 'be_acounting'"):
        _inline(tmp_path, config)
    config = copy.deepcopy(STRIPE)
    config["actions"]["erase"]["steps"][0]["for_each"] = "customer"
    with pytest.raises(PolicyError, match=r"actions\.erase\.minimise_customer\.for_each: 'customer' is not an earlier step"):
        _inline(tmp_path, config)


def test_a_policy_file_with_other_keys_beside_file_is_refused(tmp_path):
    with pytest.raises(PolicyError, match=r"config: with `file`, only `vars` may be given, not \['base_url'\]"):
        http_policy(tmp_path, {"billing_stripe": {"label": "Stripe", "connector": "http",
                                                  "config": {"file": "http/stripe.yaml", "base_url": "x"}}})


def test_the_policy_version_covers_the_inlined_file(tmp_path):
    loaded = http_policy(tmp_path, {"billing_stripe": http_system("http/stripe.yaml", "Stripe")})
    assert loaded.content["systems"]["billing_stripe"]["config"]["service"] == "Stripe"
    local = copy.deepcopy(STRIPE)
    local["limits"]["per_second"] = 1
    (tmp_path / "http").mkdir()
    (tmp_path / "http/stripe.yaml").write_text(dump_yaml(local))  # next to the policy: preferred
    assert http_policy(tmp_path, {"billing_stripe": http_system("http/stripe.yaml", "Stripe")}).version != loaded.version


async def test_a_missing_secret_fails_naming_the_variable(tmp_path, pool, monkeypatch):
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    loaded = http_policy(tmp_path, {"billing_stripe": http_system("http/stripe.yaml", "Stripe")})
    with pytest.raises(PermanentConnectorError, match=r"system billing_stripe: environment variable "
                       r"STRIPE_SECRET_KEY \(auth\.token_env\) is not set"):
        connector(loaded, "billing_stripe", pool)


async def test_a_missing_setting_variable_fails_naming_it(tmp_path, pool, monkeypatch):
    monkeypatch.setenv("GA4_SERVICE_ACCOUNT", "{}")
    monkeypatch.delenv("GA4_PROPERTY_ID", raising=False)
    loaded = http_policy(tmp_path, {"ga4": http_system("http/ga4.yaml", "GA4")}, keep=("analytics",))
    with pytest.raises(PermanentConnectorError, match="system ga4: config: environment variable GA4_PROPERTY_ID is not set"):
        connector(loaded, "ga4", pool)


async def test_client_credentials_grant_and_a_shared_rate_limit(tmp_path, pool, monkeypatch):
    app = create_hubspot_app("cc-client", "cc-secret")
    app.state.data.add_contact("ada@example.com", "Ada", "Lovelace")
    hubspot = read_yaml(DEFAULT_POLICY.parent / "http/hubspot.yaml")
    async with served(app) as url:
        hubspot.update(base_url=url, limits={"per_second": 2, "key": f"test-{time.time_ns()}"})
        hubspot["auth"] = {"type": "oauth2", "grant": "client_credentials", "token_url": f"{url}/oauth/v1/token",
                           "client_id_env": "CC_ID", "client_secret_env": "CC_SECRET"}
        monkeypatch.setenv("CC_ID", "cc-client")
        monkeypatch.setenv("CC_SECRET", "cc-secret")
        loaded = http_policy(tmp_path, {"crm": {"label": "CRM", "connector": "http", "config": hubspot}})
        first, second = connector(loaded, "crm", pool), connector(loaded, "crm", pool)
        try:  # two connectors (as two workers would be) share the bucket's 2 requests/s
            for c in (first, second):
                await collect(c, subject("ada@example.com"))
                await collect(c, subject("ada@example.com"))
        finally:
            await first.close()
            await second.close()
    assert len(app.state.standin.requests("POST", "/oauth/v1/token")) == 2
    served_at = sorted(s.at for s in app.state.standin.served if "/oauth/" not in s.path)
    assert len(served_at) == 8  # search + associations, four times
    # 2/s: each slot 0.5 s after the one before. A request can reach the stand-in late on a busy
    # machine and the next one on time, so one gap alone proves nothing; any n requests span
    # (n - 1) slots, less the jitter of the first and last (seen: 0.3 s under the full suite).
    assert all(served_at[j] - served_at[i] >= 0.5 * (j - i) - 0.3
               for i in range(len(served_at)) for j in range(i + 1, len(served_at))), served_at
    assert served_at[-1] - served_at[0] >= 3.2


async def test_a_long_retry_after_is_left_to_temporal(tmp_path, pool, monkeypatch):
    async with stripe_served(monkeypatch, tmp_path, "sk_test_x") as (app, loaded, _):
        app.state.standin.inject(429, retry_after="3600", path="/v1/customers")
        connector_ = connector(loaded, "billing_stripe", pool)
        try:
            with pytest.raises(ApplicationError) as raised:
                await collect(connector_, subject("ada@example.com"))
        finally:
            await connector_.close()
    assert raised.value.next_retry_delay is not None and raised.value.next_retry_delay.total_seconds() == 3600
    assert not raised.value.non_retryable and "retrying after 3600s as it asked" in str(raised.value)
