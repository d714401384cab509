"""Releasing a legal-claims hold over REST as compliance does (api/rest/legal_holds.py `release`): a
release says why the claim ended."""

from __future__ import annotations

import httpx

SETTLED = "The claim was settled out of court"


async def release_over_rest(http: httpx.AsyncClient, hold_id: str, headers: dict[str, str],
                            reason: str = SETTLED) -> httpx.Response:
    return await http.request("DELETE", f"/v1/legal-holds/{hold_id}", json={"reason": reason}, headers=headers)
