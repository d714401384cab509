"""A refused request stored as the tests of appeals need it: what an appeal or a complaint names."""

from __future__ import annotations

from typing import Any

from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.stores.requests_store import create_request
from schemas.requests import NewRequest
from tests.policy_once import policy_of


async def stored_refusal(pool: Any, settings: Any, email: str, regime: str, **details: Any) -> str:
    """A request under `regime` stored as refused (its denial's `letter.sent`, as the letter
    activity records it), without running its workflow; its id."""
    row, _ = await create_request(pool, NewRequest(regime=regime, subject={"email": email}, identity_attested=True,
                                                   **details),
                                  loaded_policy=policy_of(settings), secret=load_secret_key(settings),
                                  actor="test", idempotency_key=None)
    refused = str(row["id"])
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{refused}:test-denial", event_type="letter.sent", actor="workflow",
                           request_id=refused, data={"purpose": "denial", "refusal": True})
    return refused
