"""A task waiting on its SaaS whose next try meets the other kind of wait (workflows/saas_waits.py):
down, then its quota used up. The note says what it waits for now, and the next try waits for the
quota's renewal, not the outage's backoff. The real workflows on the time-skipping server, with fake
activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from schemas.workflow import waits_unreached
from tests.workflow_fakes import FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, stack_fixture  # noqa: F401 (the fixture)


async def test_a_quota_met_while_the_saas_was_down_waits_for_its_renewal(stack: FastStack):
    """Down, then answering that the day's quota is gone (renewing in 10 hours): the request's
    workflow shows the quota's note (Resolve still taken), nothing is tried before the renewal,
    and the try after it does the task. Before, the quota in the outage's wait was left to the
    activity's retries, a quota day apart, under the note that the system could not be reached."""
    fakes = stack.fakes
    fakes.fail("run_system_action", lambda: ApplicationError("HTTP 503 from the service", type="HttpSystemUnavailable"))
    request = await stack.open(RequestSpec(systems=[FakeSystem("newsletter", connector="http")]))
    await stack.sleep(timedelta(minutes=30))
    await request.until(lambda s: any(waits_unreached(r) and "could not be reached" in (r.message or "")
                                      for r in s.results))

    fakes.fail("run_system_action", lambda: ApplicationError(
        "system newsletter: daily quota used up; it renews at 7 December 2026, 00:00 UTC",
        type="HttpQuotaExhausted", next_retry_delay=timedelta(hours=10)))
    await stack.sleep(timedelta(hours=1))  # the outage's next try meets the quota
    state = await request.until(lambda s: any("quota for today is used up" in (r.message or "") for r in s.results))
    assert waits_unreached(state.results[0]), state.results
    fakes.heal("run_system_action")
    tries = fakes.attempts["run_system_action"]
    await stack.sleep(timedelta(hours=9))
    assert fakes.attempts["run_system_action"] == tries  # the quota renews later
    await stack.sleep(timedelta(hours=2))
    assert (await request.result()).results[0].status == "done"
    assert fakes.attempts["run_system_action"] == tries + 1
