"""Signed OpenDSR callbacks are believed once, and only while fresh.

A valid signature proves the processor wrote the body, not when it sent it: someone who captured
a callback (a log, a proxy, a compromised relay) could post it again later, for instance an old
`in_progress` after the job completed. So a callback whose signed `status_changed_time` is older
than the system's `callback_max_age_seconds` (or more than a few minutes in the future) is
refused, and a body already acted on is refused as a replay (digests in `opendsr_callbacks_seen`,
shared by every API process). The specification does not make the timestamp mandatory: a body
without one is still refused when replayed, for as long as its digest is kept.

A replay is still refused when the body settles its task (completed, cancelled), but the task is
told again: the processor's own retry of a callback recorded by an API that died before telling
the task (or could not reach Temporal) looks exactly like a replay, and telling a settled task
twice changes nothing (api/callbacks/opendsr.py). Only the task's attempt the body was first
recorded for is told again: once staff have run the task again, a replay reaches nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from api.problems import Problem
from dsrflow.infra.writes import Write

TIME_FIELD = "status_changed_time"
DEFAULT_MAX_AGE_SECONDS = 3600
_CLOCK_SKEW = timedelta(minutes=5)
_SWEEP_EVERY = 600.0
_last_sweep = 0.0
_SEEN_KEY = "opendsr_callbacks_seen_pkey"


def _stale(message: str) -> Problem:
    return Problem(422, "Stale callback", f"{TIME_FIELD}: {message}",
                   errors=[{"field": TIME_FIELD, "message": message}])


def signed_time(payload: dict[str, Any], max_age_seconds: float) -> datetime | None:
    """The callback's signed status time, refused (422) when unreadable, too old or in the future."""
    raw = payload.get(TIME_FIELD)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise _stale("must be an RFC 3339 time") from None
    if when.tzinfo is None:
        raise _stale("must include a timezone")
    now = datetime.now(UTC)
    if when > now + _CLOCK_SKEW:
        raise _stale("is in the future")
    if now - when > timedelta(seconds=max_age_seconds):
        raise _stale(f"is more than {int(max_age_seconds)} seconds old; the status is polled instead")
    return when


def seen(system: str, body: bytes, when: datetime | None, max_age_seconds: float) -> Write:
    """The callback recorded as seen: a write to go in the statement that acts on it (its audit
    event), so that both are kept or neither. A body seen before breaks the table's key, and the
    whole statement with it, which `replay_noted` notes."""
    expires = when + timedelta(seconds=max_age_seconds) + _CLOCK_SKEW if when else None
    return Write("INSERT INTO opendsr_callbacks_seen (system, body_sha256, expires_at) VALUES ($1, $2, $3)",
                 (system, hashlib.sha256(body).digest(), expires))


@dataclass
class Replay:
    """What `replay_noted` saw: `seen` when the statement broke on a body seen before."""

    seen: bool = False

    @staticmethod
    def refused() -> Problem:
        return Problem(409, "Callback already received", "this signed callback was already processed")


@contextmanager
def replay_noted() -> Iterator[Replay]:
    """Notes, instead of raising, that `seen` stopped the statement: the body was seen before."""
    replay = Replay()
    try:
        yield replay
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != _SEEN_KEY:
            raise
        replay.seen = True


async def sweep_expired(conn: asyncpg.Connection) -> None:
    """Forget digests past their expiry, every `_SWEEP_EVERY` seconds at most."""
    global _last_sweep
    if time.monotonic() - _last_sweep > _SWEEP_EVERY:
        _last_sweep = time.monotonic()
        await conn.execute("DELETE FROM opendsr_callbacks_seen WHERE expires_at < now()")
