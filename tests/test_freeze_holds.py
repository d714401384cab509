"""A legal-claims hold nobody reviews (freeze audit): the subject's response letter says we review
by its review date whether the claims still require the records it keeps; a hold still in force
after that date shows on /metrics, and DsrLegalHoldPastReview reads it, until it is released.
Before, nothing ever brought such a hold back to anyone, and its records were kept for good.
On a database of its own: the gauge counts every hold."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dsrflow.infra.metrics import DatabaseGauges
from dsrflow.stores.holds_store import place_hold, release_hold
from tests.conftest import database_pool
from tests.yaml_files import read_yaml

TIMEZONE = "Europe/Brussels"  # the controller's: its today decides when a review date has passed
ALERTS = Path(__file__).resolve().parent.parent / "deploy/prometheus/alerts.yml"


async def _past_review(pool) -> float:
    gauges = DatabaseGauges(ttl=0)
    await gauges.refresh(pool, TIMEZONE)
    [value] = [s.value for f in gauges.collect() for s in f.samples if s.name == "dsrflow_legal_holds_past_review"]
    return value


async def test_a_hold_past_its_review_date_shows_until_it_is_released(postgres):
    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    async with database_pool(postgres, "holds_review") as (_, pool), pool.acquire() as conn:
        holds = []
        for email, review in (("a@example.org", today + timedelta(days=30)), ("b@example.org", today + timedelta(days=1))):
            hold, _ = await place_hold(conn, secret=b"k" * 32, email=email, customer_id=None, systems=None,
                                       categories=None, basis="legal_claims", reason="Dispute over contract 2026/17",
                                       review_date=review, actor="compliance:dee")
            holds.append(hold)
        seen = [await _past_review(pool)]
        # Time passes: one review date is today (not yet missed), the other was yesterday.
        await conn.execute("UPDATE legal_holds SET review_date = $2 WHERE id = $1::uuid", holds[0]["id"], today)
        await conn.execute("UPDATE legal_holds SET review_date = $2 WHERE id = $1::uuid", holds[1]["id"],
                           today - timedelta(days=1))
        seen.append(await _past_review(pool))
        await release_hold(conn, holds[1]["id"], "compliance:dee", reason="Claim settled")
        seen.append(await _past_review(pool))
    assert seen == [0, 1, 0]
    rules = {r["alert"]: r for g in read_yaml(ALERTS)["groups"] for r in g["rules"]}
    assert rules["DsrLegalHoldPastReview"]["expr"] == "max(dsrflow_legal_holds_past_review) > 0"
