"""`dsrflow token`: the staff API tokens (create, list, revoke)."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated

import typer

from cli.common import command_group, command_settings, fail, with_pool

token_app = command_group("Staff API tokens.")


class Role(StrEnum):
    agent = "agent"
    compliance = "compliance"
    admin = "admin"


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="agent, compliance or admin")],
    label: Annotated[str | None, typer.Option(help="who or what the token is for")] = None,
    expires_in: Annotated[str | None, typer.Option(
        "--expires-in", help="how long it works: 90d, 12h or 2w (default DSRFLOW_TOKEN_DAYS, 90 days)")] = None,
) -> None:
    """Create a staff token and print it alone on stdout (it is shown only this once). It stops
    working when it expires: issue its holder another before then."""
    from datetime import timedelta

    from dsrflow.stores.staff_tokens import issue_token, parse_lifetime

    try:
        lifetime = parse_lifetime(expires_in) if expires_in is not None else None
    except ValueError as exc:
        fail(f"--expires-in: {exc}", 2)
    lifetime = lifetime or timedelta(days=command_settings().token_days)
    try:
        _, token = asyncio.run(with_pool(lambda pool: issue_token(pool, role.value, label, actor="cli",
                                                                  lifetime=lifetime)))
    except ValueError as exc:  # a label the API would refuse too: nothing is issued
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)


@token_app.command("list")
def token_list(
    all_: Annotated[bool, typer.Option("--all", help="include revoked tokens")] = False,
) -> None:
    """Print one line per token: id, role, created, the first 8 characters of the id of the token
    that created it (`by -`: at the server, or not recorded), state (active, expires soon,
    expired, revoked), expiry, label. Never a token itself. A token issued before tokens expired
    says `expires never!`: replace it."""
    from dsrflow.stores.staff_tokens import list_tokens, token_state

    rows = asyncio.run(with_pool(lambda pool: list_tokens(pool, include_revoked=all_)))
    for row in rows:
        state = token_state(row)
        revoked = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if state == "revoked" else state
        expires = f"expires {row['expires_at']:%Y-%m-%d %H:%M}" if row["expires_at"] else "expires never!"
        by = (row["created_by"] or "-")[:8]
        typer.echo(f"{row['id']}  {row['role']:<10}  created {row['created_at']:%Y-%m-%d %H:%M}  by {by:<8}  "
                   f"{revoked:<24}  {expires:<24}  {row['label'] or ''}".rstrip())


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="the token's id, from `dsrflow token list`")],
    with_descendants: Annotated[bool, typer.Option(
        "--with-descendants", help="revoke every token it created (they created, and so on) with it")] = False,
) -> None:
    """Revoke a token at once; console sessions signed in with it end too. With
    --with-descendants, the tokens it created go too (one line each), in one transaction: a stolen
    token's offspring. At the server any token is revoked, the last admin's too."""
    from dsrflow.stores.staff_tokens import revoke_token

    row = asyncio.run(with_pool(lambda pool: revoke_token(pool, token_id, actor="cli",
                                                          with_descendants=with_descendants)))
    if row is None:
        fail(f"token-id: no staff token {token_id!r} (see `dsrflow token list --all`)", 2)
    for revoked in [row, *row["descendants_revoked"]]:
        typer.echo(f"revoked {revoked['id']} ({revoked['role']}) at {revoked['revoked_at']:%Y-%m-%d %H:%M:%S %Z}")
