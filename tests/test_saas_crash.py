"""A SaaS erasure has no transaction: its requests commit one by one at the service. A worker killed
part-way through them, or right after the last, before the task's result was stored: the evidence of
what the steps were about to do was kept before the first request went, so the retry, which finds
less (or nothing) left to do, reports the erasure as a clean run does, and the erasure ledger names
every record that went. Before, the retry found the deleted customer gone and reported only what was
left ("found 1" where a clean run says 2) with no ledger row for the deleted one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from activities.task_outcomes import resumed
from devstack.saas.stripe import create_stripe_app
from schemas.workflow import TaskResult, workflow_id_for
from tests.fanout_stack import FanoutStack, api, fanout_stack, served
from tests.process_support import died, worker_to_kill
from tests.saas_support import http_system
from tests.support import attested_request, unique_email
from workers.dsr_worker import build_worker

KEY = "sk_test_crash"
SYSTEMS = {"billing_stripe": http_system("http/stripe.yaml", "Stripe (card payments)")}


@pytest.fixture(scope="module")
async def stripe() -> AsyncIterator:
    app = create_stripe_app(KEY)
    async with served(app) as url:
        with pytest.MonkeyPatch.context() as env:  # read by the worker processes too
            env.setenv("STRIPE_API_BASE", url)
            env.setenv("STRIPE_SECRET_KEY", KEY)
            yield app.state.data


@pytest.fixture(scope="module")
async def stack(stripe, postgres, settings, dev_server, tmp_path_factory) -> AsyncIterator[FanoutStack]:
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path_factory.mktemp("saas-crash"),
                            extra_systems=SYSTEMS) as stack:
        yield stack


def _customers(stripe, label: str) -> tuple[str, str, str]:
    """A subject with two Stripe customers: one with last month's invoice, which the accounting
    hold keeps (minimised), and one with none, which is deleted. (e-mail, kept, deleted)"""
    email = unique_email(label)
    kept = stripe.add_customer(email, "Ada Lovelace", phone="+32 470 00 00 00")
    stripe.add_invoice(kept, int(time.time()) - 30 * 86400)
    return email, kept, stripe.add_customer(email, "Ada Lovelace", phone="+32 470 00 00 01")


def _stripe_result(state: dict) -> dict:
    (result,) = [r for r in state["results"] if r["system"] == "billing_stripe"]
    return {k: result[k] for k in ("status", "found", "changed", "kept", "datasets", "kept_records")}


async def _ledger(pool, request_id: str) -> list[tuple]:
    rows = await pool.fetch("SELECT dataset, record_key, action FROM erasure_ledger "
                            "WHERE request_id = $1 AND system = 'billing_stripe' ORDER BY 2", uuid.UUID(request_id))
    return [tuple(r) for r in rows]


@pytest.fixture(scope="module")
async def clean(stripe, stack, pool, dev_server) -> tuple[dict, list[tuple]]:
    """A subject's erasure with nothing killed: its Stripe result, and its ledger with the
    customers' ids replaced by the part they play."""
    email, kept, deleted = _customers(stripe, "clean")
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await attested_request(http, pool, "erasure", email)
        state = await dev_server.client.get_workflow_handle(workflow_id_for(rid)).result()
    roles = {kept: "kept", deleted: "deleted"}
    return _stripe_result(state), [(d, roles[k], a) for d, k, a in await _ledger(pool, rid)]


async def test_a_saas_erasure_cut_off_by_a_killed_worker_is_reported_as_a_clean_run(
        stripe, stack, pool, dev_server, tmp_path, clean):
    """Killed after its last request (the customer deleted) and before its result was stored."""
    client = dev_server.client
    email, kept, deleted = _customers(stripe, "crash")
    async with api(stack) as http:
        async with worker_to_kill(stack.settings, client, tmp_path, failpoints="http-effect-sent~billing_stripe#2") as worker:
            rid = await attested_request(http, pool, "erasure", email)
            await died(worker, tmp_path)
        async with build_worker(client, stack.settings, pool):
            state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 120)

    clean_result, clean_ledger = clean
    assert clean_result["datasets"]["customers"] == {"found": 2, "minimised": 1, "deleted": 1, "kept": 1}
    assert _stripe_result(state) == clean_result
    assert clean_ledger == [("customers", "deleted", "deleted")]
    assert await _ledger(pool, rid) == [("customers", deleted, "deleted")]
    # And the service holds what a clean run leaves: the held customer minimised, the other gone.
    assert deleted not in stripe.customers
    assert stripe.customers[kept]["phone"] is None


def test_a_retry_that_finished_what_its_try_began_reports_both_together() -> None:
    """Killed part-way (the held customer minimised, the other not yet deleted): the retry finds
    both customers, minimises one again and deletes the other; the same counts as the plan, once.
    Killed after the last request: the retry finds only the held customer; the plan's counts stand.
    A retry with nothing left to do reports the plan, not "not found"."""
    planned = TaskResult(system="billing_stripe", action="erase", status="done", found=3, changed=2, kept=2,
                         datasets={"customers": {"found": 2, "minimised": 1, "deleted": 1, "kept": 1},
                                   "invoices": {"found": 1, "kept": 1}})
    assert resumed(planned, planned) == planned
    rest = planned.model_copy(update={"found": 2, "changed": 1, "datasets": {
        "customers": {"found": 1, "minimised": 1, "kept": 1}, "invoices": {"found": 1, "kept": 1}}})
    assert resumed(planned, rest) == planned
    nothing = TaskResult(system="billing_stripe", action="erase", status="not_found", message="none")
    assert resumed(planned, nothing) == planned
