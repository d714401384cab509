"""Staff tokens and the console sessions signed in with them.

A token is stored only as its sha256 and carries one role. Roles nest: an `agent` opens and
watches requests, `compliance` may also extend, deny, approve and hold, `admin` may also manage
tokens. A console session is a random id in a cookie, stored as its sha256 too; it lives no longer
than its token: revoking the token ends the sessions signed in with it. It ends after
SESSION_LIFETIME at the latest, and after SESSION_IDLE without use.
"""

from __future__ import annotations

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

ROLES = ("agent", "compliance", "admin")
_TOKEN_PREFIX = "dsr_"
SESSION_LIFETIME = timedelta(hours=12)
SESSION_IDLE = timedelta(minutes=30)
_VIEW = "id, role, label, created_at, revoked_at"
_LABEL: TypeAdapter[str] = TypeAdapter(StaffLine)


@dataclass(frozen=True)
class Staff:
    token_id: str
    role: str
    label: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.token_id[:8]}"

    def has_role(self, minimum: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(minimum)


async def create_token(pool: asyncpg.Pool, role: str, label: str | None = None) -> str:
    """A new token (unaudited: for tests and fixtures; people use `issue_token`)."""
    return (await issue_token(pool, role, label))[1]


async def issue_token(
    pool: asyncpg.Pool, role: str, label: str | None = None, *, actor: str | None = None
) -> tuple[dict[str, Any], str]:
    """(the token's row as `list_tokens` shows it, the token). With `actor` (who made it: an
    admin over the API, the CLI) the creation is audited."""
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
        row = await conn.fetchrow(
            f"INSERT INTO staff_tokens (id, token_hash, role, label) VALUES ($1, $2, $3, $4) RETURNING {_VIEW}",
            token_id, token_hash(token), role, label,
        )
        if actor:
            await append_event(conn, event_key=f"token:{token_id}:created", event_type="staff.token_created",
                               actor=actor, data={"token_id": token_id, "role": role})
    return _view(row), token


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return {**dict(row), "id": str(row["id"])}


async def authenticate(pool: asyncpg.Pool, token: str) -> Staff | None:
    row = await pool.fetchrow(
        "SELECT id, role, label FROM staff_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash(token),
    )
    return Staff(str(row["id"]), row["role"], row["label"]) if row else None


async def was_revoked(pool: asyncpg.Pool, token: str) -> bool:
    """Whether `token` is one we issued and have since revoked (not a guess: no one guesses one)."""
    return bool(await pool.fetchval(
        "SELECT true FROM staff_tokens WHERE token_hash = $1 AND revoked_at IS NOT NULL", token_hash(token)))


async def list_tokens(pool: asyncpg.Pool, *, include_revoked: bool = False) -> list[dict[str, Any]]:
    """Ids, roles, labels and dates; never a token (only hashes are stored anyway)."""
    rows = await pool.fetch(
        f"SELECT {_VIEW} FROM staff_tokens WHERE $1 OR revoked_at IS NULL ORDER BY created_at, id",
        include_revoked,
    )
    return [_view(r) for r in rows]


class LastAdmin(Exception):
    """Revoking this token would leave no admin token in force."""


async def revoke_token(pool: asyncpg.Pool, token_id: str, *, actor: str,
                       keep_an_admin: bool = False) -> dict[str, Any] | None:
    """Revoke a token and end its sessions; None when there is no such token. Revoking twice
    keeps the first revocation time.

    `keep_an_admin` (the API): refuse with LastAdmin to revoke the last admin token in force,
    which no one could replace but at the server (`dsrflow token create`, where the CLI revokes
    any token, a stolen last one included)."""
    stored_id = canonical_uuid(token_id)  # `DELETE /v1/tokens/{...}` answered 500
    if stored_id is None:
        return None
    token_id = stored_id
    async with pool.acquire() as conn, conn.transaction():
        # One revocation at a time: two admins revoking each other at once each saw the other
        # still in force.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('staff_tokens:revoke'))")
        if keep_an_admin and await conn.fetchval(
                """SELECT role = 'admin' AND revoked_at IS NULL AND NOT EXISTS (
                       SELECT 1 FROM staff_tokens o WHERE o.role = 'admin' AND o.revoked_at IS NULL AND o.id <> t.id)
                   FROM staff_tokens t WHERE id = $1""", token_id):
            raise LastAdmin(token_id)
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
        await append_event(conn, event_key=f"token:{token_id}:revoked", event_type="staff.token_revoked",
                           actor=actor, data={"token_id": token_id, "sessions_ended": ended})
    return _view(row)


async def start_session(pool: asyncpg.Pool, staff: Staff) -> tuple[str, datetime]:
    """A new session for a signed-in token: (session id for the cookie, expiry)."""
    session_id = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + SESSION_LIFETIME
    await pool.execute(
        "INSERT INTO staff_sessions (id_hash, token_id, expires_at) VALUES ($1, $2, $3)",
        token_hash(session_id), staff.token_id, expires_at,
    )
    return session_id, expires_at


_LIVE_SESSION = """t.id = s.token_id AND s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()
                   AND s.last_used_at > now() - $2::interval AND t.revoked_at IS NULL"""


async def session_staff(pool: asyncpg.Pool, session_id: str, *, used: bool = True) -> Staff | None:
    """Who a live session belongs to: not ended, not expired or idle, its token not revoked.

    `used=False` for what a page does on its own (a live region polling): it reads the session
    without counting as use (and without writing), so an open page does not keep an unattended
    session alive."""
    if used:
        sql = f"""UPDATE staff_sessions s SET last_used_at = now() FROM staff_tokens t
                  WHERE {_LIVE_SESSION} RETURNING t.id, t.role, t.label"""
    else:
        sql = f"""SELECT t.id, t.role, t.label FROM staff_sessions s, staff_tokens t
                  WHERE {_LIVE_SESSION}"""
    row = await pool.fetchrow(sql, token_hash(session_id), SESSION_IDLE)
    return Staff(str(row["id"]), row["role"], row["label"]) if row else None


async def end_session(pool: asyncpg.Pool, session_id: str) -> None:
    await pool.execute(
        "UPDATE staff_sessions SET ended_at = coalesce(ended_at, now()) WHERE id_hash = $1",
        token_hash(session_id),
    )
