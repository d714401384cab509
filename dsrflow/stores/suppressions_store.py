"""The direct-marketing suppression list (migrations/0004_suppressions.sql): a keyed hash of each
address whose subject objected to direct marketing (Art. 21(3) GDPR), with the objection that put
it there (activities/fanout.py writes it with the objection's plan, under its mailbox's key:
`suppression_key`). Checked and lifted here, once,
for the REST API (api/rest/suppressions.py) and the console's page (api/console/suppressions.py):
the address itself is never stored, nor read back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from dsrflow.crypto.hashing import suppression_hash
from dsrflow.domain.audit import append_event
from dsrflow.domain.mailboxes import mailbox_of
from dsrflow.infra.writes import Write

SCOPE = "direct_marketing"


@dataclass(frozen=True)
class Suppression:
    since: datetime
    request_id: str | None  # the objection's; None once retention removed it


class NotSuppressed(LookupError):
    """The address is not on the list (never was, or a colleague took it off first)."""


def suppression_key(secret: bytes, email: str) -> str:
    """The key an objection puts its address on the list under: its mailbox's (`mailbox_of`), so
    that an import of the same mailbox spelled otherwise ("Ada@googlemail.com" for
    "ada+news@gmail.com") is refused too."""
    return suppression_hash(secret, mailbox_of(email))


def _keys(secret: bytes, email: str) -> tuple[str, ...]:
    """The keys `email` may be on the list under: its mailbox's, and its own spelling's, which the
    list's entries from before 2026-12-06 hashed (lower-cased only: a keyed hash cannot be
    re-keyed, so those match their own spelling as they always did)."""
    return tuple(dict.fromkeys((suppression_key(secret, email), suppression_hash(secret, email))))


async def suppressed(pool: asyncpg.Pool, secret: bytes, emails: Iterable[str]) -> dict[str, Suppression]:
    """Each of `emails` that is on the list, as it was given (an address in two spellings, each),
    with since when and the objection that put it there."""
    given = {email: _keys(secret, email) for email in emails}
    rows = await pool.fetch("SELECT identifier_hash, request_id, created_at FROM suppressions "
                            "WHERE scope = $1 AND identifier_hash = ANY($2)", SCOPE,
                            list({key for keys in given.values() for key in keys}))
    found = {row["identifier_hash"]: Suppression(row["created_at"], str(row["request_id"]) if row["request_id"] else None)
             for row in rows}
    return {email: next(found[key] for key in keys if key in found)
            for email, keys in given.items() if any(key in found for key in keys)}


async def lift_suppression(pool: asyncpg.Pool, secret: bytes, email: str, *, consent: str, actor: str) -> str | None:
    """Take `email` off the list: its subject consented to direct marketing again (Art. 6(1)(a)).
    Audited as `suppression.lifted`, with `consent` as staff describe it, in the trail of the
    objection that put it there, whose request id is returned. NotSuppressed if it is not on it."""
    keys = list(_keys(secret, email))
    # Under both keys if an old entry and a new objection's hold the mailbox: the latest names it.
    row = await pool.fetchrow("SELECT request_id, created_at FROM suppressions WHERE identifier_hash = ANY($1) "
                              "AND scope = $2 ORDER BY created_at DESC LIMIT 1", keys, SCOPE)
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
            along=[Write("DELETE FROM suppressions WHERE identifier_hash = ANY($1) AND scope = $2", (keys, SCOPE))])
    return request_id
