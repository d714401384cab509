"""The image docker-compose.yml builds (Dockerfile, .dockerignore) holds what the code needs and
nothing of the machine it was built on. Docker does not run here, so these tests read the files."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

from tests.compose_support import ROOT


def dockerfile_instructions() -> list[tuple[str, list[str]]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_copies_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name.split(".")[0].rstrip("*") for name in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied: set[str] = set()
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY":
            continue
        words = [w for w in shlex.split(rest) if not w.startswith("--")]
        sources, destination = words[:-1], words[-1]
        # One folder per COPY, into a folder of the same name: `COPY a b dest/` flattens them.
        if len(sources) == 1 and Path(destination.rstrip("/")).name == sources[0].rstrip("/"):
            copied.add(sources[0].rstrip("/"))
        else:
            copied.update(s for s in sources if s.endswith((".toml", ".md")))
    assert packages <= copied, f"not copied: {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied


def test_dockerfile_builds_a_non_root_api_image() -> None:
    instructions = dockerfile_instructions()
    keywords = dict(instructions)
    assert keywords["FROM"].startswith("python:3.11-slim")
    assert any(k == "RUN" and "pip install --no-cache-dir ." in r for k, r in instructions)
    user = [r for k, r in instructions if k == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert "8000" in keywords["EXPOSE"].split()
    assert keywords["CMD"] == '["dsrflow", "api"]'


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".dsrflow", "tests", "bench", ".git"} <= ignored
    assert any("__pycache__" in entry for entry in ignored)
