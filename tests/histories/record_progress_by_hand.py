"""Record `tests/histories/complaint_progress_by_hand.json`, which tests/test_replay.py replays: a UK
complaint told of its progress by staff between its automatic letters (workflows/complaint_progress.py
ProgressByHand, behind PROGRESS_BY_HAND): the letter of day 14, staff's on day 20 (pressed twice,
one letter), the next automatic one 14 days after theirs, then approved. Its weeks need virtual
time, so it runs on the time-skipping server with the fake activities (tests/workflow_stack.py), as
tests/histories/record_complaint_progress.py; its payloads are encrypted with the TEST-ONLY key.

    .venv/bin/python -m tests.histories.record_progress_by_hand
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from dsrflow.infra.temporal_client import build_data_converter
from schemas.progress_note import TellProgressInput
from schemas.workflow import ApproveInput
from tests.conftest import time_skipping_env
from tests.histories import DIRECTORY, KEYS
from tests.workflow_fakes import FakeActivities, RequestSpec
from tests.workflow_stack import FastStack
from workflows.dsr import DataSubjectRequestWorkflow as DSR


async def record() -> str:
    async with time_skipping_env(build_data_converter(KEYS)) as env:
        fakes = FakeActivities()
        fakes.clock = env.get_current_time
        stack = FastStack(env, fakes, "dsr-record-progress-by-hand")
        async with stack.worker():
            request = await stack.open(RequestSpec(regime="uk_gdpr", complaint=True, approval_required=True))
            await request.until(lambda s: s.status == "awaiting_approval")
            await stack.sleep(timedelta(days=20))  # the 14th day's letter
            press = TellProgressInput(note="Our billing team is reviewing the records again.",
                                      once="console:compliance:bo:0", actor="compliance:bo")
            for _ in range(2):  # pressed twice: one letter
                await request.handle.execute_update(DSR.tell_progress, press)
            await stack.sleep(timedelta(days=15))  # the next, 14 days after staff's
            letters = fakes.subject_letters(request.id)
            assert letters.count("complaint_progress") == 3, letters
            await request.handle.execute_update(DSR.approve, ApproveInput(actor="compliance:bo"))
            assert (await request.result()).status == "completed"
            return (await request.handle.fetch_history()).to_json()


def main() -> int:
    path = DIRECTORY / "complaint_progress_by_hand.json"
    path.write_text(asyncio.run(record()) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
