"""A deferred erasure's staff alert is one per failure on record, not one per request, system and
attempt: a request's records in one system kept under statutes that end years apart fail apart
(a refusal in year 6, another in year 10), and the later failure got no alert of its own, its
rows shown failed on a closed request's panel that nobody opens (activities/deferred_processors.py).

In-process against the real database and the SMTP sink: the failures recorded as the sweep records
them (`record_failure`), without a system to fail."""

from __future__ import annotations

import uuid

from activities.deferred_processors import alert_unalerted, record_failure
from tests.conftest import database_pool
from tests.support import letters_for, stored_request, text_of
from workers.dsr_worker import activity_context

_ROWS = "SELECT * FROM deferred_erasures WHERE request_id = $1 AND dataset = $2"


async def test_a_later_failure_under_the_same_attempt_has_an_alert_of_its_own(postgres, settings, mail_sink):
    async with database_pool(postgres, "deferred_alerts") as (database_url, pool):
        ours = settings.model_copy(update={"database_url": database_url})
        rid = await stored_request(pool, ours, "two-failures", "erasure")
        await pool.execute(
            """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                              hold_ref, erase_after, policy_version)
               SELECT id, 'h', 'crm', dataset, '41', 'statutory', dataset, current_date, policy_version
                 FROM dsr_requests, unnest(ARRAY['invoices', 'contracts']) AS dataset WHERE id = $1""",
            uuid.UUID(rid))
        ctx = activity_context(ours, pool)
        for dataset, reason in (("contracts", "the CRM refused: contract under dispute"),
                                ("invoices", "the CRM refused: invoice table locked")):
            await record_failure(ctx, rid, "crm", await pool.fetch(_ROWS, uuid.UUID(rid), dataset), reason,
                                 asked=False)
        await alert_unalerted(ctx)  # the next run: each failure alerted once already
    told = [" ".join(text_of(alert).split()) for alert in letters_for(mail_sink, rid, "staff_alert")]
    assert len(told) == 2
    assert any("contract under dispute" in text for text in told) and any("invoice table locked" in text for text in told)
