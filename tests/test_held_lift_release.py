"""A lift held by the subject's other restriction, which then ends without ever restricting the
system, is carried out once it ended (activities/held_lifts.py, run by the worker's start sweep).

The first restriction is lifted while the second is under way with analytics in its plan: the
lift leaves analytics to it (`restriction.lift_held`). Before, when the second then ended without
restricting analytics (cancelled, denied, completed without reaching it), nothing ever lifted
analytics: the first was lifted, the second had no lift, and the subject's data stayed restricted
with no restriction in force. The fan-out's activities are called as the workflow's tasks call
them (tests/test_restriction_lift_races.py); the sweep's part is called as the sweep calls it, and
once by a real sweep on a worker killed after it lifted, before it put that on record. A SaaS (the
Stripe stand-in, served in process) is lifted by the sweep as a database is: once, again after a
503, and again after a stop between its requests and the record.
"""

from __future__ import annotations

import asyncio
import html
import uuid
from datetime import timedelta
from typing import Any

import pytest
from starlette.responses import JSONResponse

import activities.held_lifts as held_lifts
import activities.restriction_lock as restriction_lock_module
from activities.fanout import FanoutActivities
from activities.held_lifts import LiftNotCarriedOut, release_held_lifts
from devstack.saas.stripe import create_stripe_app
from dsrflow.domain.references import short_reference
from schemas.request_start import StartSweepInput
from schemas.workflow import StartRequest
from tests.fanout_stack import api, fanout_stack_alone, served
from tests.process_support import died, worker_to_kill
from tests.saas_support import stripe_config
from tests.support import console_sign_in, fetch_rows
from tests.test_restriction_lift_races import EMAIL, RESTRICTED, _in_force, _restriction, _task
from workers.dsr_worker import activity_context
from workflows.request_start_sweep import RequestStartSweepWorkflow

# How the second restriction ends, as its request's workflow leaves it on record.
ENDINGS = {
    "cancelled": "UPDATE dsr_requests SET status = 'cancelled', closed_at = now() WHERE id = $1::uuid",
    "denied": "UPDATE dsr_requests SET status = 'denied', closed_at = now() WHERE id = $1::uuid",
    # Its analytics task failed for good; it completed with the systems it reached on record.
    "completed_without_analytics": "WITH done AS (UPDATE dsr_requests SET status = 'completed', closed_at = now() "
                                   "WHERE id = $1::uuid RETURNING id) INSERT INTO restrictions (request_id, "
                                   "subject_hash, grounds, systems, keeps_from_erasure) SELECT id, 'h', "
                                   "'{needed_for_legal_claims}', '{crm}', true FROM done",
}


async def _held(fanout: FanoutActivities, pool, settings, also: tuple[str, ...] = ()) -> tuple[str, str]:
    """The first restriction lifted while the second, planned and not yet run, holds analytics
    (and the systems `also`)."""
    first = await _in_force(fanout, pool, settings)
    second = await _restriction(pool, settings, "second")
    await _task(fanout, second, "restrict")  # its plan written, as its workflow writes it first
    lifts = [await _task(fanout, first, "lift_restriction")]
    plan = await fanout._plan(StartRequest(request_id=first, policy_version=lifts[0].policy_version))
    lifts += [lifts[0].model_copy(update={"task": t.model_copy(update={"action": "lift_restriction"})})
              for t in plan.tasks if t.system in also]
    for lift in lifts:
        lifted = await fanout._run(lift)
        assert (lifted.status, lifted.changed) == ("done", 0) and short_reference(second) in lifted.message, lifted
    return first, second


async def _restricted(stack) -> list[bool]:
    return [row["restricted"] for row in await fetch_rows(stack.databases["analytics"], RESTRICTED)]


async def _released(pool, first: str) -> list[dict]:
    rows = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                            "AND event_type = 'restriction.lift_released'", first)
    return [dict(row["data"]) for row in rows]


async def test_a_lift_held_by_a_restriction_that_ended_without_restricting_the_system_lifts_it(
        postgres, settings, dev_server, tmp_path):
    """The second restriction ends without restricting analytics (each ending in turn, the subject
    restricted and lifted afresh each time): the next sweep lifts analytics once, and the first's
    timeline says so. The e-mail marketing processor, held too, is not asked (no task of the first
    waits for its answer): its line tells staff to tell it. Before: analytics restricted for ever."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift") as (stack, pool), \
            api(stack) as http:
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        await console_sign_in(http, pool, "compliance")
        for ending, ended in ENDINGS.items():
            first, second = await _held(fanout, pool, stack.settings, also=("email_marketing",))
            assert await release_held_lifts(fanout.ctx) == 0  # the second still under way: left to it
            assert await _restricted(stack) == [True]
            await pool.execute(ended, second)
            assert await release_held_lifts(fanout.ctx) == 2, ending
            assert await _restricted(stack) == [False], ending
            assert await release_held_lifts(fanout.ctx) == 0  # once
            released = {r["system"]: r for r in await _released(pool, first)}
            assert released["analytics"]["by"] == second and released["analytics"]["status"] == "done" \
                and released["analytics"]["changed"] > 0, released
            assert released["email_marketing"] == {"system": "email_marketing", "by": second,
                                                   "status": "needs_attention"}
            # Staff are alerted once to tell the processor, by hand (a closed request's timeline is not enough).
            alerts = await pool.fetch("SELECT letter_key FROM sent_letters WHERE request_id = $1::uuid "
                                      "AND purpose = 'staff_alert'", first)
            assert [row["letter_key"].rsplit(":", 1)[-1] for row in alerts] == ["email_marketing"], alerts
            page = " ".join(html.unescape((await http.get(f"/console/requests/{first}")).text).split())
            ref = short_reference(second)
            assert (f"Website analytics (users and page events): lifted once restriction {ref} ended without "
                    "coming into force there") in page, ending
            assert f": tell it the restriction has ended: restriction {ref} ended without coming into force" in page


async def test_a_lift_held_by_a_restriction_that_restricted_the_system_before_it_was_cancelled_stays_held(
        postgres, settings, dev_server, tmp_path):
    """The second restriction restricted analytics, then was cancelled: it goes on record for what
    it reached and its own lift will lift analytics; the sweep leaves analytics restricted."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift") as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _held(fanout, pool, stack.settings)
        restricted = await fanout._run(await _task(fanout, second, "restrict"))
        assert restricted.status == "done"  # found restricted still (held): nothing to change
        await pool.execute(ENDINGS["cancelled"], second)
        assert await release_held_lifts(fanout.ctx) == 0
        assert await _restricted(stack) == [True] and await _released(pool, first) == []


async def _sweep_killed(stack, client, tmp_path, failpoints: str) -> None:
    """A real start sweep on a worker killed at `failpoints`; the sweep's run then ended, so that
    the test's next run (called as the sweep calls it) is its own."""
    async with worker_to_kill(stack.settings, client, tmp_path, failpoints=failpoints) as worker:
        sweep = await client.start_workflow(RequestStartSweepWorkflow.run, StartSweepInput(),
                                            id=f"held-lift-sweep-{uuid.uuid4().hex[:8]}",
                                            task_queue=stack.settings.task_queue)
        await died(worker, tmp_path)
    await sweep.terminate("the test's next run is its own")


async def test_a_held_lift_carried_out_by_a_sweep_killed_before_it_recorded_it_is_recorded_once(
        postgres, settings, dev_server, tmp_path):
    """A real sweep on a worker killed right after it lifted analytics, still holding the system's
    lock (failpoint restriction-acted), before the lift was on record. The next run lifts again
    (nothing left to change) and records it: one `restriction.lift_released`, analytics lifted."""
    client = dev_server.client
    async with fanout_stack_alone(postgres, settings, client, tmp_path, "heldlift") as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _held(fanout, pool, stack.settings)
        await pool.execute(ENDINGS["cancelled"], second)
        await _sweep_killed(stack, client, tmp_path, f"restriction-acted~analytics:lift_restriction:{first}")
        assert await _restricted(stack) == [False] and await _released(pool, first) == []
        assert await asyncio.wait_for(release_held_lifts(fanout.ctx), 10) == 1
        assert await release_held_lifts(fanout.ctx) == 0
        (released,) = await _released(pool, first)  # analytics alone held here
        assert (released["by"], released["status"], released["changed"]) == (second, "done", 0), released
        assert await _restricted(stack) == [False]


async def test_a_sweep_killed_after_alerting_staff_to_lift_by_hand_records_it_once_and_alerts_once(
        postgres, settings, dev_server, tmp_path):
    """The e-mail processor's held lift, which staff carry out: a real sweep on a worker killed right
    after the staff alert went, before the release was on record (failpoint lift-by-hand-alerted).
    The next run records it without a second alert: one alert, one `restriction.lift_released`."""
    client = dev_server.client
    async with fanout_stack_alone(postgres, settings, client, tmp_path, "heldlift") as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _held(fanout, pool, stack.settings, also=("email_marketing",))
        await pool.execute(ENDINGS["cancelled"], second)
        await _sweep_killed(stack, client, tmp_path, f"lift-by-hand-alerted~email_marketing:{first}")
        assert [r["system"] for r in await _released(pool, first)] == ["analytics"]  # before the kill
        assert await asyncio.wait_for(release_held_lifts(fanout.ctx), 10) == 1
        assert await release_held_lifts(fanout.ctx) == 0
        assert {r["system"]: r["status"] for r in await _released(pool, first)} == {
            "analytics": "done", "email_marketing": "needs_attention"}
        assert await pool.fetchval("SELECT count(*) FROM sent_letters WHERE request_id = $1::uuid "
                                   "AND purpose = 'staff_alert'", first) == 1


# A SaaS beside the demo systems: Stripe, restricting by a mark in the customer's metadata and
# lifting by clearing it (the shipped stripe.yaml has neither action), and the same without a
# lift, which staff carry out by hand.
STRIPE_KEY = "sk_test_heldlift"


def _stripe_system(*, lifts: bool) -> dict[str, Any]:
    config = stripe_config()
    config["retry"] = {"attempts": 1, "backoff_seconds": 0}  # a 5xx fails the call at once: no backoff here

    def mark(value: str) -> dict[str, Any]:
        return {"find": "access", "steps": [{"name": "mark", "for_each": "customers", "effect": "changed", "request": {
            "method": "POST", "path": "/v1/customers/{{ item.id }}", "body": {"metadata": {"dsr_restricted": value}}}}]}
    config["actions"] |= {"restrict": mark("true")} | ({"lift_restriction": mark("")} if lifts else {})
    return {"label": "Stripe billing", "connector": "http", "config": config}


SAAS = {"billing_stripe": _stripe_system(lifts=True), "billing_by_hand": _stripe_system(lifts=False)}


class StripeStandIn:
    """The Stripe stand-in, counting the changes it is sent (its only POSTs here: the marks) and
    answering them 503 while `down`. Its customer is the subject, restricted there."""

    def __init__(self) -> None:
        self.app = create_stripe_app(STRIPE_KEY)
        self.customer = self.app.state.data.customers[self.app.state.data.add_customer(EMAIL, "Lieve Wouters")]
        self.customer["metadata"]["dsr_restricted"] = "true"
        self.changes, self.down, self.hangs = 0, False, False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            while self.hangs:  # until the test lets it answer (its server then stops at once)
                await asyncio.sleep(0.05)
            if self.down:
                await JSONResponse({"error": {"type": "api_error"}}, status_code=503)(scope, receive, send)
                return
            self.changes += 1
        await self.app(scope, receive, send)

    @property
    def restricted(self) -> bool:
        return self.customer["metadata"].get("dsr_restricted") == "true"


@pytest.fixture
async def stripe(monkeypatch):
    stand_in = StripeStandIn()
    async with served(stand_in) as url:
        monkeypatch.setenv("STRIPE_API_BASE", url)
        monkeypatch.setenv("STRIPE_SECRET_KEY", STRIPE_KEY)
        yield stand_in


async def _saas_held(fanout: FanoutActivities, pool, settings) -> tuple[str, str]:
    """The lift held at analytics and both SaaS systems, the holder cancelled: the sweep's to carry out."""
    first, second = await _held(fanout, pool, settings, also=tuple(SAAS))
    await pool.execute(ENDINGS["cancelled"], second)
    return first, second


async def test_a_held_lift_at_a_saas_is_carried_out_by_the_sweep_once(postgres, settings, dev_server, tmp_path,
                                                                      stripe):
    """The Stripe system's lift is carried out by the sweep: one request clearing the mark, on record
    as done, and nothing on the next run. Before, staff were alerted to lift it by hand. The Stripe
    system without a lift in its configuration still alerts staff, once. Billing, a database without
    the subject, answers not_found: on record as nothing to lift (before, the sweep failed on it at
    every run, and never succeeded again)."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift",
                                  extra_systems=SAAS) as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _held(fanout, pool, stack.settings, also=(*SAAS, "billing"))
        assert await release_held_lifts(fanout.ctx) == 0 and stripe.changes == 0  # the holder still under way
        await pool.execute(ENDINGS["cancelled"], second)
        assert await release_held_lifts(fanout.ctx) == 4
        assert (stripe.changes, stripe.restricted, await _restricted(stack)) == (1, False, [False])
        assert await release_held_lifts(fanout.ctx) == 0 and stripe.changes == 1  # once
        released = {r["system"]: r for r in await _released(pool, first)}
        assert released["billing_stripe"] == {"system": "billing_stripe", "by": second, "status": "done", "changed": 1}
        assert released["billing_by_hand"] == {"system": "billing_by_hand", "by": second, "status": "needs_attention"}
        assert released["billing"] == {"system": "billing", "by": second, "status": "not_found", "changed": 0}
        alerts = await pool.fetch("SELECT letter_key FROM sent_letters WHERE request_id = $1::uuid "
                                  "AND purpose = 'staff_alert'", first)
        assert [row["letter_key"].rsplit(":", 1)[-1] for row in alerts] == ["billing_by_hand"], alerts


async def test_a_held_lift_at_a_saas_that_is_down_is_carried_out_by_the_next_run(
        postgres, settings, dev_server, tmp_path, stripe):
    """Stripe answers the lift 503: nothing on record for it (no staff alert either), the sweep's
    run fails as a plain retryable error after the other systems' lifts, and the next run, Stripe
    back, carries it out."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift",
                                  extra_systems=SAAS) as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _saas_held(fanout, pool, stack.settings)
        stripe.down = True
        with pytest.raises(LiftNotCarriedOut, match="HttpSystemUnavailable"):
            await release_held_lifts(fanout.ctx)
        assert sorted(r["system"] for r in await _released(pool, first)) == ["analytics", "billing_by_hand"]
        assert stripe.restricted
        stripe.down = False
        assert await release_held_lifts(fanout.ctx) == 1
        assert (stripe.changes, stripe.restricted) == (1, False)
        assert {r["system"]: r["status"] for r in await _released(pool, first)}["billing_stripe"] == "done"
        assert await release_held_lifts(fanout.ctx) == 0 and stripe.changes == 1


async def test_a_held_lift_at_a_saas_killed_before_its_record_is_carried_out_again_and_recorded_once(
        postgres, settings, dev_server, tmp_path, stripe, monkeypatch):
    """The sweep stops right after Stripe cleared the mark, holding the system's lock, before the
    lift is on record (the place of failpoint restriction-acted, raised in process). The next run
    finds no record and lifts again, whole (the run keeps no journal): one more request, nothing
    left to change, and one `restriction.lift_released`."""

    class Killed(Exception):
        pass

    def failpoint(name: str, detail: str = "") -> None:
        if name == "restriction-acted" and detail.startswith("billing_stripe:lift_restriction:"):
            raise Killed(detail)

    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift",
                                  extra_systems=SAAS) as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _saas_held(fanout, pool, stack.settings)
        with monkeypatch.context() as patched:
            patched.setattr(restriction_lock_module, "failpoint", failpoint)
            with pytest.raises(Killed):
                await release_held_lifts(fanout.ctx)
        assert (stripe.changes, stripe.restricted) == (1, False)
        assert "billing_stripe" not in {r["system"] for r in await _released(pool, first)}
        assert await release_held_lifts(fanout.ctx) == 1
        assert await release_held_lifts(fanout.ctx) == 0
        assert (stripe.changes, stripe.restricted) == (2, False)
        assert [r for r in await _released(pool, first) if r["system"] == "billing_stripe"] == [
            {"system": "billing_stripe", "by": second, "status": "done", "changed": 1}]


@pytest.mark.parametrize("ended, after_outage", [("cancelled", False), ("completed", True)])
async def test_the_lift_of_a_closed_restriction_reaches_a_saas(postgres, settings, dev_server, tmp_path, stripe,
                                                              ended, after_outage):
    """A restriction's lift runs on its closed request: completed, or cancelled after it restricted
    the subject (it stays in force until compliance lifts it: tests/test_restriction_closed_partway.py).
    At a SaaS two checks meant for a withdrawn request's tasks stopped it: the run's journal took
    the close for a reason to stop before the first change, and a try after the SaaS had been
    unreachable (`after_outage`) was settled "closed while the task waited", nothing sent. Either
    way the data stayed restricted at Stripe with the restriction on record as lifted."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "closedlift",
                                  extra_systems=SAAS) as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first = await _in_force(fanout, pool, stack.settings)  # completed
        if ended != "completed":
            await pool.execute(ENDINGS[ended], first)
        lift = await _task(fanout, first, "lift_restriction")
        plan = await fanout._plan(StartRequest(request_id=first, policy_version=lift.policy_version))
        at_stripe = lift.model_copy(update={"after_outage": after_outage, "task": next(
            t for t in plan.tasks if t.system == "billing_stripe").model_copy(update={"action": "lift_restriction"})})
        lifted = await fanout._run(at_stripe)
        assert (lifted.status, lifted.changed) == ("done", 1), lifted
        assert (stripe.changes, stripe.restricted) == (1, False)


async def test_a_saas_failing_the_held_lift_for_a_day_is_handed_to_staff(postgres, settings, dev_server, tmp_path,
                                                                         stripe, monkeypatch):
    """Stripe answers the lift 503 run after run (an account closed, its key revoked): the first
    failure goes on the lift's timeline, and once it has failed for `GIVE_UP_AFTER` staff are alerted
    to tell it by hand, once, and the release is on record as theirs with the error's type. Before,
    it failed every run for ever: the sweep never succeeded again and nothing named the lift."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift",
                                  extra_systems=SAAS) as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, second = await _saas_held(fanout, pool, stack.settings)
        stripe.down = True
        for _ in range(2):  # within the day: tried again, its first failure on the timeline once
            with pytest.raises(LiftNotCarriedOut, match="HttpSystemUnavailable"):
                await release_held_lifts(fanout.ctx)
        failing = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                                   "AND event_type = 'restriction.lift_release_failing'", first)
        assert [dict(row["data"]) for row in failing] == [{"system": "billing_stripe", "error": "HttpSystemUnavailable"}]
        monkeypatch.setattr(held_lifts, "GIVE_UP_AFTER", timedelta(0))  # the day has passed
        assert await release_held_lifts(fanout.ctx) == 1
        assert await release_held_lifts(fanout.ctx) == 0  # settled: not asked again
        released = {r["system"]: r for r in await _released(pool, first)}["billing_stripe"]
        assert released == {"system": "billing_stripe", "by": second, "status": "needs_attention",
                            "failed": "HttpSystemUnavailable"}
        alerts = await pool.fetch("SELECT letter_key FROM sent_letters WHERE request_id = $1::uuid "
                                  "AND purpose = 'staff_alert'", first)
        assert [row["letter_key"].rsplit(":", 1)[-1] for row in alerts].count("billing_stripe") == 1, alerts
        assert stripe.restricted and stripe.changes == 0  # nothing reached it: staff tell it


async def test_a_saas_that_hangs_fails_the_held_lift_in_bounded_time(postgres, settings, dev_server, tmp_path,
                                                                   stripe, monkeypatch):
    """Stripe takes the lift's request and never answers: the lift is cut off (`LIFT_SECONDS`) as a
    failure of its own, on the timeline, so a day of them hands it to staff. Before, the SaaS's
    retries outlasted the sweep's heartbeat timeout: the activity was cancelled, nothing of the
    lift's own failure was on record, and it could never be handed to staff."""
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "heldlift",
                                  extra_systems=SAAS) as (stack, pool):
        fanout = FanoutActivities(activity_context(stack.settings, pool))
        first, _ = await _saas_held(fanout, pool, stack.settings)
        stripe.hangs = True
        monkeypatch.setattr(held_lifts, "LIFT_SECONDS", 0.5)
        with pytest.raises(LiftNotCarriedOut, match="TimeoutError"):
            await asyncio.wait_for(release_held_lifts(fanout.ctx), 10)
        failing = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1::uuid "
                                   "AND event_type = 'restriction.lift_release_failing'", first)
        stripe.hangs = False
        assert [dict(row["data"]) for row in failing] == [{"system": "billing_stripe", "error": "TimeoutError"}]
