"""The fast stack: the time-skipping test server, the real workflows and the fake activities
(tests/workflow_fakes.py) on one worker. No Postgres, SMTP or processor: a request's whole life
runs in well under a second of real time, however many days it spans on the virtual clock.

The worker is the real one in all but its activities: the same workflow classes, sandbox settings
and activity interceptor as workers/dsr_worker.py, and the project's data converter (pydantic
payloads through the AES-GCM codec), so what passes here passes the worker's wiring too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.errors import ClassifyingInterceptor
from dsrflow.infra.temporal_client import build_data_converter
from schemas.workflow import RequestState, StartRequest, workflow_id_for
from tests.conftest import time_skipping_env
from tests.support import poll_pause
from tests.workflow_fakes import SHIPPED, FakeActivities, RequestSpec
from workers.dsr_worker import SANDBOXED, WORKFLOWS
from workflows.dsr import DataSubjectRequestWorkflow


@dataclass
class Request:
    """One started request: its id, its workflow's handle, and what a user would ask of it."""

    id: str
    handle: WorkflowHandle[Any, RequestState]

    async def state(self) -> RequestState:
        return await self.handle.query(DataSubjectRequestWorkflow.state)

    async def until(self, ready: Callable[[RequestState], object], timeout: float = 30) -> RequestState:
        """The state once `ready` holds (queries do not move the virtual clock). Well under a second
        on an idle machine; the 30 s are for a loaded one (docs/testing.md)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            state = await self.state()
            if ready(state):
                return state
            assert loop.time() < end, f"not reached in {timeout}s; state: {state!r}"
            waited = loop.time() + timeout - end  # most waits end within a tenth of a second
            await asyncio.sleep(0.02 if waited < 0.5 else poll_pause(waited))

    async def result(self) -> RequestState:
        """Wait for the workflow to end; the test server skips virtual time meanwhile."""
        return await self.handle.result()


class FastStack:
    def __init__(self, env: WorkflowEnvironment, fakes: FakeActivities, task_queue: str) -> None:
        self.env, self.fakes, self.task_queue = env, fakes, task_queue

    def worker(self, **options: Any) -> Worker:
        return Worker(self.env.client, task_queue=self.task_queue, workflows=list(WORKFLOWS),
                      activities=self.fakes.all(), interceptors=[ClassifyingInterceptor()],
                      **{"workflow_runner": SANDBOXED, **options})

    async def open(self, spec: RequestSpec | None = None, **facts: Any) -> Request:
        """Start a request received now on the virtual clock, as the API does."""
        spec = spec or RequestSpec(**facts)
        spec.received_at = spec.received_at or await self.env.get_current_time()
        request_id = str(uuid.uuid4())
        self.fakes.specs[request_id] = spec
        handle = await self.env.client.start_workflow(
            DataSubjectRequestWorkflow.run,
            StartRequest(request_id=request_id, policy_version=SHIPPED.version,
                         attention_after_minutes=spec.attention_after_minutes),
            id=workflow_id_for(request_id), task_queue=self.task_queue)
        return Request(request_id, handle)

    async def sleep(self, duration: timedelta) -> None:
        """Move the virtual clock on by `duration`: timers due meanwhile fire."""
        await self.env.sleep(duration)

    async def answered_within(self, update: asyncio.Future[Any], virtual: timedelta) -> None:
        """Move the virtual clock on, a few seconds at a time, until `update` has its answer;
        fails once `virtual` has passed without one. The clock is held between sleeps, so a step
        retried one more time than its give-up allows (the test server did so once under load:
        a sixth attempt, then its 32 s backoff) would otherwise be waited for in real time."""
        start = await self.env.get_current_time()
        while not (await asyncio.wait({update}, timeout=2))[0]:
            elapsed = await self.env.get_current_time() - start
            assert elapsed < virtual, f"no answer within {virtual} on the virtual clock"
            await self.sleep(timedelta(seconds=10))


async def refused(update: Awaitable[Any]) -> str:
    """The update fails; returns the reason its caller is given (a validator's ValueError, an
    ApplicationError of its handler)."""
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await update
    cause = caught.value.cause
    return getattr(cause, "message", None) or str(cause)


def fast_env() -> contextlib.AbstractAsyncContextManager[WorkflowEnvironment]:
    """A time-skipping server whose payloads a key of its own encrypts."""
    return time_skipping_env(build_data_converter([("fast-tests", os.urandom(32))]))


@pytest.fixture(name="stack")
async def stack_fixture() -> AsyncIterator[FastStack]:
    """A fresh server per test (a quarter of a second): virtual time moved by one test never
    leaks into the next. The worker runs for the whole test."""
    async with fast_env() as env:
        fakes = FakeActivities()
        fakes.clock = env.get_current_time
        fast = FastStack(env, fakes, f"fast-{uuid.uuid4().hex[:8]}")
        async with fast.worker():
            yield fast
