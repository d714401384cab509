"""Record `tests/histories/complaint_progress.json`, which tests/test_replay.py replays: a UK
complaint kept informed while it waits for compliance (two progress letters,
workflows/complaint_progress.py), then approved, recorded from a run whose first workflow task
ended with the preparing local activity's result, the workflow going on from it in the next
(`straddled`): its replay once asked the progress letters' patch a task early and failed. Its weeks need virtual time, so unlike the
histories of tests/histories/record.py it runs on the time-skipping server with the fake
activities (tests/workflow_stack.py); its payloads are encrypted with the TEST-ONLY key.

    .venv/bin/python -m tests.histories.record_complaint_progress
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from dsrflow.infra.temporal_client import build_data_converter
from schemas.workflow import ApproveInput
from tests.conftest import time_skipping_env
from tests.histories import DIRECTORY, KEYS
from tests.workflow_fakes import FakeActivities, RequestSpec
from tests.workflow_stack import FastStack
from workflows.dsr import DataSubjectRequestWorkflow


def straddled(history: WorkflowHistory) -> bool:
    """The preparing local activity's marker closed the first workflow task, and the workflow went
    on from its result in the next one (a query arrived during the first task): the case whose
    replay asked the progress letters' patch a task early (workflows/complaint_progress.py
    COMPLAINT_PROGRESS)."""
    events = history.events
    first = next(i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
                 and e.marker_recorded_event_attributes.marker_name == "core_local_activity")
    return events[first + 1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED


async def record() -> str:
    async with time_skipping_env(build_data_converter(KEYS)) as env:
        fakes = FakeActivities()
        fakes.clock = env.get_current_time
        stack = FastStack(env, fakes, "dsr-record-progress")
        async with stack.worker():
            # Queries from the start (as the tests' polls make them) until one run straddles.
            for _ in range(400):
                request = await stack.open(RequestSpec(regime="uk_gdpr", complaint=True, approval_required=True))
                await request.until(lambda s: s.status == "awaiting_approval")
                if straddled(await request.handle.fetch_history()):
                    break
                await request.handle.terminate("not straddled: recorded again")
            else:
                raise RuntimeError("no run straddled its first workflow task in 400")
            await stack.sleep(timedelta(days=29))  # the 14th and 28th days' letters
            assert fakes.subject_letters(request.id).count("complaint_progress") == 2, fakes.subject_letters(request.id)
            await request.handle.execute_update(DataSubjectRequestWorkflow.approve, ApproveInput(actor="compliance:bo"))
            assert (await request.result()).status == "completed"
            return (await request.handle.fetch_history()).to_json()


def main() -> int:
    path = DIRECTORY / "complaint_progress.json"
    path.write_text(asyncio.run(record()) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
