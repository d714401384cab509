"""A record an erasure keeps again, for longer, is erased at the later date (activities/fanout.py
`keep_evidence`). An erasure's read after its changes (activities/connectors/http_rounds.py) can
find a record held longer than its first pass did: a customer kept through its invoices, one of
which was issued while the erasure ran (tests/test_saas_stripe.py). Its deferred erasure was kept
at the first date (the insert skipped a row already there), so the customer would have been
deleted years before the law allows. A shorter date never replaces a longer one, and a row
already carried out is left as it was. On the real database."""

from __future__ import annotations

import uuid
from datetime import date

from activities.connectors.base import ActionOutcome, HeldRecord
from activities.fanout import FanoutActivities
from tests.saas_support import subject
from tests.support import stored_request
from workers.dsr_worker import activity_context

EARLY, LATE = date(2033, 12, 31), date(2036, 12, 31)


def _kept(*untils: date) -> ActionOutcome:
    return ActionOutcome(status="done", held=[HeldRecord("customers", "cus_1", "statutory", "be_accounting", until)
                                              for until in untils])


async def _erase_after(pool, rid: str) -> list[date]:
    return [row["erase_after"] for row in await pool.fetch(
        "SELECT erase_after FROM deferred_erasures WHERE request_id = $1", uuid.UUID(rid))]


async def test_a_record_kept_again_for_longer_is_erased_at_the_later_date(settings, pool):
    rid = await stored_request(pool, settings, "later-date", "erasure")
    fanout = FanoutActivities(activity_context(settings, pool))
    who = subject("later@example.com", rid)
    keep = lambda outcome: fanout.keep_evidence(rid, "billing_stripe", "v", who, outcome)  # noqa: E731

    await keep(_kept(EARLY))
    assert await _erase_after(pool, rid) == [date(2034, 1, 1)]  # the day after the hold ends
    await keep(_kept(LATE))  # the read after the changes: kept longer
    assert await _erase_after(pool, rid) == [date(2037, 1, 1)]
    await keep(_kept(EARLY))  # a retry of the first pass: never shorter
    assert await _erase_after(pool, rid) == [date(2037, 1, 1)]
    await keep(_kept(EARLY, LATE))  # both in one outcome: one row, the later date
    assert await _erase_after(pool, rid) == [date(2037, 1, 1)]

    await pool.execute("UPDATE deferred_erasures SET done_at = now() WHERE request_id = $1", uuid.UUID(rid))
    await keep(_kept(date(2040, 12, 31)))  # carried out already: left as it was
    assert await _erase_after(pool, rid) == [date(2037, 1, 1)]
