"""Every relative link of the manual leads somewhere: a `[text](path)` in README.md, docs/*.md,
BENCHMARKS.md or RELIABILITY.md names a file of the checkout, and its `#section` a heading of that
page (as GitHub makes a heading's anchor). Every `page.md#section` the rest of the checkout names
(code comments, messages, the Makefile) is a heading too. A moved page or a reworded heading
otherwise sends a reader to GitHub's "file not found", or to the top of a long page. No stack: the
files only.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANUAL = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "BENCHMARKS.md", ROOT / "RELIABILITY.md"]
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\s*\[[^\]]+\]:\s*(\S+)")  # inline, or a reference definition
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+\1")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
# `docs/audit.md#after-a-restore`, `lifecycle.md#the-approval-gate`; not a URL's (`.../README.md#x`).
SECTION = re.compile(r"(?<![\w/.-])((?:docs/)?[\w-]+\.md)#([\w-]+)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, without punctuation, spaces as dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := HEADING.match(line)):
            name = slug(heading.group(1))
            repeats = seen.get(name, 0)  # GitHub numbers a repeated heading: name, name-1, ...
            seen[name] = repeats + 1
            found.add(name if not repeats else f"{name}-{repeats}")
        found.update(HTML_ANCHOR.findall(line))
    return frozenset(found)


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    broken, fenced = [], False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        for found in LINK.finditer(CODE_SPAN.sub("x", line)):
            target = found.group(1) or found.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, section = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(root)}:{number}: {target}"
            if not file.exists():
                broken.append(f"{where}: no such file")
            elif section and file.suffix == ".md" and section not in anchors(file):
                broken.append(f"{where}: {file.relative_to(root)} has no heading with that anchor")
    return broken


def test_every_relative_link_of_the_manual_leads_somewhere():
    broken = [problem for page in MANUAL for problem in broken_links(page)]
    assert not broken, "\n".join(broken)


def test_every_section_the_checkout_names_is_a_heading():
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout.decode()
    missing = []
    for name in filter(None, names.split("\0")):
        if ROOT / name == Path(__file__).resolve():  # its own examples name pages made up for the test
            continue
        try:
            text = (ROOT / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):  # binary, or deleted meanwhile
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for found in SECTION.finditer(line):
                path, section = found.groups()
                places = ((ROOT / name).parent / path, ROOT / path, ROOT / "docs" / path)
                page = next((place for place in places if place.exists()), None)
                if page is None or section not in anchors(page.resolve()):
                    missing.append(f"{name}:{number}: {path}#{section}")
    assert not missing, "\n".join(missing)


def test_a_broken_link_is_caught(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The approval gate\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#the-approval-gate) [ok](#page) `[not a link](nowhere.md)`\n"
                    "[gone](moved.md) [reworded](other.md#approval-gate) [no anchor](#nothing)\n"
                    "```text\n[in a block](nowhere.md)\n```\n")
    assert [problem.split(": ", 1)[1] for problem in broken_links(page, root=tmp_path)] == [
        "moved.md: no such file",
        "other.md#approval-gate: other.md has no heading with that anchor",
        "#nothing: page.md has no heading with that anchor",
    ]
