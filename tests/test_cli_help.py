"""`dsrflow ... --help` as an operator reads it: each command's summary in its group's list reads
as one sentence, not cut where its docstring's lines break."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("group", "summary"), [
    ("packages", "Delete the package files whose download link has expired or whose request closed a week "
                 "ago without sending them, and stored objects no record names (a day old), as the hourly "
                 "dsrflow-package-purge schedule does. Without --yes, only says how many it would delete."),
    ("requests", "Print one line per open request whose workflow ended (failed, terminated, timed out) "
                 "and that the start sweep flagged: its id, when the sweep found it stopped (UTC), its due date "
                 "(its deadline runs on while it is stopped) and why, the nearest due date first. Never the subject."),
    ("", "Apply pending database migrations, then hash the identities of requests stored without their "
         "search hashes (or under another DSRFLOW_SECRET_KEY)."),
])
def test_a_groups_list_gives_each_commands_summary_whole(group, summary):
    shown = subprocess.run([sys.executable, "-m", "cli.main", *filter(None, [group]), "--help"], cwd=REPO,
                           capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"}, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert any(summary in line for line in shown.stdout.splitlines()), shown.stdout
