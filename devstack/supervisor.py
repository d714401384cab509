"""What `dsrflow up` does when one of its child processes exits.

The worker and the API keep no state of their own (Temporal and PostgreSQL do), so one that exits
is started again after a growing pause (1, 2, 4, 8, 16 s; DSRFLOW_RESTART_PAUSE sets the first).
One that still exits after five restarts within a minute will not recover by itself (a bad
setting, a port taken by something else): the stack stops, naming it. PostgreSQL, Temporal and
the demo systems are what the rest stands on, and restarting them under running work hides the
fault: when one exits the stack stops at once, naming it and its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from devstack.processes import StackError, spawn, stop

RESTART_WINDOW_SECONDS = 60.0
MAX_RESTARTS_IN_WINDOW = 5


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def last_line(log_path: Path) -> str:
    """The log's last line: for a child that cannot start, usually the error that stops it."""
    with log_path.open("rb") as log:
        log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
        lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    return f"last logged: {lines[-1]}" if lines else "its log is empty"


class EssentialProcess:
    """A child the stack cannot run without."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise StackError(f"{self.name} {describe_exit(self.proc.returncode)}; its log: {self.log_path}")

    def stop(self) -> None:
        stop(self.proc, signal.SIGTERM)


class RestartingProcess:
    """A child started again when it exits, until it crash-loops."""

    def __init__(
        self, name: str, command: Sequence[str | os.PathLike[str]], *, env: dict[str, str], log_path: Path,
        say: Callable[[str], None], pause: float = 1.0,
    ) -> None:
        self.name = name
        self.pause = pause  # seconds before the first restart in a window; doubled for each one after
        self.command = command
        self.env = env
        self.log_path = log_path
        self.say = say
        self.restarts = 0
        self._recent: deque[float] = deque()  # monotonic times of restarts within the window
        self._pending: tuple[float, str] | None = None  # when to restart, and how it exited
        self.proc = self._spawn()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _spawn(self) -> subprocess.Popen[bytes]:
        return spawn(self.command, env=self.env, log_path=self.log_path)

    def check(self) -> None:
        """Restart the child if it exited and its pause is over; raise when it crash-loops."""
        now = time.monotonic()
        if self._pending is not None:
            restart_at, how = self._pending
            if now >= restart_at:
                self._restart(now, how)
            return
        code = self.proc.poll()
        if code is None:
            return
        while self._recent and now - self._recent[0] > RESTART_WINDOW_SECONDS:
            self._recent.popleft()
        if len(self._recent) >= MAX_RESTARTS_IN_WINDOW:
            raise StackError(
                f"the {self.name} is crash-looping: it {describe_exit(code)} after {len(self._recent)} "
                f"restarts within {RESTART_WINDOW_SECONDS:.0f}s ({last_line(self.log_path)}); "
                f"its log: {self.log_path}")
        delay = self.pause * 2 ** len(self._recent)
        self._pending = (now + delay, describe_exit(code))
        self.say(f"the {self.name} {describe_exit(code)}; restarting it in {delay:g}s "
                 f"(restart {self.restarts + 1}); its log: {self.log_path}")

    def _restart(self, now: float, how: str) -> None:
        self.restarts += 1
        self._recent.append(now)
        self._pending = None
        # The log file is appended to across restarts: mark where each run begins.
        with self.log_path.open("a") as log:
            log.write(f"--- dsrflow up: restart {self.restarts} of the {self.name}, which {how} ---\n")
        self.proc = self._spawn()
        self.say(f"the {self.name} restarted (pid {self.proc.pid}, restart {self.restarts})")

    def stop(self) -> None:
        stop(self.proc, signal.SIGTERM)
