"""What every `dsrflow` command shares: its settings (with logging configured), a one-line failure,
and a small pool on the app database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, NoReturn, TypeVar

import asyncpg
import typer

from dsrflow.settings import Settings, load_settings

_T = TypeVar("_T")


# How every command's help is read (`command_group`).
HELP_MARKUP: Final = "markdown"


def command_group(help: str) -> typer.Typer:
    """A group of commands (`dsrflow token`, `dsrflow audit`, ...). Help is read as Markdown so that
    a docstring's lines are joined into paragraphs: in Rich's mode, the list of a group's commands
    kept each docstring line break, cutting summaries mid-sentence."""
    return typer.Typer(no_args_is_help=True, rich_markup_mode=HELP_MARKUP, help=help)


def command_settings() -> Settings:
    from dsrflow.infra.logging import configure_logging

    settings = load_settings()
    configure_logging(environment=settings.environment, level=settings.log_level,
                      redact_patterns=settings.redact_patterns)
    return settings


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


async def refuse_a_new_secret(settings: Settings) -> None:
    """End the command when it would make a new hashing secret for a database that already holds
    requests hashed with another: `load_secret_key` creates `$DSRFLOW_HOME/secret` where it is
    missing, so a command run outside the checkout (DSRFLOW_HOME defaults to `./.dsrflow`) left a
    stray secret there, and `dsrflow migrate` then hashed every request's identities with it, so
    that staff no longer found a subject's requests. A database without requests is a first run:
    the secret is made as before."""
    from dsrflow.infra.db import connect

    home = settings.home.resolve()
    secret = home / "secret"  # where load_secret_key keeps it without DSRFLOW_SECRET_KEY
    if settings.secret_key is not None or secret.exists():
        return
    conn = await connect(settings.effective_database_url)
    try:
        stored = await conn.fetchval("SELECT to_regclass('dsr_requests') IS NOT NULL") and \
            await conn.fetchval("SELECT EXISTS (SELECT 1 FROM dsr_requests)")
    finally:
        await conn.close()
    if stored:
        fail(f"{secret} does not exist, yet the database holds requests hashed with a secret: "
             f"DSRFLOW_HOME={home} is not the stack's. Run this in the checkout where `make run` "
             f"runs, or export the DSRFLOW_HOME it was started with (DSRFLOW_SECRET_KEY, where it is set "
             f"that way); nothing was changed", 2)


async def with_pool(work: Callable[[asyncpg.Pool], Awaitable[_T]]) -> _T:
    """Run `work(pool)` against the app database with a one-connection pool."""
    from dsrflow.infra.db import create_pool

    pool = await create_pool(command_settings().effective_database_url, min_size=1, max_size=1)
    try:
        return await work(pool)
    finally:
        await pool.close()
