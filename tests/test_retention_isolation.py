"""One retention rule whose system cannot be reached no longer holds back the others. Before, the
sweep's activity raised at that rule and was retried for as long as the system was away: the
rules after it (web logs, analytics) never ran, and records were kept past their periods."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dateutil.relativedelta import relativedelta
from temporalio.testing import ActivityEnvironment

from activities.retention import RetentionActivities
from schemas.retention import RetentionSweepInput
from tests.fanout_stack import fanout_stack_alone
from tests.support import fetch_rows
from workers.dsr_worker import activity_context

_OLD_LOGS = "SELECT count(*) AS n FROM page_events WHERE occurred_at < $1 AND (ip IS NOT NULL OR device_id IS NOT NULL)"


async def test_an_unreachable_system_holds_back_only_its_own_rule(postgres, settings, dev_server, tmp_path):
    # A database of its own: another test's legal-claims hold on a demo subject would keep that
    # subject's old logs (seen in CI: 51 rows left), and this one's erasures stay out of theirs.
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "retention_isolation") as (
            stack, pool):
        crm, analytics = stack.databases["crm"], stack.databases["analytics"]
        cutoff = datetime.now(UTC) - relativedelta(months=12)
        assert (await fetch_rows(analytics, _OLD_LOGS, cutoff))[0]["n"] > 1000
        crm_name = crm.rsplit("/", 1)[1].split("?")[0]
        # Every account active: the CRM's rule, once it runs, opens no erasure.
        await fetch_rows(crm, "UPDATE contacts SET last_seen_at = now() RETURNING 1")
        # The CRM goes away: its database takes no connections (a failover, a network outage).
        await pool.execute(f'ALTER DATABASE "{crm_name}" ALLOW_CONNECTIONS false')
        sweep = RetentionActivities(activity_context(stack.settings, pool)).sweep
        rules = RetentionSweepInput(reason="test", rules=["inactive_accounts", "web_logs"],
                                    as_of=datetime.now(UTC))
        try:
            with pytest.raises(ConnectionError) as raised:
                await ActivityEnvironment(client=dev_server.client).run(sweep, rules)
            # Tried again (the activity's retry), for the CRM's rule only: the web logs are done.
            assert "inactive_accounts" in str(raised.value) and "web_logs" not in str(raised.value)
            assert (await fetch_rows(analytics, _OLD_LOGS, cutoff - relativedelta(minutes=5)))[0]["n"] == 0
            applied = await pool.fetch("SELECT data->>'rule' AS rule FROM audit_events WHERE event_key = ANY($1::text[])",
                                       [f"retention:{r}:{rules.as_of.isoformat()}" for r in rules.rules or []])
            assert [r["rule"] for r in applied] == ["web_logs"]
        finally:
            await pool.execute(f'ALTER DATABASE "{crm_name}" ALLOW_CONNECTIONS true')
        # The CRM is back: the retry runs to the end, the web logs' rule once more with nothing left.
        report = await ActivityEnvironment(client=dev_server.client).run(sweep, rules)
        assert [(r.rule, r.error) for r in report.rules] == [("inactive_accounts", None), ("web_logs", None)]
        assert (report.rules[0].due, report.rules[0].started) == (0, 0)
