"""The chaos suite's figures: one row per fault (the requests it hit, what went wrong with them,
the API's answers while it lasted), the totals, and the targets of issue 12."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.chaos_checks import UNOWNED, Findings
from bench.chaos_load import Answer, OpenedRequest
from bench.common import p95

P95_EXCESS_LIMIT = 30.0  # seconds above the fault-free p95 (issue 12, item 11)


@dataclass
class FaultRecord:
    name: str
    start: float  # time.time() when the fault began
    end: float  # ... and when the component was back


@dataclass
class PassRun:
    started: float
    finished: float
    drained: bool
    requests: list[OpenedRequest]
    answers: list[Answer]
    faults: list[FaultRecord]

    def subjects(self) -> dict[str, str]:
        return {r.request_id: r.email for r in self.requests if r.request_id}

    def latencies(self, requests: list[OpenedRequest] | None = None) -> list[float]:
        """From the first POST attempt to the request's closing in the database."""
        return [r.closed_at - r.first_attempt for r in (self.requests if requests is None else requests)
                if r.status == "completed" and r.closed_at is not None]


def request_rows(run: PassRun) -> list[dict[str, Any]]:
    """Each request of a pass, times in seconds from the pass's start: where to look when one is late."""
    return [{"email": r.email, "request_id": r.request_id, "status": r.status, "post_attempts": r.attempts,
             "opened_s": round(r.first_attempt - run.started, 2),
             "closed_s": round(r.closed_at - run.started, 2) if r.closed_at is not None else None,
             "latency_s": round(r.closed_at - r.first_attempt, 2) if r.closed_at is not None else None}
            for r in run.requests]


def api_answers(answers: list[Answer]) -> dict[str, int]:
    return {
        "calls": len(answers),
        "503": sum(a.status == 503 for a in answers),
        "other_5xx": sum(a.status is not None and a.status >= 500 and a.status != 503 for a in answers),
        "unanswered": sum(a.status is None for a in answers),
    }


def _other_answers(answers: list[Answer]) -> dict[str, int]:
    """The 5xx other than 503 and the unanswered calls, by call: where to look first."""
    by_call: dict[str, int] = {}
    for a in answers:
        if a.status is None or (a.status >= 500 and a.status != 503):
            label = f"{a.call} -> {a.status or 'no answer'}"
            by_call[label] = by_call.get(label, 0) + 1
    return by_call


def _requests_figures(run: PassRun, requests: list[OpenedRequest], findings: Findings) -> dict[str, Any]:
    subjects = {r.email for r in requests}
    latencies = run.latencies(requests)
    return {
        "requests": len(requests),
        "completed": sum(r.status == "completed" for r in requests),
        **{kind: findings.count(kind, subjects) for kind in Findings.KINDS},
        "p95_latency_s": round(p95(latencies), 2) if latencies else None,
    }


def fault_rows(run: PassRun, findings: Findings) -> list[dict[str, Any]]:
    """Per fault: the requests in flight at any moment of it (opened before it ended, not closed
    before it began), and the API's answers from its start until the next fault (or the drain)."""
    rows = []
    for i, fault in enumerate(run.faults):
        until = run.faults[i + 1].start if i + 1 < len(run.faults) else run.finished
        hit = [r for r in run.requests
               if r.first_attempt <= fault.end and (r.closed_at is None or r.closed_at >= fault.start)]
        window = [a for a in run.answers if fault.start <= a.at < until]
        rows.append({
            "fault": fault.name, "at_s": round(fault.start - run.started, 1),
            "down_s": round(fault.end - fault.start, 1),
            **_requests_figures(run, hit, findings),
            "api": api_answers(window), "api_failures": _other_answers(window),
        })
    return rows


def figures(clean: PassRun, chaos: PassRun, findings: Findings, baseline: Findings,
            audit: tuple[int, str], compared: dict[str, Any], extra_events: dict[str, int]) -> dict[str, Any]:
    total = _requests_figures(chaos, chaos.requests, findings)
    last_fault = chaos.faults[-1].end if chaos.faults else chaos.started
    closed = [r.closed_at for r in chaos.requests if r.closed_at is not None]
    clean_p95 = p95(clean.latencies()) if clean.latencies() else None
    chaos_p95 = total["p95_latency_s"]
    api = api_answers(chaos.answers)
    baseline_ok = (clean.drained and all(r.status == "completed" for r in clean.requests)
                   and all(baseline.count(kind) == 0 for kind in Findings.KINDS))
    excess = round(chaos_p95 - clean_p95, 2) if chaos_p95 is not None and clean_p95 is not None else None
    targets = {
        "all_completed": total["completed"] == len(chaos.requests) and chaos.drained,
        "no_duplicate_letters": total["duplicate_letters"] == 0,
        "letters_exactly_once": total["letter_mismatches"] == 0,
        "effects_as_clean_run": (total["effect_mismatches"] + total["doubled_effects"]
                                 + total["missing_effects"]) == 0,
        "task_results_as_clean_run": total["task_mismatches"] == 0,
        "no_5xx_but_503": api["other_5xx"] == 0,
        "every_api_call_answered": api["unanswered"] == 0,
        "p95_within_30s_of_fault_free": excess is not None and excess <= P95_EXCESS_LIMIT,
        "audit_chain_intact": audit[0] == 0,
    }
    return {
        "opened": sum(r.request_id is not None for r in chaos.requests),
        **total,
        "unowned_row_mismatches": len(findings.effect_mismatches.get(UNOWNED, [])),
        "compared": compared,
        "api": api, "api_failures": _other_answers(chaos.answers),
        "drain_after_last_fault_s": round(max(closed) - last_fault, 1) if closed and chaos.drained else None,
        "fault_free_p95_latency_s": round(clean_p95, 2) if clean_p95 is not None else None,
        "p95_excess_s": excess,
        "audit_verify": {"exit": audit[0], "output": audit[1]},
        # Not a target: what recovery left in the trail (a resend, a retried task), per event type.
        "audit_events_beyond_clean_pass": extra_events,
        "clean_pass": {"completed": sum(r.status == "completed" for r in clean.requests),
                       "requests": len(clean.requests), "api": api_answers(clean.answers),
                       "valid_baseline": baseline_ok, "findings": baseline.as_json()},
        "faults": fault_rows(chaos, findings),
        "slowest_requests": sorted(request_rows(chaos), key=lambda r: -(r["latency_s"] or float("inf")))[:5],
        "targets": targets,
        "all_targets_met": baseline_ok and all(targets.values()),
        "findings": findings.as_json(),
    }


_COLUMNS = (("fault", 16), ("at_s", 6), ("down_s", 6), ("completed", 10), ("dup letters", 11),
            ("letter diff", 11), ("effect diff", 11), ("task diff", 9), ("503", 5), ("other 5xx", 9),
            ("no answer", 9), ("p95 s", 6))


def _cells(row: dict[str, Any]) -> list[str]:
    effects = row["effect_mismatches"] + row["doubled_effects"] + row["missing_effects"]
    return [row["fault"], str(row.get("at_s", "")), str(row.get("down_s", "")),
            f"{row['completed']}/{row['requests']}", str(row["duplicate_letters"]),
            str(row["letter_mismatches"]), str(effects), str(row["task_mismatches"]),
            str(row["api"]["503"]), str(row["api"]["other_5xx"]), str(row["api"]["unanswered"]),
            str(row["p95_latency_s"])]


def table(result: dict[str, Any]) -> str:
    """The per-fault table, the totals and the targets, as printed at the end of a run."""
    lines = ["  ".join(name.rjust(width) for name, width in _COLUMNS)]
    rows = [*result["faults"], {**result, "fault": "all requests"}]
    for row in rows:
        lines.append("  ".join(cell.rjust(width) for cell, (_, width) in zip(_cells(row), _COLUMNS, strict=True)))
    lines += [
        (f"drain after the last fault: {result['drain_after_last_fault_s']} s; p95 latency "
         f"{result['p95_latency_s']} s vs fault-free {result['fault_free_p95_latency_s']} s "
         f"(+{result['p95_excess_s']} s); audit verify: exit {result['audit_verify']['exit']} "
         f"({result['audit_verify']['output']})"),
        (f"clean pass: {result['clean_pass']['completed']}/{result['clean_pass']['requests']} completed, "
         f"valid baseline: {result['clean_pass']['valid_baseline']}; compared: {result['compared']}"),
        "targets: " + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in result["targets"].items()),
    ]
    lines.append("slowest: " + "; ".join(f"{r['email']} {r['status']} {r['latency_s']} s"
                                         for r in result["slowest_requests"]))
    if result["audit_events_beyond_clean_pass"]:
        lines.append(f"audit events the clean pass did not have: {result['audit_events_beyond_clean_pass']}")
    if result["api_failures"]:
        lines.append(f"API failures: {result['api_failures']}")
    for kind, found in result["findings"].items():
        for item in found["first"][:5]:
            lines.append(f"  {kind}: {item}")
    return "\n".join(lines)
