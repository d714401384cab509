"""Staff tokens an operator must act on show on /metrics, and deploy/prometheus/alerts.yml reads
them (dsrflow/infra/metrics.py): tokens in force that expire within 14 days, by role
(DsrStaffTokensExpiring: a script or a colleague stops that day), and tokens refused requests past
their bound in the last day (DsrStaffTokenOverItsBound: a token may be stolen). Before, only an
admin who opened the console's Tokens page saw either. On a database of its own: the gauges count
every token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dsrflow.domain.audit import append_event
from dsrflow.infra.metrics import DatabaseGauges
from dsrflow.stores.staff_tokens import issue_token, revoke_token
from tests.conftest import database_pool
from tests.yaml_files import read_yaml

ALERTS = Path(__file__).resolve().parent.parent / "deploy/prometheus/alerts.yml"


async def _gauges(pool) -> dict[tuple[str, tuple[str, ...]], float]:
    gauges = DatabaseGauges(ttl=0)
    await gauges.refresh(pool, "Europe/Brussels")
    return {(s.name, tuple(s.labels.values())): s.value for f in gauges.collect() for s in f.samples
            if s.name.startswith("dsrflow_staff_tokens")}


async def _over_bound(pool, token_id: str, ago: timedelta) -> None:
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"token:{token_id}:open-limit:{ago}", event_type="staff.open_limit_reached",
                           actor=f"agent:{token_id[:8]}", data={"token_id": token_id},
                           occurred_at=datetime.now(UTC) - ago)


async def test_tokens_expiring_and_tokens_over_their_bound_show_for_the_alerts(postgres):
    async with database_pool(postgres, "token_watch") as (_, pool):
        assert await _gauges(pool) == {
            ("dsrflow_staff_tokens_expiring", ("agent",)): 0, ("dsrflow_staff_tokens_expiring", ("compliance",)): 0,
            ("dsrflow_staff_tokens_expiring", ("admin",)): 0, ("dsrflow_staff_tokens_over_their_bound", ()): 0}
        soon, _ = await issue_token(pool, "agent", "a script", lifetime=timedelta(days=3))
        await issue_token(pool, "admin", "the admin", lifetime=timedelta(days=13))
        await issue_token(pool, "agent", "a colleague", lifetime=timedelta(days=90))  # not soon
        lapsed, _ = await issue_token(pool, "compliance", "lapsed", lifetime=timedelta(days=1))
        await pool.execute("UPDATE staff_tokens SET expires_at = now() - interval '1 hour' WHERE id = $1", lapsed["id"])
        revoked, _ = await issue_token(pool, "agent", "revoked", lifetime=timedelta(days=2))
        await revoke_token(pool, revoked["id"], actor="admin:test")
        # The same token twice today counts once; one refused two days ago counts no more.
        await _over_bound(pool, soon["id"], timedelta(minutes=5))
        await _over_bound(pool, soon["id"], timedelta(hours=2))
        await _over_bound(pool, revoked["id"], timedelta(days=2))

        seen = await _gauges(pool)

    assert seen == {
        ("dsrflow_staff_tokens_expiring", ("agent",)): 1, ("dsrflow_staff_tokens_expiring", ("compliance",)): 0,
        ("dsrflow_staff_tokens_expiring", ("admin",)): 1, ("dsrflow_staff_tokens_over_their_bound", ()): 1}
    rules = {r["alert"]: r for g in read_yaml(ALERTS)["groups"] for r in g["rules"]}
    assert rules["DsrStaffTokensExpiring"]["expr"] == "sum(dsrflow_staff_tokens_expiring) > 0"
    assert rules["DsrStaffTokenOverItsBound"]["expr"] == "max(dsrflow_staff_tokens_over_their_bound) > 0"
    assert rules["DsrStaffTokenOverItsBound"]["labels"]["severity"] == "critical"
