"""README.md works verbatim: its shell blocks, pasted in order into one shell, against a fresh
`dsrflow up` (tests/up_process.py) on a temporary home, each exit 0 and do what they say.

How blocks are read and run (the ports, `curl` failing on an HTTP error): tests/doc_blocks.py.
`make run`/`make test` are what this test stands in for, so their block is marked not to be run; the
tour's second terminal (`. .venv/bin/activate`) is the shell's PATH. The tour runs on a stack of its
own: it reads the newest code in the mail, which a fresh stack makes Ada's. docs/*.md:
tests/test_docs_commands.py."""

from __future__ import annotations

from tests.doc_blocks import PLACEHOLDER, README, assert_ran, blocks, run_blocks, runnable
from tests.up_process import start_healthy, stop_up


def test_the_readme_has_its_tour():
    tour = runnable(README)
    assert len(tour) >= 4 and "v1/public/requests" in tour[0].text
    assert [b.not_run for b in blocks(README) if not b.runs] == ["tests/test_readme.py starts the stack itself"]
    assert not [b.where for b in tour if PLACEHOLDER.search(b.text)], "a placeholder is not a command"


async def test_the_readme_tour_runs_verbatim(tmp_path):
    proc, ports, env = await start_healthy(tmp_path / ".dsrflow", tmp_path / "up.log")
    try:
        tour = runnable(README)
        done = run_blocks(tour, ports, env, tmp_path, timeout=90)
        assert_ran(done, tour)
        # What the tour promises: Ada's response letter, with what each system held and her link.
        assert "/portal/packages/" in done.stdout or "/v1/public/packages/" in done.stdout, done.stdout[-3000:]
        assert "crm" in done.stdout.lower()
    finally:
        stop_up(proc)
