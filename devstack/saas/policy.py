"""The policy `dsrflow up --demo-saas` runs with: the configured (or shipped) policy plus the
http systems of policy/http/demo-systems.yaml, written under DSRFLOW_HOME."""

from __future__ import annotations

from pathlib import Path

import yaml

from policy.model import DEFAULT_POLICY, load_policy

DEMO_SYSTEMS = DEFAULT_POLICY.parent / "http" / "demo-systems.yaml"


def write_demo_saas_policy(base: Path, home: Path) -> Path:
    content = yaml.safe_load(base.read_text())
    content.setdefault("systems", {}).update(yaml.safe_load(DEMO_SYSTEMS.read_text()))
    path = home / "demo-saas-policy.yaml"
    path.write_text(f"# Written by `dsrflow up --demo-saas` from {base} and {DEMO_SYSTEMS}.\n"
                    + yaml.safe_dump(content, sort_keys=False, allow_unicode=True))
    load_policy(path)  # fail here, with the file named, rather than in the worker
    return path
