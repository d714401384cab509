"""`dsrflow audit`: the hash-chained audit trail (verify, anchor, compare anchors saved outside)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import command_group, command_settings, fail

if TYPE_CHECKING:
    from dsrflow.domain.audit import ChainReport
    from dsrflow.domain.audit_saved import SavedAnchors

audit_app = command_group("The hash-chained audit trail.")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[bool, typer.Option(
        "--anchor", help="first anchor the heads of every chain that changed since the last anchor "
                         "(the worker does so every few minutes)")] = False,
    saved: Annotated[Path | None, typer.Option(
        "--saved", exists=True, dir_okay=False,
        help="a file of the lines `--anchor` printed, kept outside the database: say which still match")] = None,
) -> None:
    """Recompute every audit chain and the anchor chain, and check every anchored head; print
    `ok N events ...` or the first break (exit 1); with --saved, which saved anchors the database
    still holds (exit 1 if any it does not: a restore, or a rewrite)."""
    from dsrflow.domain.audit_anchors import write_anchor
    from dsrflow.domain.audit_saved import anchor_line, compare_saved, read_saved
    from dsrflow.domain.audit_verify import verify_audit
    from dsrflow.infra.db import connect

    kept = read_saved(saved.read_text()) if saved else []
    if saved and not kept:
        fail(f"{saved} holds no line `anchor N over C chain(s): HASH` (what --anchor prints)", 2)

    async def run() -> tuple[ChainReport, SavedAnchors | None]:
        conn = await connect(command_settings().effective_database_url)
        try:
            if anchor:
                written = await write_anchor(conn)
                typer.echo(anchor_line(written) if written else "no chain changed since the last anchor")
            return await verify_audit(conn), await compare_saved(conn, kept) if kept else None
        finally:
            await conn.close()

    report, compared = asyncio.run(run())
    typer.echo(report.describe())
    if compared:
        typer.echo(compared.describe())
    if not report.ok or (compared and not compared.ok):
        raise typer.Exit(1)
