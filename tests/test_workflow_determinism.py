"""Workflow code makes no call whose answer differs on replay: no clock, no randomness, no I/O, no
environment (Temporal's rules for workflow code). Checked in the source, on every path at once.

Temporal's sandbox refuses such a call only on a path a test runs, and costs a fifth of the CPU of a
test that runs workflows: the workflow tests (tests/workflow_stack.py: the real workflows on fake
activities, the random journeys) and the replay of stored histories (tests/test_replay.py) run in it;
the stacks with real activities run workflows as production does, outside it
(docs/testing.md#how-the-suite-is-kept-fast). This check covers the paths no test runs."""

from __future__ import annotations

import ast
from pathlib import Path

import workflows

WORKFLOW_CODE = sorted(Path(workflows.__file__).parent.rglob("*.py"))

# Modules whose use in workflow code is non-deterministic or I/O. `asyncio` stays: in a workflow
# its sleeps and tasks are the workflow's own timers and coroutines.
FORBIDDEN_MODULES = {"random", "uuid", "time", "os", "socket", "subprocess", "threading", "secrets",
                     "httpx", "asyncpg", "aiosmtplib", "urllib", "pathlib", "shutil", "tempfile", "io"}
# Calls whose answer is the machine's clock: `workflow.now()` is the workflow's.
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}
FORBIDDEN_BUILTINS = {"open", "input", "print"}


def findings(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno}: imports {alias.name}" for alias in node.names
                      if alias.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{where}:{node.lineno}: imports from {node.module}")
        elif isinstance(node, ast.Call):
            called = node.func
            if isinstance(called, ast.Attribute) and isinstance(called.value, ast.Name) \
                    and (called.value.id, called.attr) in CLOCK_CALLS:
                found.append(f"{where}:{node.lineno}: reads the machine's clock ({called.value.id}.{called.attr}); "
                             f"use workflow.now()")
            elif isinstance(called, ast.Name) and called.id in FORBIDDEN_BUILTINS:
                found.append(f"{where}:{node.lineno}: calls {called.id}()")
    return found


def test_workflow_code_reads_no_clock_draws_no_number_and_does_no_io():
    assert WORKFLOW_CODE, "no workflow code found"
    problems = [problem for path in WORKFLOW_CODE for problem in findings(path.read_text(), path.name)]
    assert not problems, "\n".join(problems)


def test_the_check_finds_each_kind_of_call():
    """The check itself: each kind of call it must refuse, refused."""
    source = ("import random\nfrom uuid import uuid4\nimport os.path\nfrom datetime import datetime, date\n"
              "def run():\n    datetime.now()\n    date.today()\n    open('x')\n    datetime(2026, 1, 1)\n")
    assert [line.split(": ", 1)[1] for line in findings(source, "w.py")] == [
        "imports random", "imports from uuid", "imports os.path",
        "reads the machine's clock (datetime.now); use workflow.now()",
        "reads the machine's clock (date.today); use workflow.now()", "calls open()"]
