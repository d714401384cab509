"""Every path of the API the manual names (`POST /v1/requests/{id}/approve`, `/console/sign-in`,
`/healthz`) is a route of the app, with the method the manual gives it; and every staff endpoint of
the OpenAPI schema is in docs/api.md's tables. Read from the app's own routes (`create_app`), with
no stack: nothing is called.

A path ending in `/` (`/v1/callbacks/manual/`) stands for the routes under it; `{id}`, `$ID` and
a hex token stand for any path parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from dsrflow.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
NAMED = re.compile(r"(?<![\w/.])(?:(GET|POST|PUT|PATCH|DELETE)\s+)?"
                   r"(/(?:v1|console|portal|codec|healthz|metrics|docs|openapi\.json)\b[\w/{}.$\-]*)")


def _routes(routes: Iterable[Any]) -> Iterator[tuple[str, str]]:
    for route in routes:
        if hasattr(route, "original_router"):  # an included router
            yield from _routes(route.original_router.routes)
        elif getattr(route, "path", None):
            yield from ((method, route.path) for method in (getattr(route, "methods", None) or {"*"}))


def _shape(path: str) -> str:
    path = re.sub(r"\$\w+|\{[^}]*\}|\b[0-9a-f]{8,}\b", "{}", path)
    return path.rstrip("/") or "/"


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(Settings())


def test_every_path_the_manual_names_is_a_route(app):
    routes = {(method, _shape(path)) for method, path in _routes(app.routes)}
    paths = {path for _, path in routes}
    wrong = []
    for document in DOCUMENTS:
        for number, line in enumerate(document.read_text().splitlines(), 1):
            for method, named in NAMED.findall(line):
                if named.endswith((".py", ".md")):  # api/console/team.py, not a route
                    continue
                named = named.rstrip(".")
                shape = _shape(named)
                if named.endswith("/") and shape != "/":
                    ok = any(path.startswith(shape + "/") or path == shape for path in paths)
                else:
                    ok = (method, shape) in routes if method else shape in paths
                if not ok:
                    wrong.append(f"{document.relative_to(ROOT)}:{number}: {method} {named}".strip())
    assert not wrong, "no such route:\n" + "\n".join(wrong)


def _named_with_methods(text: str) -> set[tuple[str, str]]:
    """(method, path shape) for each path a line names after its methods: a line of api.md's
    table names several (`GET`, `POST /v1/requests/{id}/notes`; `retry-task` / `resolve-task`)."""
    named = set()
    for line in text.splitlines():
        methods = re.findall(r"\b(GET|POST|PUT|PATCH|DELETE)\b", line)
        for path in re.findall(r"(/v1/[\w/{}.\-]*[\w}]|/codec/\w+|/metrics|/healthz)", line):
            named |= {(method, _shape(path)) for method in methods}
        for base, tail in re.findall(r"(/v1/requests/\{id\})/[\w-]+`?\s*(?:`[^`]*`\s*|\([^)]*\)\s*)?/\s*`?([\w-]+)`", line):
            named |= {(method, _shape(f"{base}/{tail}")) for method in methods}
    return named


def test_every_operation_of_the_api_is_in_the_manual(app):
    """docs/api.md names every operation of /openapi.json with its method (the README calls it
    "every staff endpoint, the subject side, errors and health"); the processors' callbacks are
    connectors.md's."""
    in_api_md = _named_with_methods((ROOT / "docs" / "api.md").read_text())
    connectors = (ROOT / "docs" / "connectors.md").read_text()
    missing = []
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if path.startswith("/v1/callbacks/"):
                if re.sub(r"\{[^}]*\}", "{token}", path) not in connectors:
                    missing.append(f"{method.upper()} {path} (connectors.md)")
            elif (method.upper(), _shape(path)) not in in_api_md:
                missing.append(f"{method.upper()} {path}")
    assert not missing, "operations the manual does not name:\n" + "\n".join(missing)
