"""A refused request stored as the tests of appeals need it: what an appeal or a complaint names;
appeals of it filed, confirmed, one closed for the other, withdrawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.domain.references import short_reference
from dsrflow.stores.requests_store import create_request
from schemas.requests import NewRequest
from tests.policy_once import policy_of
from tests.support import live_view, staff_headers, verification_code, wait_for_letter
from tests.yaml_files import dump_yaml, read_yaml


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
    content = read_yaml(lifecycle_policy)
    content["approval_required_for"] = ["appeal"]  # held for being an appeal, not for its type
    (path := directory / "appeals-held.yaml").write_text(dump_yaml(content, sort_keys=False))
    return settings.model_copy(update={"policy_path": path})


async def public_appeal(http: Any, mail_sink: Any, email: str, refused: str, language: str = "en") -> tuple[str, str]:
    """An appeal (a complaint) of `refused` made over the public API: its id and its code."""
    r = await http.post("/v1/public/requests", json={"type": "erasure", "email": email, "language": language,
                                                     "appeal_of": short_reference(refused)})
    assert r.status_code == 202, r.text
    appeal = r.json()["id"]
    return appeal, verification_code(await wait_for_letter(mail_sink, appeal, "verification"))


async def confirm_appeal(http: Any, appeal: str, code: str) -> None:
    r = await http.post(f"/v1/public/requests/{appeal}/verify", json={"code": code})
    assert r.status_code == 200, r.text


async def settled(http: Any, pool: Any, *appeals: str) -> dict[str, str]:
    """Each appeal's status once it has left verification: waiting for compliance, or closed."""
    staff = await staff_headers(pool, "compliance")
    views = [await live_view(http, staff, a, lambda v: v["status"] in ("awaiting_approval", "cancelled"))
             for a in appeals]
    return {a: v["status"] for a, v in zip(appeals, views, strict=True)}


async def one_closed_for_the_other(http: Any, pool: Any, mail_sink: Any, email: str, refused: str, *,
                                   second_first: bool = False) -> tuple[str, str]:
    """Two appeals of `refused` filed in turn, both awaiting confirmation, then confirmed one after
    the other (the one filed second first, with `second_first`): the one decided (waiting for
    compliance), and the one closed for it."""
    filed = [await public_appeal(http, mail_sink, email, refused) for _ in range(2)]
    (decided, decided_code), (closed, closed_code) = filed[::-1] if second_first else filed
    await confirm_appeal(http, decided, decided_code)
    assert await settled(http, pool, decided) == {decided: "awaiting_approval"}
    await confirm_appeal(http, closed, closed_code)
    assert await settled(http, pool, closed, decided) == {closed: "cancelled", decided: "awaiting_approval"}
    return decided, closed


async def withdrawn_by_phone(http: Any, pool: Any, appeal: str) -> None:
    """Staff record that the subject withdrew `appeal` (ending it undecided)."""
    r = await http.post(f"/v1/requests/{appeal}/cancel", headers=await staff_headers(pool, "agent"),
                        json={"reason": "The subject withdrew it by phone", "withdrawn_by_subject": True})
    assert r.status_code in (200, 202), r.text
