"""Whether a legal-claims hold keeps a kept record, judged as the erasure that kept it judges it
(activities/connectors/sql_erasure.py `_covering`): by system and by category. A hold names systems
(none: every one) and categories (none: every one); a dataset's categories are its fields'.

The erasure sweep (activities/deferred.py) and the un-restriction of a called-off erasure's records
(activities/called_off_marks.py) ask it of the holds still in force once the hold that kept a record
is released. Before, they asked by system only: a second hold over the CRM's marketing data kept a
subject's support requests from erasure and restricted, which no hold covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policy.model import Policy


def dataset_categories(policy: Policy, system: str, dataset: str) -> frozenset[str] | None:
    """The categories of `system`'s `dataset` under `policy`; None where the records are the
    system's whole (a processor or SaaS kept whole: dataset "all") or not in the policy, which any
    hold over the system may cover."""
    spec = policy.systems.get(system)
    for found in spec.datasets if spec is not None else ():
        if found.name == dataset:
            return frozenset(rule.category for rule in found.fields.values())
    return None


def hold_covers(hold: Mapping[str, Any], system: str, categories: frozenset[str] | None) -> bool:
    """Whether `hold` (a legal_holds row) keeps records of `system` whose data is of `categories`."""
    if hold["systems"] and system not in hold["systems"]:
        return False
    return not hold["categories"] or categories is None or bool(set(hold["categories"]) & categories)


def any_covers(holds: Iterable[Mapping[str, Any]], system: str, categories: frozenset[str] | None) -> bool:
    return any(hold_covers(hold, system, categories) for hold in holds)
