"""README.md works verbatim: its shell blocks, pasted in order into one shell, against a fresh
`dsrflow up` (tests/up_process.py) on a temporary home, each exit 0 and do what they say.

The only change made to them is the port: the stack runs on free ports, so `localhost:8000` is
the test's API port. `make run`/`make test` are what this test stands in for, so their block is not
run; the tour's second terminal (`. .venv/bin/activate`) is the shell's PATH."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.up_process import free_ports, start_up, stop_up, up_env, wait_healthy

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def shell_blocks() -> list[str]:
    return [b for b in BLOCK.findall(README.read_text()) if not re.search(r"^make ", b, re.M)]


def test_the_readme_has_its_tour():
    blocks = shell_blocks()
    assert len(blocks) >= 4 and "v1/public/requests" in blocks[0]
    assert not [b for b in blocks if re.search(r"\[--|<[A-Z_]+>", b)], "a placeholder is not a command"


async def test_the_readme_tour_runs_verbatim(tmp_path):
    ports = free_ports()
    home = tmp_path / ".dsrflow"
    env = up_env(home, ports)
    log = tmp_path / "up.log"
    proc = start_up(env, log)
    try:
        await wait_healthy(ports["api"], proc, log)
        script = ["set -e -o pipefail"]
        for n, block in enumerate(shell_blocks()):
            script += [block.replace("localhost:8000", f"localhost:{ports['api']}"), f"echo '--- block {n} ok'"]
        script.append('echo "ID=$ID"')
        shell_env = {**env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                     "PYTHONPATH": str(README.parent), "PAGER": "cat"}
        done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=shell_env, text=True, errors="replace",
                              capture_output=True, timeout=90)
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        for n in range(len(shell_blocks())):
            assert f"--- block {n} ok" in done.stdout
        # What the tour promises: Ada's response letter, with what each system held and her link.
        assert "/portal/packages/" in done.stdout or "/v1/public/packages/" in done.stdout, done.stdout[-3000:]
        assert "crm" in done.stdout.lower()
    finally:
        stop_up(proc)
