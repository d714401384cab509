"""What every activity needs: the database, mail, settings, the policy versions and the secret."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import asyncpg

from activities.mail import Mailer
from activities.shared_connections import SharedConnections
from dsrflow.domain.deadlines import receipt_date
from dsrflow.infra.storage import BlobStore, open_storage
from dsrflow.settings import Settings
from policy.model import LoadedPolicy, parse_policy


@dataclass
class ActivityContext:
    pool: asyncpg.Pool
    settings: Settings
    mailer: Mailer
    secret: bytes
    connections: SharedConnections = field(default_factory=SharedConnections)
    _policies: dict[str, LoadedPolicy] = field(default_factory=dict)

    @cached_property
    def storage(self) -> BlobStore:
        """Where packages and processors' uploads are kept (DSRFLOW_STORAGE)."""
        return open_storage(self.settings)

    async def policy(self, version: str) -> LoadedPolicy:
        """The policy a request started under, from the stored snapshot (never today's file)."""
        if version not in self._policies:
            content = await self.pool.fetchval(
                "SELECT content FROM policy_versions WHERE version = $1", version
            )
            if content is None:
                raise LookupError(f"policy version {version} is not stored")
            self._policies[version] = parse_policy(content, f"policy version {version[:12]}")
        return self._policies[version]

    async def days_left(self, request: Mapping[str, Any], now: datetime) -> int | None:
        """Days from `now` to an open request's current due date, in the controller's timezone of
        the request's policy version (not the machine's: a day off each evening otherwise); None
        once closed, or before a due date is set. `request` is its stored row."""
        if request["current_due_date"] is None or request.get("closed_at") is not None:
            return None
        timezone = (await self.policy(request["policy_version"])).policy.defaults.timezone
        # Today is the controller's, as the deadline watch's warnings and overdue flag count it (its
        # midnights), not the earlier of two places' as a request's day of receipt is.
        return int((request["current_due_date"] - receipt_date(now, timezone)).days)
