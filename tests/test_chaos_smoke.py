"""The chaos suite, small: `python -m bench.chaos --smoke` (12 erasures, PostgreSQL restarted
once, then the worker killed with SIGKILL once) must meet every target of issue 12. And its checks, on
doctored states, must each find what they are there to find."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest

from bench.chaos_checks import UNOWNED, Findings, compare
from bench.chaos_snapshot import Letter, PassState
from tests.process_support import run_bench_smoke

ROOT = Path(__file__).resolve().parents[1]
ADA = "ada@example.com"
CRM_ROW = ("crm", "contacts", ("1",))


def _state(request_id: str) -> PassState:
    """One subject's erasure as a clean run leaves it: two letters to the subject, one to a
    processor, one task result, one ledger entry, one erased and one untouched row."""
    letters = [Letter(request_id, "acknowledgement", ADA, f"<ack-{request_id}>"),
               Letter(request_id, "response", ADA, f"<resp-{request_id}>"),
               Letter(request_id, "processor_request", "privacy@surveys.example", f"<proc-{request_id}>")]
    return PassState(
        subjects={request_id: ADA}, mailbox=list(letters), recorded=list(letters),
        tasks={ADA: {"crm:erase": {"status": "done", "found": 3, "changed": 3, "external_id": False}}},
        ledger={ADA: Counter({("crm", "contacts", "1", "deleted", "request"): 1})},
        deferred={ADA: Counter()},
        rows={("crm", "companies", ("1",)): {"id": 1, "name": "Acme"},
              ("billing", "customers", ("1",)): {"id": 1, "email": "hashed", "restricted": True}},
    )


OWNERS = {CRM_ROW: ADA, ("billing", "customers", ("1",)): ADA}


def _found(chaos: PassState) -> dict[str, int]:
    findings = compare(_state("clean-1"), chaos, OWNERS)
    return {kind: findings.count(kind) for kind in Findings.KINDS if findings.count(kind)}


def test_the_same_outcome_under_other_request_ids_is_no_finding() -> None:
    assert _found(_state("chaos-1")) == {}


def test_checks_find_each_kind_of_damage() -> None:
    base = _state("chaos-1")

    def doctored(change) -> PassState:
        state = copy.deepcopy(base)
        change(state)
        return state

    # A letter delivered twice (same Message-ID), as after a crash between SMTP and commit.
    assert _found(doctored(lambda s: s.mailbox.append(s.mailbox[0]))) == {"duplicate_letters": 1}
    # The processor asked twice under two Message-IDs, both recorded.
    second = Letter("chaos-1", "processor_request", "privacy@surveys.example", "<proc-again>")
    assert _found(doctored(lambda s: (s.mailbox.append(second), s.recorded.append(second)))) == {"duplicate_letters": 1}
    # A response never sent; one sent but not recorded; one recorded but lost.
    assert _found(doctored(lambda s: (s.mailbox.pop(1), s.recorded.pop(1)))) == {"letter_mismatches": 1}
    assert _found(doctored(lambda s: s.recorded.pop(0))) == {"letter_mismatches": 1}
    assert _found(doctored(lambda s: s.mailbox.pop(0))) == {"letter_mismatches": 2}  # missing, and recorded-not-delivered
    # A task result lost after a crash (recomputed as not found), or missing altogether.
    assert _found(doctored(lambda s: s.tasks[ADA]["crm:erase"].update(found=0, changed=0))) == {"task_mismatches": 1}
    assert _found(doctored(lambda s: s.tasks[ADA].clear())) == {"task_mismatches": 1}
    # A row not erased, one minimised differently, one deleted that should have been kept.
    assert _found(doctored(lambda s: s.rows.__setitem__(CRM_ROW, {"id": 1, "email": ADA}))) == {"effect_mismatches": 1}
    assert _found(doctored(lambda s: s.rows[("billing", "customers", ("1",))].update(restricted=False))) == {"effect_mismatches": 1}
    assert _found(doctored(lambda s: s.rows.pop(("billing", "customers", ("1",))))) == {"effect_mismatches": 1}
    # The ledger: an erasure recorded twice, or not at all.
    entry = ("crm", "contacts", "1", "deleted", "request")
    assert _found(doctored(lambda s: s.ledger[ADA].update({entry: 1}))) == {"doubled_effects": 1}
    assert _found(doctored(lambda s: s.ledger[ADA].clear())) == {"missing_effects": 1}
    # A shared row changed is a finding too, though no subject owns it.
    findings = compare(_state("clean-1"), doctored(lambda s: s.rows.__setitem__(("crm", "companies", ("1",)), {})), OWNERS)
    assert list(findings.effect_mismatches) == [UNOWNED]


def test_a_duplicate_in_the_clean_pass_itself_is_found() -> None:
    clean = _state("clean-1")
    clean.mailbox.append(clean.mailbox[0])
    assert compare(clean, clean, OWNERS).count("duplicate_letters") == 1


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    results = tmp_path_factory.mktemp("chaos")
    result, done = run_bench_smoke("chaos", results, "chaos_smoke.json", timeout=240)
    result["output"] = done.stdout[-4000:]
    result["returncode"] = done.returncode
    return result


def test_smoke_checks_compared_real_work(smoke: dict) -> None:
    f = smoke["figures"]
    compared = f["compared"]
    assert f["clean_pass"]["valid_baseline"], smoke["output"]
    # Every erasure writes an acknowledgement and a response, and asks the four e-mail processors.
    assert compared["letters_per_request"] == {"6": 12}, compared
    assert compared["letter_purposes"] == {"acknowledgement": 12, "response": 12, "processor_request": 48}
    assert compared["task_results_compared"] == 12 * 8, compared  # crm, analytics, billing, e-mail, 4 by mail
    assert compared["demo_rows_changed_by_clean_pass"] > 100 and compared["ledger_entries_compared"] > 100, compared
    # Each fault struck while requests were in flight, or it tested nothing.
    assert [row["fault"] for row in f["faults"]] == ["PostgreSQL restart", "worker kill -9"]
    assert all(row["requests"] > 0 for row in f["faults"]), f["faults"]


@pytest.mark.parametrize("target", [
    "all_completed", "no_duplicate_letters", "letters_exactly_once", "effects_as_clean_run",
    "task_results_as_clean_run", "no_5xx_but_503", "every_api_call_answered",
    "p95_within_30s_of_fault_free", "audit_chain_intact",
])
def test_smoke_meets_target(smoke: dict, target: str) -> None:
    f = smoke["figures"]
    assert f["targets"][target], (f"{target} missed\n{smoke['output']}\n"
                                  f"{json.dumps(f['findings'], indent=1)[:3000]}\napi failures: {f['api_failures']}")
