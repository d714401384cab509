"""Horizontal scale (issue 18): two `dsrflow api` and two `dsrflow worker` processes against one
PostgreSQL and one Temporal dev server, reached by address as in compose.

`python -m bench.multi_process --smoke` opens 40 identity-attested erasures alternately on the two
APIs (`make bench`'s figure is the same run with 300 and a 1 + 1 baseline: BENCHMARKS.md) and must
pass every check: each request completed, its letters, effects and audit events exactly once, both
workers at work, a package downloadable from either API, the public intake's rate limit counted
once for both, a console session (and its CSRF token) from API 1 good on API 2, a code e-mailed
after a submission to API 1 accepted by API 2, and `dsrflow audit verify`. About a minute on
2 cores. The checks themselves are run on doctored outcomes too: each must find what it is for.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.chaos_snapshot import Letter
from bench.multi_process_checks import KINDS, REQUIRED_EVENTS, Outcome, findings
from tests.process_support import run_bench_smoke

ROOT = Path(__file__).resolve().parents[1]
SMOKE_REQUESTS = 40
RID, OTHER, ADDRESS = "r-1", "r-2", "alan@example.org"


def _outcome() -> Outcome:
    """One erasure as a run alone leaves it."""
    letters = [Letter(RID, "acknowledgement", ADDRESS, "<ack>"), Letter(RID, "response", ADDRESS, "<resp>")]
    return Outcome(
        subjects={RID: ADDRESS}, statuses={RID: "completed"}, mailbox=list(letters), recorded=list(letters),
        tasks={RID: {"crm": {"status": "done", "attempt": 1, "erased": 2},
                     "billing": {"status": "not_found", "attempt": 1, "erased": 0},
                     "analytics": {"status": "done", "attempt": 1, "erased": 1},
                     "email_marketing": {"status": "done", "attempt": 1, "erased": 0}}},
        ledger=[(RID, "crm", "contacts", "4"), (RID, "crm", "chat_transcripts", "3"),
                (RID, "analytics", "users", "C-3")],
        processor_seen=Counter({RID: 1}),
        events={RID: [*REQUIRED_EVENTS, "task.done:crm", "task.not_found:billing", "task.done:analytics",
                      "task.pending:email_marketing", "processor.callback:email_marketing",
                      "task.done:email_marketing"]},
        held_before=Counter({ADDRESS: 7}), held_after=Counter(),
        worker_tasks={"worker-1": Counter(workflow=9, activity=5), "worker-2": Counter(workflow=8, activity=6)},
    )


def _found(change: Callable[[Outcome], object]) -> dict[str, int]:
    outcome = copy.deepcopy(_outcome())
    change(outcome)
    return {kind: len(items) for kind, items in findings(outcome).items() if items}


def test_a_clean_outcome_has_no_finding() -> None:
    assert _found(lambda o: None) == {}


@pytest.mark.parametrize(("change", "kind"), [
    # A letter delivered twice under one Message-ID (a crash between SMTP and its commit)...
    (lambda o: o.mailbox.append(o.mailbox[0]), "letters"),
    # ... or written twice, by two workers, under two Message-IDs, both recorded.
    (lambda o: (o.mailbox.append(Letter(RID, "response", ADDRESS, "<again>")),
                o.recorded.append(Letter(RID, "response", ADDRESS, "<again>"))), "letters"),
    (lambda o: o.recorded.pop(), "letters"),
    (lambda o: o.statuses.update({RID: "in_progress"}), "not_completed"),
    (lambda o: o.tasks[RID]["crm"].update(attempt=2), "tasks"),
    (lambda o: o.tasks[RID].pop("billing"), "tasks"),
    (lambda o: o.ledger.append(o.ledger[0]), "ledger"),
    # The same record erased by a second request (and so ledgered under it too).
    (lambda o: o.ledger.append((OTHER, *o.ledger[0][1:])), "ledger"),
    (lambda o: o.tasks[RID]["analytics"].update(erased=2), "ledger"),
    (lambda o: o.processor_seen.update({RID: 1}), "processor"),
    (lambda o: o.processor_seen.clear(), "processor"),
    (lambda o: o.held_after.update({ADDRESS: 1}), "residue"),
    (lambda o: o.events[RID].append("letter.sent:response"), "audit"),
    (lambda o: o.events[RID].remove("task.not_found:billing"), "audit"),
    (lambda o: o.events[RID].append("task.done:billing"), "audit"),
    (lambda o: o.worker_tasks["worker-2"].clear(), "workers"),
    (lambda o: o.worker_tasks.update({"other (1@elsewhere)": Counter(activity=1)}), "workers"),
])
def test_each_check_finds_its_damage(change: Callable[[Outcome], object], kind: str) -> None:
    found = _found(change)
    assert set(found) == {kind}, found


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    results = tmp_path_factory.mktemp("multi_process")
    result, done = run_bench_smoke("multi_process", results, "multi_process_smoke.json", timeout=300)
    result["output"] = done.stdout[-3000:] + done.stderr[-2000:]
    result["returncode"] = done.returncode
    return result


def test_smoke_spread_the_work_over_both_apis_and_both_workers(smoke: dict) -> None:
    f = smoke["figures"]
    assert f["scaled"]["requests"] == SMOKE_REQUESTS, smoke["output"]
    assert f["scaled"]["opened_via"] == {"api-1": SMOKE_REQUESTS // 2, "api-2": SMOKE_REQUESTS // 2}
    workers = f["coverage"]["worker_tasks"]
    assert sorted(workers) == ["worker-1", "worker-2"], workers
    # Neither worker idled: each ran at least a fifth of the activities (an even split is 50 %).
    activities = sum(w.get("activity", 0) for w in workers.values())
    assert all(w.get("activity", 0) >= activities / 5 for w in workers.values()), workers


def test_smoke_checks_looked_at_real_work(smoke: dict) -> None:
    c = smoke["figures"]["coverage"]
    erasures = SMOKE_REQUESTS + 2  # and the warm-up's one through each API
    assert c["requests"] == erasures and c["letters_delivered"] == 2 * erasures, c
    assert c["subjects_held_nowhere_before"] == 0 and c["demo_rows_linked_before"] > 10 * erasures, c
    assert c["ledger_entries"] > 10 * erasures and c["audit_events"] >= 10 * erasures, c


@pytest.mark.parametrize("check", [f"exactly_once_{kind}" for kind in KINDS] + [
    "package_from_every_api", "console_session_on_every_api", "rate_limit_shared", "audit_chain_verifies"])
def test_smoke_passes(smoke: dict, check: str) -> None:
    f = smoke["figures"]
    assert f["checks"][check], (f"{check} failed\n{smoke['output']}\n{json.dumps(f['findings'], indent=1)[:3000]}\n"
                                f"{json.dumps(f['cross_api'], indent=1)}")


def test_smoke_exit_status(smoke: dict) -> None:
    assert smoke["returncode"] == 0, smoke["output"]
