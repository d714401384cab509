"""`dsrflow requests`: the open requests whose workflow stopped, and resuming one, for an operator
without the console (what resuming does: dsrflow/domain/request_resume.py; the same over REST:
api/rest/request_resume.py)."""

from __future__ import annotations

import asyncio
import getpass
import os
import uuid
from datetime import UTC
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import command_group, command_settings, fail, with_pool

if TYPE_CHECKING:
    from dsrflow.domain.request_resume import Resumed

requests_app = command_group("Requests whose workflow stopped: list them, resume one.")


@requests_app.command("stopped")
def requests_stopped() -> None:
    """Print one line per open request whose workflow ended (failed, terminated, timed out) and
    that the start sweep flagged: its id, when the sweep found it stopped (UTC), its due date (its
    deadline runs on while it is stopped) and why, the nearest due date first. Never the subject."""
    from dsrflow.domain.request_resume import stopped_requests
    from schemas.plain_text import one_line, without_addresses

    rows = asyncio.run(with_pool(stopped_requests))
    if not rows:
        typer.echo("no stopped request")
    for row in rows:
        # The sweep's message names no one; folded to one line and any address replaced all the
        # same, so that a row written another way puts neither a subject nor a forged line here.
        since = row["since"].astimezone(UTC).isoformat(timespec="seconds")
        due = f"due {row['current_due_date'].isoformat()}" if row["current_due_date"] else "no due date yet"
        typer.echo(f"{row['request_id']}  {since}  {due}  {one_line(without_addresses(row['message']))}")


@requests_app.command("resume")
def requests_resume(
    request_id: Annotated[str, typer.Argument(help="the request's id, from `dsrflow requests stopped`")],
    reason: Annotated[str, typer.Option(
        "--reason", help="why it may carry on now (the cause that ended it, and how it was fixed); kept in "
                         "the audit trail with your user name, never sent to the subject")],
) -> None:
    """Resume an open request whose workflow ended, once its cause is fixed: it carries on from
    where it stopped, and what runs again takes effect once (docs/lifecycle.md). Exit 1 when there
    is nothing to resume (its workflow runs, it is closed, ...), saying why."""
    from pydantic import ValidationError

    from api.problems import field_errors
    from api.staff_writes import ResumeBody
    from dsrflow.domain.request_resume import ResumeRefused, resume_request
    from dsrflow.infra.temporal_client import connect_client, not_yet_reachable

    try:
        request_id = str(uuid.UUID(request_id))
    except ValueError:
        fail(f"REQUEST_ID: expected a request's id (a UUID), got {request_id!r}", 2)
    try:
        # Stripped as the console's form is: a reason of spaces says nothing.
        body = ResumeBody.model_validate({"reason": reason.strip()})
    except ValidationError as exc:
        fail("--reason: " + "; ".join(e["message"] for e in field_errors(exc.errors())), 2)
    try:
        actor = f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no USER, LOGNAME or passwd entry for this uid (a bare container)
        fail(f"cannot tell who runs this (no user name for uid {os.getuid()}): set USER, which the audit "
             "trail records as who resumed the request", 2)

    async def run() -> Resumed:
        settings = command_settings()
        try:
            client = await connect_client(settings)
        except RuntimeError as exc:
            if not not_yet_reachable(exc):
                raise
            fail(f"cannot reach Temporal at {settings.effective_temporal_address} (TEMPORAL_ADDRESS, or start "
                 f"it with `dsrflow up`): {exc}", 2)
        return await with_pool(lambda pool: resume_request(client, pool, request_id, actor=actor,
                                                           reason=body.reason))

    try:
        resumed = asyncio.run(run())
    except ResumeRefused as refused:
        fail(str(refused))
    typer.echo(f"resumed {request_id}: the {resumed.ended} run carries on from workflow task "
               f"{resumed.from_event} (new run {resumed.run_id})")
