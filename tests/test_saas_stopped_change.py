"""A SaaS erasure's try stopped (asyncio cancellation: a worker shutting down, the attempt cancelled
or timed out) before a change's request went, waiting for the service's rate limit: its journal's
"sending" row must not say the change may have been made (activities/connectors/http_steps.py).
In-process, on the session's database, the Mailchimp stand-in."""

from __future__ import annotations

import asyncio
import uuid

from activities.connectors.http_quota import QuotaLedger
from dsrflow.stores.requests_store import set_status
from schemas.requests import RequestStatus
from tests.letters_as_sent import as_sent
from tests.saas_runs_support import deletes, mailchimp, member_of_lists, newsletter
from tests.saas_support import connector, http_policy, subject
from tests.support import stored_request, unique_email


async def test_a_change_stopped_before_its_request_went_is_not_said_as_perhaps_made(
        pool, settings, monkeypatch, tmp_path):
    """3 memberships; the first deleted, then the try is stopped while the second delete waits
    for its slot, and the request is withdrawn. The record and the withdrawal letter say 1
    change, exact. Before, the second delete's "sending" row stayed, and the close counted it as
    a change that may have been made: "at least 1 change", one unknown."""
    email = unique_email("stopped-change")
    rid = await stored_request(pool, settings, "stopped-change", "erasure", email=email)
    async with mailchimp(monkeypatch) as app:
        member_of_lists(app, email, 3)
        waiting = asyncio.Event()
        acquire = QuotaLedger.acquire

        async def no_slot_after_the_first_delete(ledger: QuotaLedger) -> None:
            if deletes(app):
                waiting.set()
                await asyncio.Event().wait()
            await acquire(ledger)

        monkeypatch.setattr(QuotaLedger, "acquire", no_slot_after_the_first_delete)
        system = connector(http_policy(tmp_path, {"newsletter": newsletter()}), "newsletter", pool)
        try:
            erasing = asyncio.ensure_future(system.erase(subject(email, rid)))
            await asyncio.wait_for(waiting.wait(), 30)
            erasing.cancel()
            await asyncio.gather(erasing, return_exceptions=True)
        finally:
            await system.close()
        assert deletes(app) == [204]
    async with pool.acquire() as conn:
        await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:test-withdrawn", actor="test")
    task = await pool.fetchrow("SELECT partial_changed, partial_unsure FROM system_tasks WHERE request_id = $1",
                               uuid.UUID(rid))
    assert (task["partial_changed"], task["partial_unsure"]) == (1, None)
    letter = await as_sent("cancellation", "erasure", {"reason": "Withdrawn", "withdrawn": True, "acted_in": [],
                                                        "asked_in": ["newsletter"]}, pool=pool, id=rid)
    said = " ".join(letter.text.split())
    assert "by then it had made 1 change to your records there" in said, said
