"""`dsrflow letters`: the letters the local stack's mail sink kept (`$DSRFLOW_HOME/mail`), listed
and read as text, so that a developer or the README's tour reads a letter without decoding MIME by
hand (`python -m quopri` over a whole message garbled its boundary lines and printed the HTML part
too). Production has no sink: letters go to the relay, and their kept copies are on the console's
request page."""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated

import typer

from cli.common import command_group, command_settings, fail

# Controls a terminal would act on (an escape sequence can rewrite the screen or the window's
# title): the sink keeps any mail sent to it on loopback, so what it prints is shown, not obeyed.
_TERMINAL_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _shown(text: object) -> str:
    # A letter's lines end in CRLF as SMTP carried them: a line break, not a control to mark.
    return _TERMINAL_CONTROLS.sub("\ufffd", str(text).replace("\r\n", "\n"))


letters_app = command_group("The letters the local stack's mail sink kept: list them, read them as text.")

_Request = Annotated[str | None, typer.Option("--request", "-r", help="Only the letters of this request (its id).")]
_Purpose = Annotated[str | None, typer.Option(
    "--purpose", "-p", help="Only letters of this kind: acknowledgement, verification, response, "
                            "processor_request, staff_alert, ... (their X-DSR-Purpose header; a kind "
                            "that does not exist is refused, naming them all).")]


def _kinds() -> tuple[str, ...]:
    from activities.processor_mail import REMINDER_PURPOSE, REQUEST_PURPOSE, WITHDRAWAL_PURPOSE
    from schemas.vocabulary import PURPOSES

    return (*PURPOSES, REQUEST_PURPOSE, REMINDER_PURPOSE, WITHDRAWAL_PURPOSE)


def _sink() -> Path:
    """The sink's directory, which `dsrflow up` makes as it starts. Without it this is another
    DSRFLOW_HOME than the stack's (a command run outside the checkout, a variable not exported),
    where a quiet empty answer kept the tour's `until ... letters list` waiting for ever."""
    home = command_settings().home.resolve()
    sink = home / "mail"
    if not sink.is_dir():
        fail(f"{sink} does not exist: no `dsrflow up` keeps its mail under DSRFLOW_HOME={home}; run this in "
             f"the checkout where `make run` runs, or export the DSRFLOW_HOME it was started with", 2)
    return sink


def _matching(sink: Path, request: str | None, purpose: str | None) -> list[tuple[Path, EmailMessage]]:
    from devstack.smtp_sink import mailbox_files

    # A typo matches nothing, and `list` printing nothing is what a script waits on: say it instead.
    if request is not None:
        try:
            request = str(uuid.UUID(request.strip()))
        except ValueError:
            fail(f"--request: expected a request's id (a UUID), got {request!r}", 2)
    if purpose is not None and purpose not in _kinds():
        fail(f"--purpose: no letter kind {purpose!r}; one of {', '.join(_kinds())}", 2)
    return [(path, message) for path, message in mailbox_files(sink)
            if (request is None or str(message["X-DSR-Request-Id"]) == request)
            and (purpose is None or str(message["X-DSR-Purpose"]) == purpose)]


@letters_app.command("list")
def letters_list(request: _Request = None, purpose: _Purpose = None) -> None:
    """Print one line per letter, oldest first: its file, when it was sent, its kind, its request
    and its subject line. Nothing when none matches (a script can count the lines)."""
    for path, message in _matching(_sink(), request, purpose):
        typer.echo(_shown("  ".join((str(path), str(message["Date"] or "-"), str(message["X-DSR-Purpose"] or "-"),
                                     str(message["X-DSR-Request-Id"] or "-"), str(message["Subject"] or "")))))


@letters_app.command("read")
def letters_read(files: Annotated[list[Path] | None, typer.Argument(
                     metavar="FILE.eml", help="Letters' .eml files; without them, every letter the options match.")] = None,
                 request: _Request = None, purpose: _Purpose = None) -> None:
    """Print each letter as its reader sees it: who sent it to whom, when, its subject line, and its
    text (the plain part, decoded)."""
    import email
    import email.policy

    if files:
        chosen = []
        for path in files:
            try:
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            except OSError as exc:
                fail(f"cannot read {path}: {exc.strerror or exc}")
            # Any bytes parse as a message: a file that is not one (a list of ids, a .zip) was printed
            # under "From: -", "To: -" as if it were a letter with its headers blank.
            if not message.keys():
                fail(f"{path} is not a letter: it has no mail headers (the sink's .eml files, `dsrflow letters list`)")
            chosen.append((path, message))
    else:
        sink = _sink()
        chosen = _matching(sink, request, purpose)
        if not chosen:
            wanted = " ".join(filter(None, (purpose and f"of kind {purpose}", request and f"for request {request}")))
            fail(f"no letter {wanted or 'at all'} in {sink}")
    for n, (path, message) in enumerate(chosen):
        if n:
            typer.echo("\n" + "=" * 72 + "\n")
        for header in ("From", "To", "Date", "Subject"):
            typer.echo(_shown(f"{header}: {message[header] or '-'}"))
        typer.echo(f"File: {path}\n")
        body = message.get_body(preferencelist=("plain",))
        typer.echo(_shown(body.get_content()).rstrip("\n") if isinstance(body, EmailMessage) else "(no text part)")
