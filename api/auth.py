"""Staff bearer tokens: stored only as hashes, each with one role.

Roles nest: an `agent` opens and watches requests, `compliance` may also extend, deny and hold,
`admin` may also manage tokens.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

import asyncpg
from fastapi import Depends, Request

from api.problems import Problem
from dsrflow.hashing import token_hash

ROLES = ("agent", "compliance", "admin")
_TOKEN_PREFIX = "dsr_"


@dataclass(frozen=True)
class Staff:
    token_id: str
    role: str

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.token_id[:8]}"


async def create_token(pool: asyncpg.Pool, role: str, label: str | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO staff_tokens (id, token_hash, role, label) VALUES ($1, $2, $3, $4)",
        uuid.uuid4(), token_hash(token), role, label,
    )
    return token


async def authenticate(pool: asyncpg.Pool, token: str) -> Staff | None:
    row = await pool.fetchrow(
        "SELECT id, role FROM staff_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash(token),
    )
    return Staff(str(row["id"]), row["role"]) if row else None


def require_role(minimum: str):
    rank = ROLES.index(minimum)

    async def dependency(request: Request) -> Staff:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "Authentication required", "send Authorization: Bearer <token>",
                          )
        staff = await authenticate(await request.app.state.dsr.db(), token.strip())
        if staff is None:
            raise Problem(401, "Authentication required", "the token is unknown or revoked")
        if ROLES.index(staff.role) < rank:
            raise Problem(403, "Forbidden", f"this action needs the {minimum} role; you are {staff.role}")
        return staff

    return Depends(dependency)
