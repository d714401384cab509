"""What the policy in force says about a request at intake, beyond its shape: the corrections it
allows (Art. 16, policy/systems.py) and the languages the controller writes in. One place for
the staff API, the public API, the portal and the console form."""

from __future__ import annotations

from policy.model import Policy
from policy.systems import correction_problems
from schemas.requests import RequestDetails


def intake_problems(policy: Policy, new: RequestDetails) -> dict[str, str]:
    """Field path -> what is wrong; empty when the policy accepts the request."""
    problems = correction_problems(policy.systems.values(), new.corrections) if new.corrections else {}
    supported = policy.languages.supported
    if new.language is not None and new.language not in supported:
        problems["language"] = (f"we do not write in {new.language.value!r}; choose one of "
                                f"{', '.join(lang.value for lang in supported)}")
    return problems
