"""The manual's code blocks (README.md, docs/*.md), and running them as a person pastes them.

The rule writers follow (docs/testing.md): every fenced block names its language. A ```sh, ```bash
or ```console block is commands, run verbatim in order, unless the line right before its fence is
`<!-- not run: why -->`; any other language (```text for output, ```yaml for files) is never run.
A page's runnable blocks go into one `bash` with `set -euo pipefail` (a command that fails, or a
`$VAR` no earlier command set, ends it), in the checkout, with the virtualenv on PATH as after
`. .venv/bin/activate`. What the test changes, and nothing else: the documented default ports
become the test stack's, `curl` fails on an HTTP error (`--fail-with-body`: an example answered 4xx
is wrong even though `curl -s` exits 0), and `BROWSER=echo` / `PAGER=cat` stand in for a person's
browser and pager.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
SHELL = frozenset({"sh", "bash", "console"})
NOT_RUN = re.compile(r"^<!-- not run: (\S.*?) -->$")
FENCE = re.compile(r"^(\s*)```([^`\s]*)[^`]*$")  # an info string holds no backtick: ```` ```sh ```` is inline
PLACEHOLDER = re.compile(r"\[--|<[A-Za-z_]+>")  # `[--all]`, `<id>`: words to replace, not commands

# The ports the manual names (`make run`'s defaults), by the name tests/up_process.py gives them.
DEFAULT_PORTS = {8000: "api", 5433: "pg", 8233: "ui", 1025: "smtp", 8100: "demo", 9464: "metrics"}
HOST_PORT = re.compile(r"\b(localhost|127\.0\.0\.1):(\d+)\b")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    not_run: str | None  # the reason given, when the block is marked

    @property
    def runs(self) -> bool:
        return self.language in SHELL and self.not_run is None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block, at any indent (a block in a list item is indented with its item)."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    n = 0
    while n < len(lines):
        opening = FENCE.match(lines[n])
        if not opening:
            n += 1
            continue
        indent = opening.group(1)
        end = next((k for k in range(n + 1, len(lines)) if lines[k].strip().startswith("```")), None)
        assert end is not None, f"{page.relative_to(REPO)}:{n + 1}: a fence that never closes"
        marker = NOT_RUN.match(lines[n - 1].strip()) if n else None
        body = [line.removeprefix(indent) for line in lines[n + 1:end]]
        found.append(Block(page, n + 1, opening.group(2), "\n".join(body) + "\n",
                           marker.group(1) if marker else None))
        n = end + 1
    return found


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.runs]


def on_ports(text: str, ports: dict[str, int]) -> str:
    def swap(match: re.Match[str]) -> str:
        name = DEFAULT_PORTS.get(int(match.group(2)))
        return f"{match.group(1)}:{ports[name]}" if name in ports else match.group(0)
    return HOST_PORT.sub(swap, text)


def shell_env(stack_env: dict[str, str]) -> dict[str, str]:
    """The second terminal of the README's tour: the stack's settings, `. .venv/bin/activate`."""
    return {**stack_env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(REPO), "PAGER": "cat", "BROWSER": "echo"}


def run_blocks(page_blocks: list[Block], ports: dict[str, int], env: dict[str, str], cwd: Path,
               timeout: float) -> subprocess.CompletedProcess[str]:
    """One shell, the blocks in order; each block ends by printing `--- <page>:<line> ok`. What the
    commands print to either stream is in `stdout`, in order, as in a terminal."""
    script = ["set -euo pipefail", 'curl() { command curl --fail-with-body "$@"; }']
    for block in page_blocks:
        script += [on_ports(block.text, ports), f"printf '\\n--- {block.where} ok\\n'"]
    try:
        return subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=shell_env(env), text=True,
                              errors="replace", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:  # say how far it got
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        raise AssertionError(f"not done within {timeout}s\n{out[-4000:]}") from None


def assert_ran(done: subprocess.CompletedProcess[str], page_blocks: list[Block]) -> None:
    missing = [b.where for b in page_blocks if f"--- {b.where} ok" not in done.stdout]
    assert done.returncode == 0 and not missing, (
        f"exit {done.returncode}; blocks not finished: {missing}\n{done.stdout[-4000:]}")
