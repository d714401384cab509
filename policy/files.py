"""Reading the policy's YAML files: the policy itself and the files it names (http systems'
configurations, translations), found next to the policy or among the shipped ones. Problems
raise ValueError naming the file and, for a named file, the path that names it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`."""
    try:
        # libyaml's parser (PyYAML's wheels carry it): the policy and its translations load in a
        # tenth of the pure-Python parser's time, and every process and CLI command loads them.
        content = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return content


def named_file(policy: Path, relative: Path, where: str, shipped: Path) -> dict[str, Any]:
    """The mapping in the file the policy names at `where`: next to the policy, else shipped."""
    found = next((c for c in (policy.parent / relative, shipped / relative) if c.is_file()), None)
    if found is None:
        raise ValueError(f"{policy}: {where}: {relative} not found next to the policy or in {shipped}")
    return read_mapping(found)
