"""The tests' YAML: files read through the policy's own reader (the same text parsed once, a copy
each time) and written with libyaml's emitter. The tests build hundreds of policies from the shipped
one; PyYAML's pure-Python `safe_load` and `safe_dump` took about 50 s of CPU a run (py-spy,
2026-12-07)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from policy.files import read_mapping


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in `path`, the caller's own copy."""
    return read_mapping(Path(path))


def dump_yaml(content: Any, **options: Any) -> str:
    """`yaml.safe_dump(content, **options)`, by libyaml."""
    return yaml.dump(content, Dumper=yaml.CSafeDumper, **options)
