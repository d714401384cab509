"""A subject who objected to direct marketing and later consents to it again: compliance takes the
address off the suppression list, on record in the objection's trail. Before, nothing could: the
address stayed refused to every import for good, whatever the subject asked for later."""

from __future__ import annotations

import uuid

from dsrflow.crypto.hashing import suppression_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.support import staff_headers, unique_email

CONSENT = "Subscribed again through the newsletter form on 3 December 2026 (double opt-in confirmed)"


async def _suppressed(http, pool, email: str) -> bool:
    r = await http.post("/v1/suppressions/check", headers=await staff_headers(pool, "agent"), json={"emails": [email]})
    assert r.status_code == 200, r.text
    return r.json()["suppressed"] == [email]


async def test_compliance_takes_an_address_off_the_list_once_with_the_consent_on_record(http, pool, settings):
    email = unique_email("lift")
    objection = NewRequest(type="objection", objection_scope="direct_marketing", subject={"email": email},
                           identity_attested=True)
    row, _ = await create_request(pool, objection, loaded_policy=load_policy(settings.policy_path),
                                  secret=load_secret_key(settings), actor="test", idempotency_key=None)
    rid = str(row["id"])
    await pool.execute("INSERT INTO suppressions (identifier_hash, scope, request_id) VALUES ($1, 'direct_marketing', $2)",
                       suppression_hash(load_secret_key(settings), email), uuid.UUID(rid))
    assert await _suppressed(http, pool, email)

    # An agent may check the list, not change it; a consent must say something.
    body = {"email": email.upper(), "consent": CONSENT}  # as an importer may write it
    refused = await http.post("/v1/suppressions/lift", headers=await staff_headers(pool, "agent"), json=body)
    assert refused.status_code == 403
    vague = await http.post("/v1/suppressions/lift", headers=await staff_headers(pool, "compliance"),
                            json={**body, "consent": "yes"})
    assert vague.status_code == 422 and "consent" in vague.text
    assert await _suppressed(http, pool, email)

    lifted = await http.post("/v1/suppressions/lift", headers=await staff_headers(pool, "compliance"), json=body)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json() == {"lifted": True, "objection_request": rid}
    assert not await _suppressed(http, pool, email)

    again = await http.post("/v1/suppressions/lift", headers=await staff_headers(pool, "compliance"), json=body)
    assert again.status_code == 404 and again.json()["title"] == "Not suppressed"
    events = await http.get(f"/v1/requests/{rid}/events", headers=await staff_headers(pool, "compliance"))
    lifts = [e for e in events.json()["events"] if e["event_type"] == "suppression.lifted"]
    assert len(lifts) == 1 and lifts[0]["data"] == {"scope": "direct_marketing", "consent": CONSENT}
    assert lifts[0]["actor"].startswith("compliance:")  # who took it off
