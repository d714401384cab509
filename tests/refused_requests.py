"""A refused request stored as the tests of appeals need it: what an appeal or a complaint names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import create_request
from schemas.requests import NewRequest
from tests.policy_once import policy_of
from tests.support import verification_code, wait_for_letter


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


def appeals_held(settings: Any, lifecycle_policy: Path, directory: Path) -> Any:
    """`settings` under the tests' policy with appeals waiting for compliance's approval, as the
    shipped policy's do (the tests' policy approves nothing: tests/conftest.py)."""
    content = yaml.safe_load(lifecycle_policy.read_text())
    content["approval_required_for"] = ["appeal"]  # held for being an appeal, not for its type
    (path := directory / "appeals-held.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    return settings.model_copy(update={"policy_path": path})


async def public_appeal(http: Any, mail_sink: Any, email: str, refused: str, language: str = "en") -> tuple[str, str]:
    """An appeal (a complaint) of `refused` made over the public API: its id and its code."""
    r = await http.post("/v1/public/requests", json={"type": "erasure", "email": email, "language": language,
                                                     "appeal_of": short_reference(refused)})
    assert r.status_code == 202, r.text
    appeal = r.json()["id"]
    return appeal, verification_code(await wait_for_letter(mail_sink, appeal, "verification"))
