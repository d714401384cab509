"""Replay saved histories of real runs against today's workflow code.

A workflow change that would break requests already running (non-determinism) fails here.
The histories' payloads are encrypted with the TEST-ONLY key in tests/histories/test-key; record
them again with `.venv/bin/python -m tests.histories.record` only when breaking them is intended.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from dsrflow.crypto.payload_codec import ENCODING
from dsrflow.infra.temporal_client import build_data_converter
from tests.histories import DIRECTORY, EARLIER, KEYS, PATHS, history_files
from workflows.dsr import DataSubjectRequestWorkflow
from workflows.system_task import SystemTaskWorkflow

HISTORIES = history_files()


def test_saved_histories_exist():
    """Every path a running request can be on is covered by a saved history."""
    today = {p.stem for p in HISTORIES if p.parent == DIRECTORY}
    assert PATHS <= today, "missing tests/histories/*.json: run `.venv/bin/python -m tests.histories.record`"
    for earlier, held in EARLIER.items():  # e.g. a sql system's task as a child workflow of its own
        assert held <= {p.stem for p in HISTORIES if p.parent.name == earlier}, earlier


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_with_current_workflow(path: Path):
    text = path.read_text()
    started = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]
    # The saved payloads really are encrypted: replay exercises the codec, not clear text.
    encodings = {base64.b64decode(p["metadata"]["encoding"]) for p in started["input"]["payloads"]}
    assert encodings == {ENCODING}

    # Each history names its workflow type: a request's, or one system's task (its child).
    replayer = Replayer(workflows=[DataSubjectRequestWorkflow, SystemTaskWorkflow],
                        data_converter=build_data_converter(KEYS))
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json(f"dsr-replay-{path.stem}", text), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure!r}"
