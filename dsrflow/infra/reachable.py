"""Waiting at start-up for a service that is not reachable yet (PostgreSQL, Temporal).

A worker started while its database or Temporal restarts, or before either is up, waits for
them instead of exiting: where nothing starts it again (a plain `nohup`, the chaos suite's stack)
no request would move again. Only "not reachable" is waited for; any other failure (a wrong
password, a TLS misconfiguration) is raised at once, with its own message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Waiting = Callable[[BaseException, float], None]

FIRST_DELAY = 0.5
LONGEST_DELAY = 5.0


async def when_reachable(connect: Callable[[], Awaitable[T]], unreachable: Callable[[BaseException], bool],
                         waiting: Waiting) -> T:
    """`connect()`, tried again (0.5 s, doubling to 5 s) for as long as it fails in a way
    `unreachable` recognises; `waiting(error, delay)` is told of each such failure."""
    delay = FIRST_DELAY
    while True:
        try:
            return await connect()
        except Exception as error:
            if not unreachable(error):
                raise
            waiting(error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, LONGEST_DELAY)
