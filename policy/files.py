"""Reading the policy's YAML files: the policy itself and the files it names (http systems'
configurations, translations), found next to the policy or among the shipped ones. Problems
raise ValueError naming the file and, for a named file, the path that names it."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml


def read_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`, the caller's own copy (it may change it). The same text is parsed
    once: a policy load reads the policy and each of its translations (most of its 24 ms of CPU was
    building what the parser read), and activities and every in-process app of the tests load it
    again and again. Keyed by the text, not the file's modification time, which the kernel keeps to
    a few milliseconds: a file written twice within them would be read as its first version."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    return copy.deepcopy(_parsed(path, text))


@lru_cache(maxsize=64)
def _parsed(path: Path, text: str) -> dict[str, Any]:
    try:
        # libyaml's parser (PyYAML's wheels carry it): the policy and its translations load in a
        # tenth of the pure-Python parser's time, and every process and CLI command loads them.
        content = yaml.load(text, Loader=yaml.CSafeLoader)
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
