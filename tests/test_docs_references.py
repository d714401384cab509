"""The tests the documents cite as evidence exist: every `tests/<module>.py`, and every test named
after one (`tests/<module>.py::test_x`, then `::test_y` for another in the same module), in the
README, the benchmark and reliability notes and docs/. A moved or renamed test otherwise leaves
security.md pointing a reviewer at nothing. So does a name placed in a module (`api/staff_bodies.py`
`resent_since`) that is no longer there. And the reverse for metrics: every series
dsrflow/infra/metrics.py defines has its row in docs/observability.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "RELIABILITY.md"]
# A module, then what is cited in it; `::test_x` alone names another test of the module cited last.
CITED = re.compile(r"(tests/[\w/]+\.py)|::(test_\w+)")


def _missing(document: Path) -> list[str]:
    missing, module = [], None
    for number, line in enumerate(document.read_text().splitlines(), 1):
        for found in CITED.finditer(line):
            path, test = found.groups()
            if path:
                module = ROOT / path
                if not module.exists():
                    missing.append(f"{document.name}:{number}: {path} does not exist")
            elif module is not None and module.exists() and not re.search(
                    rf"^\s*(async )?def {test}\b", module.read_text(), re.MULTILINE):
                missing.append(f"{document.name}:{number}: {module.relative_to(ROOT)} has no {test}")
    return missing


def test_every_cited_test_exists():
    missing = [problem for document in DOCUMENTS for problem in _missing(document)]
    assert not missing, "\n".join(missing)


def test_every_metric_dsrflow_defines_is_in_the_manuals_table():
    """An operator reads docs/observability.md's table for what a series means: a gauge added to
    dsrflow/infra/metrics.py without a row (`dsrflow_requests_unstarted`, which an alert reads) is a
    name on a dashboard nobody can look up. A counter's row names it as Prometheus shows it (`_total`)."""
    defined = set(re.findall(r"\"(dsrflow_[a-z0-9_]+)\"", (ROOT / "dsrflow/infra/metrics.py").read_text()))
    page = (ROOT / "docs" / "observability.md").read_text()
    section = page.split("### dsrflow's metrics", 1)[1].split("\n### ", 1)[0]
    rows = "\n".join(line for line in section.splitlines() if line.startswith("| `dsrflow_"))
    rows = re.sub(r"`(dsrflow_\w+)`, `\.\.\.(_\w+)`", r"`\1`, `\1\2`", rows)  # `x`, `..._oldest_seconds`
    assert len(defined) > 15, defined
    missing = sorted(name for name in defined if not re.search(rf"`{name}(_total)?`", rows))
    assert not missing, f"not in docs/observability.md's table: {missing}"


# `api/staff_bodies.py` `resent_since`, `policy/remedies.py`, `Rectifiable`; `check_policy` in `api/request_form.py`.
_NAMED_IN = re.compile(r"`((?:\w+/)+\w+\.py)`,?\s+`([A-Za-z_][\w.]*)(?:\([^`]*\))?`|`([A-Za-z_][\w.]*)` in `((?:\w+/)+\w+\.py)`")


def _names_not_in_their_module(document: Path) -> list[str]:
    wrong = []
    for found in _NAMED_IN.finditer(document.read_text()):
        path, name = (found.group(1), found.group(2)) if found.group(1) else (found.group(4), found.group(3))
        module = ROOT / path
        if not module.exists():
            wrong.append(f"{document.name}: {path} does not exist")
        elif not re.search(rf"\b{re.escape(name.split('.')[-1])}\b", module.read_text()):
            wrong.append(f"{document.name}: {path} has no {name}")
    return wrong


def test_every_name_the_manual_places_in_a_module_is_there():
    """A function renamed or moved left security.md's "Where" pointing a reviewer at
    `api/request_form.py` `check_corrections` and legal.md at `policy/remedies.py`, `Policy.remedies_for`."""
    wrong = [problem for document in DOCUMENTS for problem in _names_not_in_their_module(document)]
    assert not wrong, "\n".join(wrong)
