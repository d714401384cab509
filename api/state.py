"""Resources the API shares between requests, connected lazily so the app starts (and `/healthz`
can say what is missing) even while Postgres or Temporal is still coming up."""

from __future__ import annotations

import asyncio
from functools import cached_property

import asyncpg
from temporalio.client import Client

from dsrflow.crypto.keys import load_keyring
from dsrflow.crypto.payload_codec import EncryptionCodec
from dsrflow.infra.db import create_pool
from dsrflow.infra.metrics import DatabaseGauges
from dsrflow.infra.storage import BlobStore, open_storage
from dsrflow.infra.temporal_client import ANSWERING, connect_client
from dsrflow.settings import Settings
from policy.model import LoadedPolicy, load_policy


class AppState:
    def __init__(self, settings: Settings, temporal_client: Client | None = None,
                 policy: LoadedPolicy | None = None, pool: asyncpg.Pool | None = None) -> None:
        self.settings = settings
        # The start's one read of the file (26 ms of CPU a read), when the command made it.
        self.policy = policy or load_policy(settings.policy_path)
        # A pool given is the caller's (the tests' session pool, on the same database): an app
        # built per test opened connections of its own each time, and it never closes that one.
        self._pool: asyncpg.Pool | None = pool
        self._owns_pool = pool is None
        self._client: Client | None = temporal_client
        self._connecting: asyncio.Future[Client] | None = None
        self._lock = asyncio.Lock()
        # Where packages and processors' uploads are kept (DSRFLOW_STORAGE); connects on first use.
        self.storage: BlobStore = open_storage(settings)

    async def db(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await create_pool(self.settings.effective_database_url)
        return self._pool

    async def temporal(self) -> Client:
        if self._client is None:
            # One connect at a time, shared by every request waiting for it: queued one behind
            # another on a lock, ten requests to an engine that does not answer waited ten
            # connects' patience. A failed connect is answered to those waiting for it (an outage,
            # api/outages.py); the next request tries again. Bounded: each call answers a person.
            if self._connecting is None or self._connecting.done():
                self._connecting = asyncio.ensure_future(connect_client(self.settings, patience=ANSWERING))
                # Its error read even when everyone waiting left (asyncio would log it as lost).
                self._connecting.add_done_callback(lambda done: done.cancelled() or done.exception())
            # Shielded: a person leaving (a cancelled request) must not cancel the others' connect.
            self._client = await asyncio.shield(self._connecting)
        return self._client

    @cached_property
    def metrics_gauges(self) -> DatabaseGauges:
        """The gauges /metrics reads from this app's database, cached between scrapes."""
        return DatabaseGauges()

    @cached_property
    def codec(self) -> EncryptionCodec:
        """The payload codec the Temporal UI's codec endpoint decodes with (its keyring is read
        on first use, not at start)."""
        return EncryptionCodec(load_keyring(self.settings))

    async def close(self) -> None:
        if self._pool is not None and self._owns_pool:
            await self._pool.close()
