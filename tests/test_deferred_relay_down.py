"""A deferred erasure's ask to a processor reached by e-mail, made while the mail relay is down
(activities/deferred_processors.py): the e-mail did not go, so the rows are not on record as
asked (`submitted_at`, `erasure.deferred_submitted`), and the next sweep with the relay back asks
the processor, once. Without the guard (`not outcome.unsent`, 8613cec) the evidence would say the
processor was asked at a moment nothing had been sent to it, and its days to confirm would count
from then."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.testing import ActivityEnvironment

from activities.deferred import DeferredErasureActivities
from activities.processor_mail import REQUEST_PURPOSE
from devstack.processes import free_port
from dsrflow.stores.holds_store import release_hold
from schemas.holds import SweepInput
from tests.fanout_stack import api, fanout_stack_alone
from tests.support import letters_for
from tests.test_deferred_processors import SURVEYS_CONTACT, _events, _kept, _row
from workers.dsr_worker import activity_context, build_worker


async def test_a_deferred_ask_the_relay_did_not_take_is_asked_once_when_it_is_back(
        postgres, settings, dev_server, tmp_path, mail_sink, monkeypatch):
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "deferred_relay_down",
                                  keep_manual=("surveys",)) as (stack, pool):
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            rid, hold = await _kept(http, pool, dev_server.client, stack, "grace@example.com", "surveys")
        async with pool.acquire() as conn:  # released with no worker to sweep: the sweeps below do
            await release_hold(conn, hold["id"], "compliance:test", reason="Claim settled")
        subject = SweepInput(subject_hash=(await _row(pool, rid, "surveys"))["subject_hash"], reason="test")

        down = DeferredErasureActivities(activity_context(
            stack.settings.model_copy(update={"smtp_port": free_port()}), pool))
        report = await ActivityEnvironment().run(down.sweep, subject)
        assert (report.processors_waiting, report.processors_failed) == (1, 0), report
        row = await _row(pool, rid, "surveys")
        assert row["submitted_at"] is None and row["done_at"] is None and row["failed_at"] is None
        assert letters_for(mail_sink, rid, REQUEST_PURPOSE) == []
        assert await _events(pool, rid) == []

        back = DeferredErasureActivities(activity_context(stack.settings, pool))
        for _ in range(2):  # the run that asks, and one after it that only follows the ask
            report = await ActivityEnvironment().run(back.sweep, subject)
            assert (report.processors_waiting, report.processors_failed) == (1, 0), report
        asked = letters_for(mail_sink, rid, REQUEST_PURPOSE)
        assert [m["To"] for m in asked] == ["Privacy team <privacy@surveys.example>"]
        row = await _row(pool, rid, "surveys")
        assert row["submitted_at"] is not None and row["submitted_at"] <= datetime.now(UTC)
        assert await _events(pool, rid) == ["erasure.deferred_submitted"]
