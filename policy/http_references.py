"""What an `http` system's configuration names in the rest of the policy: checked with the policy
as a whole (policy/model.py), since the configuration alone cannot know the policy's statutes,
categories and systems."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from policy.http_model import HttpConfig
from policy.systems import System


def check_http_references(name: str, config: HttpConfig, *, statutes: Collection[str],
                          categories: Collection[str], systems: Mapping[str, System]) -> None:
    """What an http system's configuration names must exist in the policy: its statutory holds,
    categories and the systems it reads identifiers from."""
    where = f"systems.{name}.config"
    for statute in sorted(config.statutes() - set(statutes)):
        raise ValueError(f"{where}.datasets: unknown statutory hold {statute!r}")
    for dataset_name, dataset in config.datasets.items():
        if dataset.category not in categories:
            raise ValueError(f"{where}.datasets.{dataset_name}.category: unknown category {dataset.category!r}")
    for i, identifier in enumerate(config.identifiers):
        source = systems.get(identifier.system)
        if source is None or identifier.system == name:
            raise ValueError(f"{where}.identifiers.{i}.system: unknown system {identifier.system!r}")
        if source.connector == "sql" and identifier.dataset not in {d.name for d in source.datasets}:
            raise ValueError(f"{where}.identifiers.{i}.dataset: unknown dataset {identifier.dataset!r} "
                             f"in system {identifier.system!r}")
