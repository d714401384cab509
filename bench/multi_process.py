"""Horizontal scale, proven: erasures spread over two APIs and two workers, each exactly once.

    .venv/bin/python -m bench.multi_process [--requests 300] [--baseline first|last|none] [--results DIR] [--keep]
    .venv/bin/python -m bench.multi_process --smoke   # 40 erasures, no baseline (tests/test_multi_process.py)

On bench/multi_stack.py's stack (two `dsrflow api` and two `dsrflow worker` processes, one
PostgreSQL, one Temporal dev server, one SMTP sink, all reached by address as in compose), under
B1's conditions (bench/common.py `bench_policy`): `--requests` identity-attested erasures, one
demo subject each, are posted alternately to API 1 and API 2 (20 calls in flight, as B1) and timed
from the first POST until every workflow has completed. With a baseline (by default, first) the same
number of other subjects is erased with API 2 and worker 2 stopped (1 + 1 processes, same stack,
same run): the speed-up is the ratio of the two rates. Then, across the two APIs: an access package
downloaded from both, the public intake's per-client limit counted once for both, a console session
made on API 1 used (with its CSRF token) on API 2, a subject's code verified on the other API.
Finally the exactly-once checks (bench/multi_process_checks.py), `dsrflow audit verify`, and each
worker's share of the tasks. Writes bench/results/<date>-multi-process.json (...-baseline-last.json
with `--baseline last`, multi_process_smoke.json with --smoke); exit status 0 only when every
check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from bench.chaos_snapshot import row_owners
from bench.common import RESULTS, load_1min, write_result
from bench.multi_process_checks import KINDS, collect, coverage, findings, tasks_per_worker
from bench.multi_stack import AppProcess, MultiProcessStack, multi_process_stack
from devstack.demo.subjects import demo_subjects
from devstack.smtp_sink import read_mailbox
from dsrflow.infra.db import create_pool
from dsrflow.stores.staff_tokens import create_token
from schemas.workflow import workflow_id_for

CONCURRENCY = 20  # API calls in flight, as B1
SCALED, BASELINE = "2 apis + 2 workers", "1 api + 1 worker"
SUBMIT_LIMIT = 6  # DSRFLOW_RATE_SUBMIT_PER_IP for the run: small enough to reach in a few calls
ACCESS_SUBJECT = "ada@example.com"  # never among the erasures (they start at the fourth subject)
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
# The response letter's link: the portal's page of the package, whose button (a POST) downloads it.
PACKAGE_LINK = re.compile(r"https?://[^\s\"'<>]+/portal/packages/[A-Za-z0-9_-]+")


@dataclass
class Pass:
    name: str
    apis: list[str]
    workers: list[str]
    requests: dict[str, str] = field(default_factory=dict)  # request id -> subject's address
    via: Counter = field(default_factory=Counter)  # API -> requests opened through it
    seconds: float = 0.0
    cpu_ms_per_request: dict[str, int] = field(default_factory=dict)  # process -> CPU per request
    machine_busy: float = 0.0  # share of all cores' time not idle meanwhile (others' load included)

    def row(self) -> dict[str, Any]:
        return {"pass": self.name, "apis": self.apis, "workers": self.workers, "requests": len(self.requests),
                "seconds": round(self.seconds, 2), "per_second": round(len(self.requests) / self.seconds, 2),
                "opened_via": dict(self.via), "cpu_ms_per_request": self.cpu_ms_per_request,
                "machine_busy": self.machine_busy}


async def erasures(stack: MultiProcessStack, name: str, apis: list[AppProcess], emails: list[str]) -> Pass:
    """One attested erasure per address, posted to `apis` in turn; seconds from the first POST
    until the last workflow completed (each awaited through Temporal, as B1 does)."""
    assert stack.client is not None
    client = stack.client
    run = Pass(name, [a.name for a in apis], [w.name for w in stack.workers if w.running])
    limit = asyncio.Semaphore(CONCURRENCY)
    https = [stack.http(api, stack.token) for api in apis]

    async def one(index: int, email: str) -> None:
        api = apis[index % len(apis)]
        async with limit:
            r = await https[index % len(apis)].post("/v1/requests", json={
                "type": "erasure", "identity_attested": True, "subject": {"email": email}})
        if r.status_code != 201:
            raise RuntimeError(f"{api.name}: POST /v1/requests answered {r.status_code}: {r.text}")
        request_id = r.json()["id"]
        run.requests[request_id] = email
        run.via[api.name] += 1
        state = await client.get_workflow_handle(workflow_id_for(request_id)).result()
        if state["status"] != "completed":
            raise RuntimeError(f"request {request_id} ended {state['status']}")

    try:
        cpu, machine = stack.cpu_seconds(), psutil.cpu_times()
        start = time.perf_counter()
        await asyncio.gather(*(one(i, email) for i, email in enumerate(emails)))
        run.seconds = time.perf_counter() - start
        # Where the work went: with every core busy, more processes cannot make it go faster.
        used = {role: seconds - cpu.get(role, 0.0) for role, seconds in stack.cpu_seconds().items()}
        run.cpu_ms_per_request = {role: round(s * 1000 / len(emails)) for role, s in sorted(used.items()) if s >= 0.05}
        run.machine_busy = _busy(machine, psutil.cpu_times())
    finally:
        for http in https:
            await http.aclose()
    print(f"  {name}: {run.row()}", flush=True)
    return run


def _busy(before: Any, after: Any) -> float:
    """The share of every core's time spent working between two psutil.cpu_times()."""
    spent = {name: getattr(after, name, 0.0) - getattr(before, name, 0.0)
             for name in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")}
    total = sum(spent.values())
    return round(1 - (spent["idle"] + spent["iowait"]) / total, 3) if total > 0 else 0.0


# -- across the APIs ---------------------------------------------------------------------------


async def shared_rate_limit(stack: MultiProcessStack) -> dict[str, Any]:
    """Public submissions from one client, alternately to each API: the limit is counted once for
    all of them (rate_limit_counters in Postgres, buckets keyed with the shared secret), so the
    first refusal comes after SUBMIT_LIMIT submissions in all, not SUBMIT_LIMIT per API. Then one
    accepted request's code, e-mailed after its submission to one API, is verified on the other."""
    answers: list[tuple[str, int, str | None]] = []
    for i in range(SUBMIT_LIMIT + len(stack.apis)):
        api = stack.apis[i % len(stack.apis)]
        async with stack.http(api) as http:
            r = await http.post("/v1/public/requests", json={"type": "erasure", "email": f"rate-{i}@example.net"})
        answers.append((api.name, r.status_code, r.json().get("id") if r.status_code == 202 else None))
    statuses = [status for _, status, _ in answers]
    first_id = answers[0][2]
    verified = await verify_elsewhere(stack, first_id) if first_id else {"error": "no request accepted"}
    return {"limit": SUBMIT_LIMIT, "answers": [f"{api} {status}" for api, status, _ in answers],
            "verification": verified,
            "ok": statuses == [202] * SUBMIT_LIMIT + [429] * len(stack.apis) and verified.get("status") == "completed"}


async def verify_elsewhere(stack: MultiProcessStack, request_id: str) -> dict[str, Any]:
    """The code from the verification letter of a request submitted to API 1, sent to API 2."""
    assert stack.client is not None
    deadline = time.monotonic() + 60
    code = None
    while code is None and time.monotonic() < deadline:
        for message in read_mailbox(stack.mail):
            if message["X-DSR-Request-Id"] == request_id and message["X-DSR-Purpose"] == "verification":
                body = message.get_body(preferencelist=("plain",))
                found = re.search(r"\b(\d{6})\b", body.get_content() if body else "")
                code = found.group(1) if found else None
        await asyncio.sleep(0.3)
    if code is None:
        return {"error": "no verification letter with a code"}
    async with stack.http(stack.apis[-1]) as http:
        r = await http.post(f"/v1/public/requests/{request_id}/verify", json={"code": code})
    state = await asyncio.wait_for(stack.client.get_workflow_handle(workflow_id_for(request_id)).result(), 120)
    return {"submitted_on": stack.apis[0].name, "verified_on": stack.apis[-1].name, "answer": r.status_code,
            "status": state["status"]}


async def console_and_package(stack: MultiProcessStack, compliance_token: str) -> dict[str, Any]:
    """An access request opened on API 1 waits for approval; compliance signs in to the console
    on API 1 and, with that cookie and that page's CSRF token, reads the queue and approves on
    API 2. The response letter's package link then works on every API, byte for byte."""
    assert stack.client is not None
    first, other = stack.apis[0], stack.apis[-1]
    async with stack.http(first, stack.token) as http:
        r = await http.post("/v1/requests", json={
            "type": "access", "identity_attested": True, "subject": {"email": ACCESS_SUBJECT}})
    request_id = r.json()["id"]
    await _wait_status(stack, request_id, "awaiting_approval")
    out: dict[str, Any] = {"request_id": request_id}
    async with stack.http(first) as one, stack.http(other) as two:
        form = CSRF_INPUT.search((await one.get("/console/sign-in")).text)
        signed = await one.post("/console/sign-in", data={"token": compliance_token,
                                                          "csrf_token": form.group(1) if form else ""})
        out["signed_in_on"] = f"{first.name} {signed.status_code}"
        page = await one.get(f"/console/requests/{request_id}")
        csrf = CSRF_INPUT.search(page.text)
        two.cookies.update(one.cookies)  # the browser's cookie jar: the same site behind a balancer
        queue = await two.get("/console/", follow_redirects=False)
        out["queue_on_other"] = f"{other.name} {queue.status_code}"
        approved = await two.post(f"/console/requests/{request_id}/approve",
                                  data={"csrf_token": csrf.group(1) if csrf else "", "note": "multi-process check"},
                                  follow_redirects=False)
        out["approved_on_other"] = f"{other.name} {approved.status_code} {approved.headers.get('location', '')}"
    out["console_ok"] = (signed.status_code == 303 and queue.status_code == 200 and ACCESS_SUBJECT in queue.text
                         and approved.status_code == 303 and "done=approve" in approved.headers.get("location", ""))
    state = await asyncio.wait_for(stack.client.get_workflow_handle(workflow_id_for(request_id)).result(), 180)
    out["status"] = state["status"]
    out.update(await _download_everywhere(stack, request_id))
    return out


async def _wait_status(stack: MultiProcessStack, request_id: str, status: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    async with stack.http(stack.apis[-1], stack.token) as http:
        while (now := (await http.get(f"/v1/requests/{request_id}")).json()["status"]) != status:
            if time.monotonic() > deadline:
                raise RuntimeError(f"request {request_id} still {now} after {timeout:.0f}s, not {status}")
            await asyncio.sleep(0.5)


async def _download_everywhere(stack: MultiProcessStack, request_id: str) -> dict[str, Any]:
    links = []
    for message in read_mailbox(stack.mail):
        if message["X-DSR-Request-Id"] == request_id and message["X-DSR-Purpose"] == "response":
            body = message.get_body(preferencelist=("plain",))
            links += PACKAGE_LINK.findall(body.get_content() if body else "")
    if len(set(links)) != 1:
        return {"package_ok": False, "package_links": links}
    path = urlsplit(links[0]).path
    got: dict[str, str] = {}
    for api in stack.apis:
        async with stack.http(api) as http:
            r = await http.post(path)
        got[api.name] = (f"{r.status_code} {len(r.content)} bytes sha256 {hashlib.sha256(r.content).hexdigest()[:16]}"
                         if r.status_code == 200 and r.content[:2] == b"PK" else f"{r.status_code} {r.text[:200]}")
    return {"package_link_host": urlsplit(links[0]).netloc, "package_downloads": got,
            "package_ok": all(v.startswith("200") for v in got.values()) and len(set(got.values())) == 1}


# -- the run -------------------------------------------------------------------------------------


async def run(requests: int, baseline: str, keep: bool) -> dict[str, Any]:
    emails = [s.email for s in demo_subjects()[3:]]
    needed = 2 + requests * (1 if baseline == "none" else 2)
    if needed > len(emails):
        raise SystemExit(f"--requests {requests}: the demo has {len(emails)} subjects to erase, {needed} needed")
    home = Path(tempfile.mkdtemp(prefix="dsrflow-multi-"))
    try:
        async with multi_process_stack(home, env={"DSRFLOW_RATE_SUBMIT_PER_IP": f"{SUBMIT_LIMIT}/hour"}) as stack:
            owners = await row_owners(stack)
            held_before = Counter(owners.values())
            pool = await create_pool(stack.database_url, max_size=1)
            try:
                compliance = await create_token(pool, "compliance", "multi-process check")
            finally:
                await pool.close()
            passes = [await erasures(stack, "warm-up", stack.apis, emails[:2])]  # caches of every process
            batches = iter([emails[2 + i * requests:2 + (i + 1) * requests] for i in range(2)])

            async def scaled_pass() -> Pass:
                return await erasures(stack, SCALED, stack.apis, next(batches))

            async def baseline_pass() -> Pass:
                for app in (stack.apis[1], stack.workers[1]):
                    stack.stop_app(app)
                done = await erasures(stack, BASELINE, stack.apis[:1], next(batches))
                for app in (stack.workers[1], stack.apis[1]):
                    stack.start_app(app)
                    await stack.wait_app(app)
                return done

            # The dev server slows a little as its database grows: whichever pass runs second pays.
            for one_pass in {"first": [baseline_pass, scaled_pass], "last": [scaled_pass, baseline_pass],
                             "none": [scaled_pass]}[baseline]:
                passes.append(await one_pass())
            scaled = next(p for p in passes if p.name == SCALED)
            cross = {"rate_limit": await shared_rate_limit(stack),
                     "console_and_package": await console_and_package(stack, compliance)}
            subjects = {rid: email for p in passes for rid, email in p.requests.items()}
            outcome = await collect(stack, subjects, held_before)
            outcome.worker_tasks = await tasks_per_worker(stack, list(scaled.requests))
            audit = await stack.audit_verify()
    finally:
        if keep:
            print(f"kept {home}", flush=True)
        else:
            shutil.rmtree(home, ignore_errors=True)
    found = findings(outcome)
    checks = {f"exactly_once_{kind}": not found[kind] for kind in KINDS}
    checks.update({
        "package_from_every_api": bool(cross["console_and_package"].get("package_ok")),
        "console_session_on_every_api": bool(cross["console_and_package"].get("console_ok")),
        "rate_limit_shared": bool(cross["rate_limit"]["ok"]),
        "audit_chain_verifies": audit[0] == 0,
    })
    rows = {p.name: p.row() for p in passes}
    figures: dict[str, Any] = {"scaled": rows[SCALED], "checks": checks, "all_checks_passed": all(checks.values()),
                               "findings": {k: {"count": len(v), "first": v[:20]} for k, v in found.items()},
                               "cross_api": cross, "audit_verify": audit[1], "coverage": coverage(outcome)}
    if BASELINE in rows:
        figures["baseline"] = rows[BASELINE]
        figures["speedup"] = round(rows[SCALED]["per_second"] / rows[BASELINE]["per_second"], 3)
    b1 = RESULTS / "b1_throughput.json"
    if b1.exists():
        figures["b1_real_per_second"] = json.loads(b1.read_text())["figures"]["real_per_second"]
    return {"figures": figures, "runs": list(rows.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--requests", type=int, help="erasures per pass (default 300; --smoke 40)")
    parser.add_argument("--smoke", action="store_true", help="the short version tests/test_multi_process.py runs")
    parser.add_argument("--baseline", choices=["first", "last", "none"], default="first",
                        help="when to run the 1 api + 1 worker pass (default first; --smoke: none)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON result")
    parser.add_argument("--keep", action="store_true", help="keep DSRFLOW_HOME (logs, mail) after the run")
    args = parser.parse_args()
    requests = args.requests or (40 if args.smoke else 300)
    baseline = "none" if args.smoke else args.baseline
    load_before = load_1min()
    started = time.monotonic()
    result = asyncio.run(run(requests, baseline, args.keep))
    f = result["figures"]
    f["wall_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps({"checks": f["checks"], "scaled": f["scaled"], "baseline": f.get("baseline"),
                      "speedup": f.get("speedup")}, indent=1), flush=True)
    name = ("multi_process_smoke" if args.smoke else f"{datetime.now(UTC):%Y-%m-%d}-multi-process"
            + ("-baseline-last" if baseline == "last" else ""))
    write_result(args.results, name, params={"requests": requests, "baseline": baseline, "api_concurrency": CONCURRENCY,
                                             "submit_limit_per_ip": SUBMIT_LIMIT, "opendsr_completion_delay": 0.0},
                 figures=f, runs=result["runs"], load_before=load_before,
                 notes=["per_second: erasures completed per second, from the first POST until every workflow "
                        "had completed, calls alternating between the APIs of the pass",
                        f"baseline: the same stack with API 2 and worker 2 stopped, run {baseline} (the Temporal "
                        "dev server's SQLite database grows during a run, which slows whichever pass runs later)",
                        "cpu_ms_per_request: CPU time per erasure of each process over the pass; machine_busy: the "
                        "share of both cores' time not idle, other users' load included"])
    sys.exit(0 if f["all_checks_passed"] else 1)


if __name__ == "__main__":
    main()
