"""Staff tokens and the console sessions signed in with them.

A token is stored only as its sha256 and carries one role. Roles nest: an `agent` opens and
watches requests, `compliance` may also extend, deny, approve and hold, `admin` may also manage
tokens. A console session is a random id in a cookie, stored as its sha256 too; it lives no longer
than its token: revoking the token ends the sessions signed in with it. It ends after
SESSION_LIFETIME at the latest, and after SESSION_IDLE without use.

A token works until its `expires_at` (the creator's choice, DSRFLOW_TOKEN_DAYS by default), and
its sessions end then too. NULL is "never": only tokens issued before expiry existed (migration
0047), which the token lists flag so that an admin replaces them.

A token created with a token records it (`created_by`, migration 0050; NULL: at the server, or
before this was recorded) and lives no longer than it: a stolen admin token could otherwise mint
another that outlived its own revocation by years. Revoking a token can take its descendants (the
tokens it created, theirs, and so on) with it.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from dsrflow.crypto.hashing import token_hash
from dsrflow.domain.audit import append_event
from dsrflow.domain.references import canonical_uuid
from schemas.plain_text import StaffLine
from schemas.staff_tokens import EXPIRES_SOON, LONGEST_LIFETIME, ROLES

_TOKEN_PREFIX = "dsr_"
SESSION_LIFETIME = timedelta(hours=12)
SESSION_IDLE = timedelta(minutes=30)
_VIEW = "id, role, label, created_at, revoked_at, expires_at, created_by"
_LABEL: TypeAdapter[str] = TypeAdapter(StaffLine)
_LIFETIME = re.compile(r"^\s*(\d{1,6})\s*([hdw])\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
# A token that still works (SQL over `staff_tokens t`): neither revoked nor expired.
IN_FORCE = "t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())"


@dataclass(frozen=True)
class Staff:
    token_id: str
    role: str
    label: str | None = None
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.token_id[:8]}"

    def has_role(self, minimum: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(minimum)


def parse_lifetime(value: str) -> timedelta:
    """"90d" (days), "12h" (hours) or "2w" (weeks) -> its timedelta; ValueError naming the form
    for anything else, nothing, or more than LONGEST_LIFETIME."""
    match = _LIFETIME.match(value.lower())
    lifetime = int(match.group(1)) * _UNITS[match.group(2)] if match else timedelta(0)
    if not timedelta(0) < lifetime <= LONGEST_LIFETIME:
        raise ValueError(f"expected a lifetime such as 90d, 12h or 2w, at most {LONGEST_LIFETIME.days}d; got {value!r}")
    return lifetime


async def create_token(pool: asyncpg.Pool, role: str, label: str | None = None,
                       lifetime: timedelta | None = None) -> str:
    """A new token (unaudited: for tests and fixtures; people use `issue_token`), never expiring
    unless `lifetime` is given."""
    return (await issue_token(pool, role, label, lifetime=lifetime))[1]


def days_within(expires_at: datetime | None, now: datetime) -> int:
    """The most whole days a token created now with a token expiring at `expires_at` may be given
    (none when it expires within a day; LONGEST_LIFETIME's for one that never expires)."""
    if expires_at is None:
        return LONGEST_LIFETIME.days
    return min(LONGEST_LIFETIME.days, (expires_at - now) // timedelta(days=1))


class OutlivesCreator(Exception):
    """The lifetime asked for ends after the creating token's expiry (`expires_at`)."""

    def __init__(self, expires_at: datetime, now: datetime) -> None:
        super().__init__(expires_at)
        self.expires_at = expires_at
        self.days = days_within(expires_at, now)


class CreatorNotInForce(Exception):
    """The creating token was revoked or expired while the new one was being created."""


# Taken by every revocation (exclusive) and every creation with a token (shared): a revocation
# with descendants finds the token its creator is making at that moment, and a creation by a token
# being revoked sees it revoked.
_LINEAGE_LOCK = "hashtext('staff_tokens:revoke')"


async def issue_token(
    pool: asyncpg.Pool, role: str, label: str | None = None, *, actor: str | None = None,
    lifetime: timedelta | None = None, created_by: str | None = None, asked: bool = True,
) -> tuple[dict[str, Any], str]:
    """(the token's row as `list_tokens` shows it, the token), working for `lifetime` from now
    (None: without end, which only tests and fixtures ask for). With `actor` (who made it: an
    admin over the API or the console, the CLI) the creation is audited.

    `created_by`: the id of the token that creates it (the API, the console; the CLI at the server
    has none), which must be in force (else CreatorNotInForce) and which it may not outlive: a
    lifetime `asked` for past the creator's expiry is refused with OutlivesCreator (saying when it
    expires, never silently shortened); a default one (`asked=False`) ends with the creator's."""
    if lifetime is not None and not timedelta(0) < lifetime <= LONGEST_LIFETIME:
        raise ValueError(f"a token's lifetime must be more than nothing and at most {LONGEST_LIFETIME.days} days")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if label is not None:
        try:  # the CLI's labels too, not only the API's (schemas/plain_text.py StaffLine)
            _LABEL.validate_python(label)
        except ValidationError as exc:
            raise ValueError(f"label {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        now, expires_at = await conn.fetchrow("SELECT now(), now() + $1::interval", lifetime)
        if created_by is not None:
            await conn.execute(f"SELECT pg_advisory_xact_lock_shared({_LINEAGE_LOCK})")
            creator = await conn.fetchrow(f"SELECT expires_at FROM staff_tokens t WHERE id = $1 AND {IN_FORCE}",
                                          created_by)
            if creator is None:
                raise CreatorNotInForce(created_by)
            limit = creator["expires_at"]
            if limit is not None and (expires_at is None or expires_at > limit):
                if asked:
                    raise OutlivesCreator(limit, now)
                expires_at = limit
        row = await conn.fetchrow(
            f"""INSERT INTO staff_tokens (id, token_hash, role, label, expires_at, created_by)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_VIEW}""",
            token_id, token_hash(token), role, label, expires_at, created_by,
        )
        if actor:
            expires = row["expires_at"].isoformat() if row["expires_at"] else None
            await append_event(conn, event_key=f"token:{token_id}:created", event_type="staff.token_created",
                               actor=actor, data={"token_id": token_id, "role": role, "expires_at": expires,
                                                  "created_by": created_by})
    return _view(row), token


def _view(row: asyncpg.Record) -> dict[str, Any]:
    created_by = row["created_by"]
    return {**dict(row), "id": str(row["id"]), "created_by": str(created_by) if created_by else None}


@dataclass(frozen=True)
class NotInForce:
    """Why a token opens nothing: one we issued and revoked, or one that expired (when); neither:
    unknown, perhaps a guess. Neither a revoked nor an expired token is a guess (no one guesses one
    we issued), and an expired token's holder is told, to ask for a new one rather than suspect a
    typo."""

    revoked: bool = False
    expired_at: datetime | None = None


async def authenticate(pool: asyncpg.Pool, token: str) -> Staff | NotInForce:
    """Whose token `token` is, if it is in force (neither revoked nor expired); else why not, from
    the same one lookup."""
    row = await pool.fetchrow(
        "SELECT id, role, label, expires_at, revoked_at IS NOT NULL AS revoked, expires_at <= now() AS expired "
        "FROM staff_tokens WHERE token_hash = $1", token_hash(token))
    if row is None:
        return NotInForce()
    if row["revoked"]:
        return NotInForce(revoked=True)
    if row["expired"]:
        return NotInForce(expired_at=row["expires_at"])
    return Staff(str(row["id"]), row["role"], row["label"], row["expires_at"])


async def list_tokens(pool: asyncpg.Pool, *, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Ids, roles, labels and dates; never a token (only hashes are stored anyway). Each row also
    says how many tokens not yet revoked descend from it (`descendants`: those it created, theirs,
    and so on, through revoked ones too), what revoking it with them would take, and its creator's
    label (`creator_label`, the creator revoked or not)."""
    rows = [_view(r) for r in await pool.fetch(f"SELECT {_VIEW} FROM staff_tokens ORDER BY created_at, id")]
    labels = {row["id"]: row["label"] for row in rows}
    children: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["created_by"]:
            children.setdefault(row["created_by"], []).append(row)
    listed = []
    for row in rows:
        if include_revoked or row["revoked_at"] is None:
            below = _below(children, row["id"])
            listed.append({**row, "descendants": sum(1 for d in below if d["revoked_at"] is None),
                           "creator_label": labels.get(row["created_by"] or "")})
    return listed


def _below(children: dict[str, list[dict[str, Any]]], token_id: str) -> list[dict[str, Any]]:
    # Each once, and not the token itself: a row edited by hand into a cycle would loop for ever.
    found, seen, todo = [], {token_id}, list(children.get(token_id, ()))
    while todo:
        row = todo.pop()
        if row["id"] in seen:
            continue
        seen.add(row["id"])
        found.append(row)
        todo.extend(children.get(row["id"], ()))
    return found


def token_state(row: dict[str, Any], now: datetime | None = None) -> str:
    """What a listed token is now: `revoked`, `expired`, `expires soon` (within EXPIRES_SOON),
    or `active`."""
    now = now or datetime.now(UTC)
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    if row["expires_at"] is not None and row["expires_at"] <= now + EXPIRES_SOON:
        return "expires soon"
    return "active"


class LastAdmin(Exception):
    """Revoking these tokens would leave no admin token in force: `admins`, the ids of the admin
    tokens in force among them."""

    def __init__(self, admins: list[str]) -> None:
        super().__init__(*admins)
        self.admins = admins


# A token's descendants not yet revoked: those it created, theirs, and so on (through revoked ones:
# a revoked token's offspring is no less the thief's), each once and never the token itself (a
# cycle, which only a row edited by hand makes).
_DESCENDANTS = """
WITH RECURSIVE below (id) AS (
    SELECT id FROM staff_tokens WHERE created_by = $1
    UNION SELECT t.id FROM staff_tokens t JOIN below b ON t.created_by = b.id)
SELECT id FROM below JOIN staff_tokens USING (id) WHERE revoked_at IS NULL AND id <> $1 ORDER BY created_at, id"""
# Of the admin tokens in force, those among $1 and whether any other is left.
_ADMINS_AMONG = f"""
SELECT coalesce(array_agg(t.id::text ORDER BY t.created_at) FILTER (WHERE t.id = ANY($1)), '{{}}') AS among,
       count(*) FILTER (WHERE NOT t.id = ANY($1)) AS others
FROM staff_tokens t WHERE t.role = 'admin' AND {IN_FORCE}"""


async def revoke_token(pool: asyncpg.Pool, token_id: str, *, actor: str, keep_an_admin: bool = False,
                       with_descendants: bool = False) -> dict[str, Any] | None:
    """Revoke a token and end its sessions; None when there is no such token. Revoking twice
    keeps the first revocation time. `with_descendants`: every token descending from it that is
    not yet revoked too, in the same transaction, each audited and its sessions ended; the row
    returned lists them (`descendants_revoked`, their rows).

    `keep_an_admin` (the API, the console): refuse with LastAdmin to revoke the last admin token
    in force (an expired one is not: it opens nothing), alone or with its descendants, which no
    one could replace but at the server (`dsrflow token create`, where the CLI revokes any token, a
    stolen last one included)."""
    stored_id = canonical_uuid(token_id)  # `DELETE /v1/tokens/{...}` answered 500
    if stored_id is None:
        return None
    token_id = stored_id
    async with pool.acquire() as conn, conn.transaction():
        # One revocation at a time: two admins revoking each other at once each saw the other
        # still in force. Creations with a token wait too (issue_token): none escapes a cascade.
        await conn.execute(f"SELECT pg_advisory_xact_lock({_LINEAGE_LOCK})")
        descendants = [str(r["id"]) for r in await conn.fetch(_DESCENDANTS, token_id)] if with_descendants else []
        if keep_an_admin:
            admins = await conn.fetchrow(_ADMINS_AMONG, [token_id, *descendants])
            if admins["among"] and not admins["others"]:
                raise LastAdmin(list(admins["among"]))
        row = await _revoke_one(conn, token_id, actor=actor)
        if row is None:
            return None
        revoked = [await _revoke_one(conn, descendant, actor=actor, descendant_of=token_id)
                   for descendant in descendants]
    return {**row, "descendants_revoked": revoked}


async def _revoke_one(conn: asyncpg.Connection, token_id: str, *, actor: str,
                      descendant_of: str | None = None) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"UPDATE staff_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {_VIEW}",
        token_id,
    )
    if row is None:
        return None
    ended = await conn.fetchval(
        """WITH ended AS (UPDATE staff_sessions SET ended_at = now()
                          WHERE token_id = $1 AND ended_at IS NULL RETURNING 1)
           SELECT count(*) FROM ended""",
        token_id,
    )
    data: dict[str, Any] = {"token_id": token_id, "sessions_ended": ended}
    if descendant_of:
        data["descendant_of"] = descendant_of
    await append_event(conn, event_key=f"token:{token_id}:revoked", event_type="staff.token_revoked",
                       actor=actor, data=data)
    return _view(row)


async def start_session(pool: asyncpg.Pool, staff: Staff) -> tuple[str, datetime]:
    """A new session for a signed-in token: (session id for the cookie, expiry), no later than the
    token's."""
    session_id = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + SESSION_LIFETIME
    if staff.expires_at is not None:
        expires_at = min(expires_at, staff.expires_at)
    await pool.execute(
        "INSERT INTO staff_sessions (id_hash, token_id, expires_at) VALUES ($1, $2, $3)",
        token_hash(session_id), staff.token_id, expires_at,
    )
    return session_id, expires_at


_LIVE_SESSION = """t.id = s.token_id AND s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()
                   AND s.last_used_at > now() - $2::interval AND """ + IN_FORCE


async def session_staff(pool: asyncpg.Pool, session_id: str, *, used: bool = True) -> Staff | None:
    """Who a live session belongs to: not ended, not expired or idle, its token in force.

    `used=False` for what a page does on its own (a live region polling): it reads the session
    without counting as use (and without writing), so an open page does not keep an unattended
    session alive."""
    if used:
        sql = f"""UPDATE staff_sessions s SET last_used_at = now() FROM staff_tokens t
                  WHERE {_LIVE_SESSION} RETURNING t.id, t.role, t.label, t.expires_at"""
    else:
        sql = f"""SELECT t.id, t.role, t.label, t.expires_at FROM staff_sessions s, staff_tokens t
                  WHERE {_LIVE_SESSION}"""
    row = await pool.fetchrow(sql, token_hash(session_id), SESSION_IDLE)
    return Staff(str(row["id"]), row["role"], row["label"], row["expires_at"]) if row else None


async def end_session(pool: asyncpg.Pool, session_id: str) -> None:
    await pool.execute(
        "UPDATE staff_sessions SET ended_at = coalesce(ended_at, now()) WHERE id_hash = $1",
        token_hash(session_id),
    )
