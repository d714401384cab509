"""The policy's names for the codes an evidence pack holds: each system by its label, each dataset
by what subjects read for it, each statutory hold by its label and each data category by its own,
from the policy version the request was planned under (in the staff's language, as the console
names them), so that the page a DPO hands to an authority reads "Billing (customers, invoices,
...)" where the pack held `billing`, and "Belgian accounting and tax records" where it held
`be_accounting`. The JSON keeps the codes, with this table of their labels beside them (`labels`).

A code the policy version does not know (a system dropped since) reads as words ("be accounting"),
never as the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from policy.model import LoadedPolicy, Policy, PolicyError, parse_policy
from policy.systems import dataset_words, readable

# A processor kept whole under a hold (activities/connectors/manual_email.py) names no dataset.
WHOLE_SYSTEM = "all"


@dataclass(frozen=True)
class Labels:
    """The labels of the codes one pack holds, as its JSON carries them (`as_json`)."""

    systems: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, dict[str, str]] = field(default_factory=dict)
    holds: dict[str, str] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)

    def system(self, system: str) -> str:
        return self.systems.get(system) or readable(system)

    def dataset(self, system: str, dataset: str) -> str:
        return self.datasets.get(system, {}).get(dataset) or readable(dataset)

    def hold(self, ref: str) -> str:
        return self.holds.get(ref) or readable(ref)

    def category(self, category: str) -> str:
        return self.categories.get(category) or readable(category)

    def as_json(self) -> dict[str, Any]:
        return {"systems": self.systems, "datasets": self.datasets, "holds": self.holds,
                "categories": self.categories}


# Policy versions as parsed, by version: a version is its content's hash, so it never changes,
# and the console's request page assembles a pack at every refresh of its live region.
_PARSED: dict[str, LoadedPolicy] = {}
_PARSED_AT_MOST = 32


async def version_policy(conn: asyncpg.Connection, version: str) -> LoadedPolicy | None:
    """A stored policy version, parsed (None: not stored, or not readable as a policy)."""
    if version not in _PARSED:
        content = await conn.fetchval("SELECT content FROM policy_versions WHERE version = $1", version)
        if content is None:
            return None
        try:
            parsed = parse_policy(content)
        except PolicyError:
            # A version this code no longer reads whole: the pack names its codes as words instead.
            return None
        if len(_PARSED) >= _PARSED_AT_MOST:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[version] = parsed
    return _PARSED[version]


async def planned_policy(conn: asyncpg.Connection, version: str) -> Policy | None:
    """The policy version the request was planned under, in the staff's language (None: not stored)."""
    loaded = await version_policy(conn, version)
    return None if loaded is None else loaded.in_language(loaded.policy.languages.staff.value)


def labels(policy: Policy | None, plan_tasks: Iterable[dict[str, Any]], *, systems: Iterable[str],
           datasets: Iterable[tuple[str, str]], statutes: Iterable[str],
           categories: Iterable[str]) -> Labels:
    """The labels of the `systems`, (system, dataset) pairs, statutory holds and categories a pack
    names: a system by the label its plan gave it, else the policy version's."""
    planned = {t["system"]: t["label"] for t in plan_tasks if t.get("label")}
    known = policy.systems if policy else {}
    by_policy = {name: system.label for name, system in known.items()}
    named: dict[str, dict[str, str]] = {}
    for system, dataset in datasets:
        named.setdefault(system, {})[dataset] = ("all the data it holds" if dataset == WHOLE_SYSTEM
                                                 else dataset_words(known, system, dataset))
    statutory = policy.statutory_holds if policy else {}
    policy_categories = policy.categories if policy else {}
    return Labels(
        systems={s: planned.get(s) or by_policy.get(s) or readable(s) for s in sorted({*systems, *planned})},
        datasets=named,
        holds={ref: statutory[ref].label for ref in statutes if ref in statutory},
        categories={c: policy_categories[c].label if c in policy_categories else readable(c) for c in categories})
