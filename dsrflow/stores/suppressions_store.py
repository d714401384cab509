"""The direct-marketing suppression list (migrations/0004_suppressions.sql): a keyed hash of each
address whose subject objected to direct marketing (Art. 21(3) GDPR), with the objection that put
it there (activities/fanout.py writes it with the objection's plan). Checked and lifted here, once,
for the REST API (api/rest/suppressions.py) and the console's page (api/console/suppressions.py):
the address itself is never stored, nor read back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from dsrflow.crypto.hashing import suppression_hash
from dsrflow.domain.audit import append_event
from dsrflow.infra.writes import Write

SCOPE = "direct_marketing"


@dataclass(frozen=True)
class Suppression:
    since: datetime
    request_id: str | None  # the objection's; None once retention removed it


class NotSuppressed(LookupError):
    """The address is not on the list (never was, or a colleague took it off first)."""


async def suppressed(pool: asyncpg.Pool, secret: bytes, emails: Iterable[str]) -> dict[str, Suppression]:
    """Each of `emails` that is on the list, as it was given (an address in two spellings, each),
    with since when and the objection that put it there."""
    given = {email: suppression_hash(secret, email) for email in emails}
    rows = await pool.fetch("SELECT identifier_hash, request_id, created_at FROM suppressions "
                            "WHERE scope = $1 AND identifier_hash = ANY($2)", SCOPE, list(set(given.values())))
    found = {row["identifier_hash"]: Suppression(row["created_at"], str(row["request_id"]) if row["request_id"] else None)
             for row in rows}
    return {email: found[hashed] for email, hashed in given.items() if hashed in found}


async def lift_suppression(pool: asyncpg.Pool, secret: bytes, email: str, *, consent: str, actor: str) -> str | None:
    """Take `email` off the list: its subject consented to direct marketing again (Art. 6(1)(a)).
    Audited as `suppression.lifted`, with `consent` as staff describe it, in the trail of the
    objection that put it there, whose request id is returned. NotSuppressed if it is not on it."""
    identifier = suppression_hash(secret, email)
    row = await pool.fetchrow("SELECT request_id, created_at FROM suppressions "
                              "WHERE identifier_hash = $1 AND scope = $2", identifier, SCOPE)
    if row is None:
        raise NotSuppressed(email)
    request_id = str(row["request_id"]) if row["request_id"] else None
    # One event per suppression (a later objection puts the address back under its own request),
    # and the row's removal with it: two lifts at once record one.
    async with pool.acquire() as conn:
        await append_event(
            conn, event_key=f"suppression:{request_id}:{row['created_at'].timestamp()}:lifted",
            event_type="suppression.lifted", actor=actor, request_id=request_id,
            data={"scope": SCOPE, "consent": consent},
            along=[Write("DELETE FROM suppressions WHERE identifier_hash = $1 AND scope = $2", (identifier, SCOPE))])
    return request_id
