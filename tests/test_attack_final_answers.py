"""A hostile subject against the finality of an appeal's or a complaint's outcome (docs/security.md,
"A hostile subject and a low-privilege agent against the running product"). The real app in-process
over ASGI, PostgreSQL and Temporal; no worker: each attack is answered at intake, before a workflow
would run."""

from __future__ import annotations

import uuid
from typing import Any

from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import create_request
from policy.model import DEFAULT_POLICY
from schemas.requests import NewRequest
from tests.policy_once import policy_of
from tests.ratelimit_support import app_clients, stored_for, unique_ip
from tests.refused_requests import stored_refusal
from tests.support import staff_headers, unique_email


async def _appeal_closed(pool: Any, settings: Any, refused: str, email: str, regime: str, type_: str, status: str,
                         reason_code: str | None = None, **details: Any) -> str:
    """An appeal (or complaint) of `refused` stored as closed with `status` (a denial for
    `reason_code`), as its workflow leaves it: the row and its `status.<status>` event."""
    row, _ = await create_request(pool, NewRequest(type=type_, regime=regime, subject={"email": email},
                                                   identity_attested=True, appeal_of=refused, **details),
                                  loaded_policy=policy_of(settings), secret=load_secret_key(settings),
                                  actor="test", idempotency_key=None)
    appeal = str(row["id"])
    await pool.execute("UPDATE dsr_requests SET status = $2, closed_at = now() WHERE id = $1", row["id"], status)
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{appeal}:status:{status}", event_type=f"status.{status}",
                           actor="compliance:test", request_id=appeal,
                           data={"reason_code": reason_code} if reason_code else {})
    return appeal


async def test_an_appeal_decided_is_not_decided_again_by_appealing_the_refusal_anew(settings, pool, dev_server,
                                                                                      task_queue):
    """An appeal's (a UK complaint's) outcome is final: the letter giving it names the Attorney
    General (the Information Commissioner) as what comes next, and an appeal of the appeal is
    refused. But a subject whose appeal compliance had denied appealed the refused request again,
    through the API, the portal's complaint form, or an agent's form, and it was opened as a new
    appeal with a statutory deadline of its own, for compliance to decide again (and again: five
    a day per address). Now an appeal is refused while another of the same request is being
    decided or has been, in the public's same words as any appeal that cannot be opened, naming
    the earlier appeal to staff. One closed unconfirmed, or denied because we could not tell it
    came from the subject, is made again, as its letter says."""
    full = settings.model_copy(update={"policy_path": DEFAULT_POLICY})
    email = unique_email("final-answer")
    erasure = await stored_refusal(pool, full, email, "vcdpa", type="erasure")
    denied = await _appeal_closed(pool, full, erasure, email, "vcdpa", "erasure", "denied", "other")
    access = await stored_refusal(pool, full, email, "uk_gdpr", type="access")
    await _appeal_closed(pool, full, access, email, "uk_gdpr", "access", "completed",
                         complaint_reasons="You kept my invoices")
    unconfirmed = await stored_refusal(pool, full, email, "vcdpa", type="erasure")
    await _appeal_closed(pool, full, unconfirmed, email, "vcdpa", "erasure", "closed_unverified")
    unidentified = await stored_refusal(pool, full, email, "vcdpa", type="erasure")
    await _appeal_closed(pool, full, unidentified, email, "vcdpa", "erasure", "denied", "identity_not_established")
    stored = await stored_for(pool, email)
    async with app_clients(full, dev_server.client, task_queue) as call_from:
        subject = call_from(unique_ip())
        r = await subject.post("/v1/public/requests", json={
            "type": "erasure", "email": email, "appeal_of": short_reference(erasure)})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "appeal_of"
        assert "no request" in r.json()["errors"][0]["message"]
        r = await subject.post("/portal/complaints", data={
            "about": short_reference(access), "email": email, "complaint_reasons": "I still want them"})
        assert r.status_code == 422 and "We have no request" in r.text, r.text
        r = await subject.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "type": "erasure", "subject": {"email": email}, "appeal_of": erasure})
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "appeal_of", "message": (
            f"that request's appeal {short_reference(denied)} has been decided: our answer to it is final; the "
            "letter that gave it names the authority to complain to")}]
        assert await stored_for(pool, email) == stored

        # An appeal being decided (here waiting for compliance): another is refused; a repeat of its
        # own call (its key) is that appeal, answered as it stands.
        pending = await stored_refusal(pool, full, email, "vcdpa", type="erasure")
        agent, ticket = await staff_headers(pool, "agent"), f"ticket-{uuid.uuid4().hex[:8]}"
        opened = {"type": "erasure", "subject": {"email": email}, "appeal_of": pending, "identity_attested": True}
        r = await subject.post("/v1/requests", headers={**agent, "Idempotency-Key": ticket}, json=opened)
        assert r.status_code == 201, r.text
        appeal = r.json()["id"]
        await pool.execute("UPDATE dsr_requests SET status = 'awaiting_approval' WHERE id = $1::uuid", appeal)
        r = await subject.post("/v1/requests", headers={**agent, "Idempotency-Key": ticket}, json=opened)
        assert r.status_code == 200 and r.json()["id"] == appeal, r.text
        r = await subject.post("/v1/requests", headers=agent, json=opened)
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "appeal_of", "message": (
            f"that request's appeal {short_reference(appeal)} is being decided: its decision goes to the subject "
            "and will be final")}]
        stored += 2

        # Closed unconfirmed, or denied for want of identity: appealed again, as the letter invites.
        for refused in (unconfirmed, unidentified):
            r = await subject.post("/v1/public/requests", json={
                "type": "erasure", "email": email, "appeal_of": short_reference(refused)})
            assert r.status_code == 202, r.text
    assert await stored_for(pool, email) == stored + 2
