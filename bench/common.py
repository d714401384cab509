"""What the benchmarks share: the embedded stack as `dsrflow up` runs it, the machine they ran on,
medians and percentiles, and the JSON result files under bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import temporalio
import yaml
from temporalio.client import Client

from api.auth import create_token
from devstack.policy_copies import without_processors_by_email
from devstack.processes import free_port, spawn
from devstack.stack import Stack
from dsrflow.infra.db import create_pool
from dsrflow.infra.temporal_client import connect_client
from dsrflow.settings import Settings, load_settings
from policy.model import DEFAULT_POLICY

RESULTS = Path(__file__).with_name("results")


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": temporalio.__version__ if hasattr(temporalio, "__version__") else None,
    }


def load_1min() -> float:
    return round(os.getloadavg()[0], 2)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p95(values: Sequence[float]) -> float:
    """The 95th percentile, interpolated between the closest ranks (a single value is its own)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def arguments(doc: str) -> argparse.ArgumentParser:
    """A parser with what every benchmark takes: where results go and how many runs."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON result")
    parser.add_argument("--runs", type=int, default=3, help="repetitions; figures are their median")
    parser.add_argument("--profile", type=Path,
                        help="directory for py-spy profiles of the measured processes (pip install py-spy)")
    return parser


def write_result(results: Path, name: str, *, params: dict[str, Any], figures: dict[str, Any],
                 runs: list[dict[str, Any]], load_before: float, notes: list[str] | None = None) -> Path:
    """bench/results/<name>.json: the headline figures (medians), every run, the machine, and
    the 1-minute load average before and after (the machine may be shared)."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    document = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_1min": {"before": load_before, "after": load_1min()},
        "params": params,
        "figures": figures,
        "runs": runs,
        "notes": notes or [],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


@contextlib.contextmanager
def profiled(pids: dict[str, int], directory: Path | None, label: str) -> Iterator[None]:
    """With a directory, py-spy samples each process meanwhile into <label>-<name>.txt (collapsed
    stacks: `python -m bench.profile_top FILE` summarises one)."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    spies = [subprocess.Popen([str(spy), "record", "-r", "50", "-f", "raw", "--nonblocking",
                               "-o", str(directory / f"{label}-{name}.txt"), "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, pid in pids.items()]
    try:
        yield
    finally:
        for process in spies:
            process.send_signal(signal.SIGINT)
        for process in spies:
            process.wait(30)


def unattended_policy(path: Path, content: dict | None = None) -> Path:
    """The default policy (or `content`) as a benchmark runs it, written to `path`: it opens
    attested erasures by the hundred and nobody reviews them, so compliance's approval of an
    erasure staff attested (`attested_erasure`, docs/security.md) is left out."""
    content = content or yaml.safe_load(DEFAULT_POLICY.read_text())
    content["approval_required_for"] = [c for c in content.get("approval_required_for", [])
                                        if c != "attested_erasure"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def bench_policy(path: Path) -> Path:
    """The default policy without the processors reached by e-mail: their tasks wait days for a
    person, so a benchmark would measure nothing but that wait."""
    return unattended_policy(path, without_processors_by_email(yaml.safe_load(DEFAULT_POLICY.read_text())))


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Children started meanwhile write to `path` instead of our terminal (their logs are part
    of the work measured, but not of the report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def cpu_seconds(roles: dict[int, str]) -> dict[str, float]:
    """CPU time used so far by us and each of our descendants, per role: `roles` names processes
    by pid; PostgreSQL's backends count together; any other process goes by its name."""
    used: dict[str, float] = {}
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            name = proc.name()
        except psutil.Error:
            continue
        role = roles.get(proc.pid) or ("bench" if proc.pid == me.pid else
                                       "postgres" if name.startswith("postgres") else name)
        used[role] = used.get(role, 0.0) + times.user + times.system
    return used


@dataclass
class BenchStack:
    stack: Stack
    settings: Settings
    home: Path
    client: Client
    pool: asyncpg.Pool  # the app database
    database_url: str
    more: dict[int, str] = field(default_factory=dict)  # pid -> role of processes we added


    @property
    def api_url(self) -> str:
        return self.settings.base_url

    def pid(self, role: str) -> int:
        return next(proc.pid for name, proc in self.stack._children if name == role)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far, per component: where a run's work went."""
        return cpu_seconds({**{proc.pid: name for name, proc in self.stack._children}, **self.more})

    async def add_workers(self, count: int) -> list[subprocess.Popen[bytes]]:
        """`count` more `dsrflow worker` processes on the stack's task queue (their CPU counts as
        the worker's), once each has started polling."""
        procs = [spawn([sys.executable, "-m", "cli.main", "worker"], log_path=self.home / "logs" / f"worker-{n + 2}.log",
                       env={**self.stack.env, "DSRFLOW_WORKER_METRICS_ADDRESS": "off"})
                 for n in range(count)]
        for n, proc in enumerate(procs):
            log = self.home / "logs" / f"worker-{n + 2}.log"
            while not (log.exists() and "worker started" in log.read_text(errors="replace")):
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {n + 2} exited with {proc.returncode}; see {log}")
                await asyncio.sleep(0.2)
            self.more[proc.pid] = "worker"
        return procs

    async def api(self, role: str = "agent") -> httpx.AsyncClient:
        token = await create_token(self.pool, role, "bench")
        return httpx.AsyncClient(base_url=self.api_url, timeout=120,
                                 headers={"Authorization": f"Bearer {token}"},
                                 limits=httpx.Limits(max_connections=50))


@contextlib.asynccontextmanager
async def embedded_stack(*, opendsr_delay: float = 0.0, demo: bool = True) -> AsyncIterator[BenchStack]:
    """`dsrflow up` in a temporary DSRFLOW_HOME on free ports: PostgreSQL, Temporal dev server
    (with the tuning of devstack/temporal_server.py), SMTP sink, demo systems, and the worker and
    the API as child processes, exactly as a developer runs them."""
    with tempfile.TemporaryDirectory(prefix="dsrflow-bench-") as tmp:
        home = Path(tmp)
        env = {
            "DSRFLOW_HOME": str(home),
            "DSRFLOW_POLICY": str(bench_policy(home / "policy.yaml")),
            "DSRFLOW_DEMO": "true" if demo else "false",
            "DSRFLOW_DEMO_OPENDSR_DELAY": str(opendsr_delay),
            # A phase opens hundreds of requests with one token, past the 200 an hour a token may.
            "DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN": "1000000/hour",
            **{name: str(free_port()) for name in (
                "DSRFLOW_API_PORT", "DSRFLOW_POSTGRES_PORT", "DSRFLOW_TEMPORAL_PORT",
                "DSRFLOW_TEMPORAL_UI_PORT", "SMTP_PORT", "DSRFLOW_DEMO_OPENDSR_PORT")},
        }
        for name in ("DSRFLOW_DATABASE_URL", "TEMPORAL_ADDRESS", "SMTP_HOST"):
            os.environ.pop(name, None)  # a benchmark measures the embedded stack, nothing else
        os.environ.update(env)
        settings = load_settings()
        stack = Stack(settings)
        try:
            with _output_to(home / "logs" / "stack.log"):
                await stack.start()
            database_url = stack.env["DSRFLOW_DATABASE_URL"]
            os.environ["DSRFLOW_DATABASE_URL"] = database_url  # for children we start ourselves
            client = await connect_client(settings)
            pool = await create_pool(database_url)
            try:
                yield BenchStack(stack=stack, settings=settings, home=home, client=client, pool=pool,
                                 database_url=database_url)
            finally:
                await pool.close()
        finally:
            await asyncio.to_thread(stack.stop_all)
