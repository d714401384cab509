"""The fakes of tests/workflow_fakes.py stand for the real activities: the same names and the same
argument and result types as those the real worker registers, and every activity a workflow calls
by name among them. A new activity, or a changed contract, fails here first, instead of leaving
the fast workflow tests running against a fake that no longer matches the real thing."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from temporalio import activity

from activities.context import ActivityContext
from schemas.copies import PurgeInput
from schemas.holds import SweepInput
from schemas.retention import RetentionSweepInput
from tests.workflow_fakes import FakeActivities
from tests.workflow_stack import FastStack, stack_fixture  # noqa: F401 (the fixture)
from workers.dsr_worker import build_activities
from workflows.erasure_sweep import ErasureSweepWorkflow
from workflows.package_purge import PackagePurgeWorkflow
from workflows.retention_sweep import RetentionSweepWorkflow

WORKFLOWS_DIR = Path(__file__).resolve().parents[1] / "workflows"
# Where a workflow names an activity: run_step("x", ...), execute_activity("x", ...), and the
# system task's own act("x", ...) and _attempt("x", ...).
CALLED_BY_NAME = re.compile(r'\b(?:run_step|execute_activity|act|_attempt)\(\s*"(\w+)"')


def definitions(functions: list[Any]) -> dict[str, activity._Definition]:
    found = [activity._Definition.must_from_callable(f) for f in functions]
    return {d.name: d for d in found}


def test_every_real_activity_has_a_fake_with_its_contract():
    # The real activities only keep the context they are given; nothing runs or connects here.
    real = definitions(build_activities(cast(ActivityContext, None)))
    fake = definitions(FakeActivities().all())

    assert sorted(fake) == sorted(real)
    for name, definition in real.items():
        assert (fake[name].arg_types, fake[name].ret_type) == (definition.arg_types, definition.ret_type), name


def test_every_activity_a_workflow_calls_has_a_fake():
    called = {name for path in WORKFLOWS_DIR.glob("*.py") for name in CALLED_BY_NAME.findall(path.read_text())}

    assert {"prepare_request", "send_letter", "run_system_action", "announce_restriction_lift"} <= called
    assert called <= set(definitions(FakeActivities().all()))


async def test_the_scheduled_sweeps_judge_on_the_workflow_clock(stack: FastStack):
    """Each sweep asks its activity as of the workflow's own clock (virtual time here), not the
    activity's wall clock."""
    await stack.sleep(timedelta(days=30))
    before = await stack.env.get_current_time()
    for run, arg in ((ErasureSweepWorkflow.run, SweepInput()), (RetentionSweepWorkflow.run, RetentionSweepInput()),
                     (PackagePurgeWorkflow.run, PurgeInput())):
        await stack.env.client.start_workflow(run, arg, id=f"sweep-{uuid.uuid4().hex[:8]}", task_queue=stack.task_queue)
    # Not `result()`: the test server may skip far ahead once nothing is left to wait for.
    for _ in range(500):
        if len(stack.fakes.sweeps) == 3:
            break
        await asyncio.sleep(0.02)

    assert sorted(type(s).__name__ for s in stack.fakes.sweeps) == ["PurgeInput", "RetentionSweepInput", "SweepInput"]
    for sweep in stack.fakes.sweeps:
        assert sweep.as_of is not None and timedelta(0) <= sweep.as_of - before < timedelta(minutes=1)
