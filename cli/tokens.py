"""`dsrflow token`: the staff API tokens (create, list, revoke)."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated

import typer

from cli.common import command_group, fail, with_pool

token_app = command_group("Staff API tokens.")


class Role(StrEnum):
    agent = "agent"
    compliance = "compliance"
    admin = "admin"


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="agent, compliance or admin")],
    label: Annotated[str | None, typer.Option(help="who or what the token is for")] = None,
) -> None:
    """Create a staff token and print it alone on stdout (it is shown only this once)."""
    from dsrflow.stores.staff_tokens import issue_token

    try:
        _, token = asyncio.run(with_pool(lambda pool: issue_token(pool, role.value, label, actor="cli")))
    except ValueError as exc:  # a label the API would refuse too: nothing is issued
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)


@token_app.command("list")
def token_list(
    all_: Annotated[bool, typer.Option("--all", help="include revoked tokens")] = False,
) -> None:
    """Print one line per token: id, role, created, revoked, label. Never a token itself."""
    from dsrflow.stores.staff_tokens import list_tokens

    rows = asyncio.run(with_pool(lambda pool: list_tokens(pool, include_revoked=all_)))
    for row in rows:
        revoked = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "active"
        typer.echo(f"{row['id']}  {row['role']:<10}  created {row['created_at']:%Y-%m-%d %H:%M}  "
                   f"{revoked:<24}  {row['label'] or ''}".rstrip())


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="the token's id, from `dsrflow token list`")],
) -> None:
    """Revoke a token at once; console sessions signed in with it end too."""
    from dsrflow.stores.staff_tokens import revoke_token

    row = asyncio.run(with_pool(lambda pool: revoke_token(pool, token_id, actor="cli")))
    if row is None:
        fail(f"token-id: no staff token {token_id!r} (see `dsrflow token list --all`)", 2)
    typer.echo(f"revoked {row['id']} ({row['role']}) at {row['revoked_at']:%Y-%m-%d %H:%M:%S %Z}")
