"""Heartbeats for steps that may take a while (a connector, a package, an e-mail): a worker that
dies is noticed within the step's heartbeat timeout rather than its whole start-to-close timeout,
and the step is retried elsewhere within seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity


@asynccontextmanager
async def heartbeating(every: float = 3.0) -> AsyncIterator[None]:
    """Heartbeat while the body runs, so a worker that dies is noticed within the heartbeat
    timeout rather than the whole start-to-close timeout."""
    async def beat() -> None:
        # The same code also runs in a CLI or a test; a local activity has no heartbeat of its own
        # (the SDK keeps its workflow task alive, and a lost worker shows in that task's timeout).
        # The first beat after `every`: the server's heartbeat timeout runs from the start anyway,
        # and a step over in milliseconds (most are) then costs no heartbeat call at all.
        while activity.in_activity() and not activity.info().is_local:
            await asyncio.sleep(every)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
