"""The event loop the long-running processes (the worker, the API) run on.

uvloop by default: libuv's loop does a socket's read, write and wake-up in C where asyncio's does
them in Python, and a request is mostly such exchanges, with PostgreSQL, SMTP, processors and
Temporal (BENCHMARKS.md, B1). `DSRFLOW_EVENT_LOOP=asyncio` keeps the standard library's loop;
where uvloop is not installed (it has no Windows build) that loop is used too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from dsrflow.settings import Settings

T = TypeVar("T")


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's `new_event_loop`, or None for asyncio's own loop."""
    if settings.event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # no build for this platform: the standard loop does the same work
        return None
    return uvloop.new_event_loop


def run(settings: Settings, main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop the settings choose."""
    with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
        return runner.run(main)


def uvicorn_loop(settings: Settings) -> str:
    """The same choice, in uvicorn's words."""
    return "asyncio" if loop_factory(settings) is None else "uvloop"
