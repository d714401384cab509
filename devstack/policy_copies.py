"""The shipped policy as unattended runs use it (the test stacks, the benchmarks): with fewer
systems, and still loading."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def only_systems(content: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """`content` (a policy's YAML mapping) with only the systems `names`, and without what named
    the others: the recipients only they reached (a recipient no system names makes the policy
    refuse to load: Art. 19, policy/model.py), the retention rules on them and a profile read from
    one of them."""
    keep = set(names)
    systems = content["systems"]
    content["systems"] = {name: system for name, system in systems.items() if name in keep}
    gone = ({system.get("recipient") for system in systems.values()}
            - {system.get("recipient") for system in content["systems"].values()})
    content["recipients"] = {name: recipient for name, recipient in content.get("recipients", {}).items()
                             if name not in gone}
    content["retention"] = [rule for rule in content.get("retention", []) if rule["system"] in keep]
    profiling = (content.get("automated_decisions") or {}).get("profiling")
    if profiling and profiling["system"] not in keep:
        content["automated_decisions"].pop("profiling")
    return content


def without_processors_by_email(content: dict[str, Any], keep: Iterable[str] = ()) -> dict[str, Any]:
    """`content` without its processors reached by e-mail (connector manual_email) but those in
    `keep`: their tasks wait days for a person to confirm, which would hold every request open."""
    kept = set(keep)
    return only_systems(content, [name for name, system in content["systems"].items()
                                  if system["connector"] != "manual_email" or name in kept])
