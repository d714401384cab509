"""What `dsrflow up --demo-saas` runs: the four stand-ins under one port, seeded with the demo
population, and a policy whose http systems reach them with the demo credentials."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from devstack.processes import free_port, wait_for_port
from devstack.saas.__main__ import create_demo_app, demo_environment
from devstack.saas.policy import write_demo_saas_policy
from policy.model import DEFAULT_POLICY, load_policy
from tests.fanout_stack import served
from tests.saas_support import collect, connector, subject


async def test_the_demo_policy_reaches_every_stand_in(tmp_path, pool, monkeypatch):
    app = create_demo_app(tmp_path / "saas")
    async with served(app) as url:
        port = int(url.rsplit(":", 1)[1])
        for name, value in demo_environment(port, tmp_path / "saas").items():
            monkeypatch.setenv(name, value)
        loaded = load_policy(write_demo_saas_policy(DEFAULT_POLICY, tmp_path))
        found = {}
        for system in ("billing_stripe", "crm_hubspot", "newsletter_mailchimp", "ga4"):
            connector_ = connector(loaded, system, pool)
            try:
                found[system] = {r.dataset for r in await collect(connector_, subject("ada@example.com"))}
            finally:
                await connector_.close()
    assert found == {"billing_stripe": {"customers", "invoices", "charges"}, "crm_hubspot": {"contacts", "notes"},
                     "newsletter_mailchimp": {"members"}, "ga4": set()}  # GA4 has no access API


def test_the_stand_ins_run_as_a_process(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "devstack.saas", "--port", str(port), "--home", str(tmp_path)],
                            env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, "SaaS stand-ins", 60, proc)
        answer = httpx.get(f"http://127.0.0.1:{port}/stripe/v1/customers", params={"email": "ada@example.com"},
                           headers={"Authorization": "Bearer sk_test_dsrflow_demo"})
        assert answer.status_code == 200 and answer.json()["data"][0]["email"] == "ada@example.com"
        refused = httpx.get(f"http://127.0.0.1:{port}/stripe/v1/customers", headers={"Authorization": "Bearer x"})
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "invalid_request_error"
        assert (tmp_path / "ga4-service-account.json").stat().st_mode & 0o077 == 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_up_offers_the_flag():
    out = subprocess.run([sys.executable, "-m", "cli.main", "up", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"})
    assert "--demo-saas" in out.stdout
