"""Every `dsrflow ...` command the manual gives exists, with the options it is given, and every
`python -m <module>` names a module of the checkout: a renamed command or flag otherwise leaves an
operator pasting a line that answers "No such command".

Read from README.md and docs/: the lines of `sh`, `bash` and `console` blocks, and inline code
that starts a command (`` `dsrflow requests resume ID --reason ...` ``), wherever `dsrflow` is in
command position (line start, `$(`, `|`, `;`, `&&`, `then`, `do`). Checked against the typer
app's own tree (`cli.main.app`), without running anything.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

import typer

from cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
SHELL = {"sh", "bash", "console", "shell"}
COMMAND = re.compile(r"(?:^|\$\(|;|&&|\|\||\||\bthen|\bdo)\s*(?:\$ )?dsrflow(?=\s|$)(.*)")


def _commands(text: str) -> Iterator[tuple[int, str]]:
    """(line, what follows `dsrflow`) for each command the text gives."""
    language = None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            language = None if language is not None else (line.strip()[3:].strip() or "?")
            continue
        pieces = ([line] if language in SHELL else []) if language is not None else re.findall(r"`([^`]*)`", line)
        for piece in pieces:
            while found := COMMAND.search(piece):  # `dsrflow token revoke "$(dsrflow token list ...)"`: both
                yield number, found.group(1)
                piece = found.group(1)


def _words(rest: str) -> list[str]:
    rest = re.split(r"\s#|[|;)]|&&", rest)[0]
    return re.findall(r"\"[^\"]*\"|'[^']*'|\S+", rest)


def _problems(document: Path) -> tuple[int, list[str]]:
    root = typer.main.get_command(app)
    seen, problems = 0, []
    for number, rest in _commands(document.read_text()):
        seen += 1
        where = f"{document.name}:{number}"
        words, command, path = _words(rest), root, ["dsrflow"]
        while hasattr(command, "commands") and words and not words[0].startswith("-"):
            path.append(words.pop(0))
            command = command.commands.get(path[-1])  # type: ignore[attr-defined]
            if command is None:
                problems.append(f"{where}: no command `{' '.join(path)}`")
                break
        if command is None or hasattr(command, "commands"):
            if command is not None and len(path) > 1:
                problems.append(f"{where}: `{' '.join(path)}` is a group: which of its commands?")
            continue
        options = {option for param in command.params for option in (*param.opts, *param.secondary_opts)}
        problems += [f"{where}: `{' '.join(path)}` has no option {word.split('=')[0]}"
                     for word in words if word.startswith("-") and word.split("=")[0] not in options]
    return seen, problems


def test_every_dsrflow_command_in_the_manual_exists_with_its_options():
    seen, problems = 0, []
    for document in DOCUMENTS:
        count, found = _problems(document)
        seen, problems = seen + count, problems + found
    assert seen > 50, f"only {seen} commands found: has the way the manual writes them changed?"
    assert not problems, "\n".join(problems)


def test_a_wrong_command_or_option_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Run `dsrflow token mint --role agent`, then\n\n```sh\n"
                    "dsrflow deadline --regime gdpr --recieved 2026-01-31   # a typo\n"
                    "ID=$(dsrflow requests stopped | head -1)\n```\n")
    assert _problems(page) == (3, ["page.md:1: no command `dsrflow token mint`",
                                   "page.md:4: `dsrflow deadline` has no option --recieved"])


def test_every_python_module_the_manual_runs_exists():
    missing = []
    for document in [*DOCUMENTS, ROOT / "BENCHMARKS.md", ROOT / "RELIABILITY.md"]:
        for number, line in enumerate(document.read_text().splitlines(), 1):
            for module in re.findall(r"python -m ([a-z_][\w.]*)", line):
                if importlib.util.find_spec(module) is None:  # imports the parent packages only
                    missing.append(f"{document.relative_to(ROOT)}:{number}: python -m {module}")
    assert not missing, "\n".join(missing)
