"""The ceiling for B1: a workflow with the shape of a real request — as many activities (local
and not), child workflows, timers, signals, updates, patch markers and search-attribute upserts
as a real request's history shows — each doing nothing.

One workflow type plays both parent and child: a `Shape` with children is a request, each child
shape a system task. The first activity of a step that expects messages sends them to its own
workflow (as a processor's callback signals a system task), and the step waits for them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio import activity, workflow

from workflows import search_attributes as sa

TASK_QUEUE = "bench-skeleton"
# The timeout of the request workflow's short steps (workflows/dsr_steps.py SHORT).
_OPTIONS = dict(start_to_close_timeout=timedelta(seconds=10))


class Shape(BaseModel):
    activities_before: int  # before the children start (all of a child's activities)
    activities_after: int = 0
    local_before: int = 0  # local activities, one after the other, before the children start
    local_after: int = 0
    alongside: int = 0  # activities started together with the children
    local_alongside: int = 0  # local activities started together with them (a sql system's task)
    timers: int = 0
    signals: int = 0
    updates: int = 0
    patches: int = 0  # workflow.patched() markers (each with the SDK's TemporalChangeVersion upsert)
    upserts_before: int = 0  # search-attribute upserts before the children start, patches' included
    upserts_after: int = 0
    # Characters in each of this workflow's activity inputs and results and in its own result, so
    # that its history weighs what the request's does (set by bench/throughput.py `pad_like`).
    padding: int = 0
    children: list[Shape] = []
    events: int = 0  # history events, this workflow's and its children's (what it cost the server)
    bytes: int = 0  # and their size

    def totals(self) -> dict[str, int]:
        kids = [child.totals() for child in self.children]
        return {
            "activities": self.activities_before + self.activities_after + self.alongside
            + sum(k["activities"] for k in kids),
            "local_activities": self.local_before + self.local_after + self.local_alongside
            + sum(k["local_activities"] for k in kids),
            "child_workflows": len(self.children) + sum(k["child_workflows"] for k in kids),
            "timers": self.timers + sum(k["timers"] for k in kids),
            "signals": self.signals + sum(k["signals"] for k in kids),
            "updates": self.updates + sum(k["updates"] for k in kids),
            "patches": self.patches + sum(k["patches"] for k in kids),
            "upserts": self.upserts_before + self.upserts_after + sum(k["upserts"] for k in kids),
        }


class Messages(BaseModel):
    signals: int
    updates: int


@activity.defn(name="skeleton_noop")
async def noop(payload: str) -> str:
    return payload


@activity.defn(name="skeleton_message")
async def message(messages: Messages) -> None:
    handle = activity.client().get_workflow_handle(activity.info().workflow_id)
    for _ in range(messages.signals):
        await handle.signal("poke")
    for _ in range(messages.updates):
        await handle.execute_update("touch")


ACTIVITIES = [noop, message]


@workflow.defn(name="SkeletonWorkflow")
class SkeletonWorkflow:
    def __init__(self) -> None:
        self._signals = 0
        self._updates = 0
        self._payload = ""

    @workflow.signal
    def poke(self) -> None:
        self._signals += 1

    @workflow.update
    def touch(self) -> None:
        self._updates += 1

    @workflow.run
    async def run(self, shape: Shape) -> str:
        self._payload = "x" * shape.padding
        # A timer that never fires, cancelled at the end, as the deadline watch's is.
        timers = [asyncio.create_task(workflow.sleep(timedelta(days=30))) for _ in range(shape.timers)]
        for n in range(shape.patches):
            workflow.patched(f"skeleton-{n}")
        for _ in range(shape.upserts_before - shape.patches):
            _upsert()
        for _ in range(shape.local_before):
            await workflow.execute_local_activity(noop, self._payload, **_OPTIONS)
        for i in range(shape.activities_before):
            await self._activity(shape if i == 0 else None)
        info = workflow.info()
        await asyncio.gather(
            *(workflow.execute_child_workflow(SkeletonWorkflow.run, child, id=f"{info.workflow_id}-{n}")
              for n, child in enumerate(shape.children)),
            *(self._activity(None) for _ in range(shape.alongside)),
            *(workflow.execute_local_activity(noop, self._payload, **_OPTIONS) for _ in range(shape.local_alongside)))
        for _ in range(shape.activities_after):
            await self._activity(None)
        for _ in range(shape.local_after):
            await workflow.execute_local_activity(noop, self._payload, **_OPTIONS)
        for _ in range(shape.upserts_after):
            _upsert()
        for timer in timers:
            timer.cancel()
        return self._payload

    async def _activity(self, expecting: Shape | None) -> None:
        if expecting is None or not (expecting.signals or expecting.updates):
            await workflow.execute_activity(noop, self._payload, **_OPTIONS)
            return
        await workflow.execute_activity(
            message, Messages(signals=expecting.signals, updates=expecting.updates), **_OPTIONS)
        await workflow.wait_condition(
            lambda: self._signals >= expecting.signals and self._updates >= expecting.updates)


def _upsert() -> None:
    """What a request publishes (workflows/dsr.py): its status, type, regime and due date."""
    workflow.upsert_search_attributes([
        sa.STATUS.value_set("in_progress"), sa.REQUEST_TYPE.value_set("erasure"), sa.REGIME.value_set("gdpr"),
        sa.DUE_DATE.value_set(datetime(2026, 12, 31, tzinfo=UTC))])
