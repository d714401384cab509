"""docs/*.md works verbatim: each page's shell blocks, pasted in order into one shell in the checkout,
against one `dsrflow up` (tests/up_process.py) on a temporary home, exit 0 and do what they say.

Each page stands alone: it sets what it needs (a token, a request) from the README's commands, and
uses demo subjects no other page uses, so no page's examples undo another's and any one can run
alone (`-k lifecycle`). Which blocks run and what the test changes in them: tests/doc_blocks.py and
docs/testing.md. The README's tour: tests/test_readme.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.doc_blocks import DOCS, PLACEHOLDER, README, REPO, SHELL, assert_ran, blocks, run_blocks, runnable
from tests.up_process import start_healthy, stop_up

# What each page's prose says its commands show, checked in what they print.
SHOWS: dict[str, list[str]] = {
    "api.md": ["Marie, DPO office", "revoked ", '"verified":true', '"next_cursor":', '"subject_email":"erase.me@example.com"'],
    "audit.md": ["ok ", "anchor(s)", '"chain_pos":', '"prev_hash":', "/evidence.html"],
    "holds.md": ["re-erased 0 record(s)", '"review_date":"2028-06-30"', '"restriction":{"status":"active"',
                 '"lift_reason":"The claim the records were needed for was settled"',
                 '"release_reason":"Claim settled: settlement agreement signed on 2 December 2026"'],
    "languages.md": ["creating catalog dsrflow/i18n/locales/it", "compiling catalog"],
    "lifecycle.md": ['"due_date": "2026-03-02"', '"status":"awaiting_approval"', '"status":"denied"',
                     '"appeal_of":"'],
    "observability.md": ["# TYPE dsrflow_requests gauge", "dsrflow_database_up 1.0"],
    "operations.md": ["database is up to date", "revoked ", '"due_date": "2026-03-02"', "ok ", "re-erased 0",
                      "retention plan as of", "ok: 3 sql system(s)", "would delete 0 package file(s)", "  crm:",
                      "no stopped request"],
    "policy-draft.md": ["systems:\n  crm:", "ok: 3 sql system(s)"],
    "retention.md": ["retention plan as of 2027-01-01"],
}
RUN_PAGES = [page for page in DOCS if runnable(page)]
ADDRESS = re.compile(r"[\w.+-]+@(?:[\w-]+\.)+[A-Za-z]{2,}\b")
CONTROLLER = {"privacy@onetagger.com"}


def test_every_block_says_whether_it_runs():
    problems = []
    for page in [README, *DOCS]:
        for block in blocks(page):
            if not block.language:
                problems.append(f"{block.where}: name the block's language (```sh to run it, ```text for output)")
            elif block.not_run is not None and block.language not in SHELL:
                problems.append(f"{block.where}: `not run` before a ```{block.language} block, which never runs")
            elif block.runs and PLACEHOLDER.search(block.text):
                problems.append(f"{block.where}: a placeholder is not a command")
    assert not problems, "\n".join(problems)
    assert {page.name for page in RUN_PAGES} >= set(SHOWS), "SHOWS names a page without commands"


def test_pages_use_distinct_subjects():
    """A page that erased or restricted another page's subject would change what that one shows."""
    seen: dict[str, str] = {}
    clashes = []
    for page in [README, *RUN_PAGES]:
        for address in {a.lower() for b in runnable(page) for a in ADDRESS.findall(b.text)} - CONTROLLER:
            if address in seen:
                clashes.append(f"{address}: {seen[address]} and {page.name}")
            seen[address] = page.name
    assert not clashes, clashes


@dataclass
class Stack:
    ports: dict[str, int]
    env: dict[str, str]
    checkout: Path  # a copy of the checkout: the shell's directory, DSRFLOW_HOME is its .dsrflow


@pytest.fixture(scope="module")
async def docs_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    base = tmp_path_factory.mktemp("docs")
    checkout = base / "checkout"
    # A copy, so pages that change the checkout (languages.md starts a catalog) leave this one alone.
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, checkout / name)
    (checkout / ".venv").symlink_to(sys.prefix)
    proc, ports, env = await start_healthy(checkout / ".dsrflow", base / "up.log")
    try:
        yield Stack(ports, env, checkout)
    finally:
        stop_up(proc)


@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda page: page.name)
def test_page_runs_verbatim(docs_stack: Stack, page: Path):
    page_blocks = runnable(page)
    done = run_blocks(page_blocks, docs_stack.ports, docs_stack.env, docs_stack.checkout, timeout=60)
    assert_ran(done, page_blocks)
    missing = [what for what in SHOWS.get(page.name, []) if what not in done.stdout]
    assert not missing, f"{page.name} does not show {missing}\n{done.stdout[-4000:]}"
