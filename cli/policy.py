"""`dsrflow policy`: draft a `sql` system from a controller's database, and check the policy's
`sql` systems against theirs (docs/policy-draft.md)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import asyncpg
import typer

from cli.common import command_group, command_settings, fail

policy_app = command_group("The policy: draft a sql system from a database, check it.")


@policy_app.command("draft")
def policy_draft(
    database_url: Annotated[str, typer.Option("--database-url", help="postgresql://user:pass@host:port/db")],
    system: Annotated[str, typer.Option("--system", help="the system's name in the policy, e.g. crm")],
    schema: Annotated[str, typer.Option("--schema", help="the schema whose tables to draft")] = "public",
    output: Annotated[str | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None,
) -> None:
    """Introspect a PostgreSQL database and print a `sql` system for the policy, every guess
    marked `# review:` (docs/policy-draft.md). Sampled values are never printed."""
    from urllib.parse import unquote, urlsplit

    from activities.connectors.sql_draft import DraftError, draft_system
    from policy.model import PolicyError, load_policy
    from policy.strict import IDENT

    # The policy's rule for a system's name: a draft under another name did not load once pasted.
    if not re.fullmatch(IDENT, system):
        fail(f"--system: a system's name in the policy is lower-case letters, digits and _ (got {system!r})", 2)
    settings = command_settings()
    database = unquote(urlsplit(database_url).path.lstrip("/"))
    if not database:
        fail("--database-url: name the database, e.g. postgresql://user@host:5432/crm", 2)
    try:
        categories: list[str] | None = list(load_policy(settings.policy_path).policy.categories)
    except PolicyError:
        categories = None  # no policy in force to compare with: the default names are suggested

    async def run() -> str:
        try:
            conn = await asyncpg.connect(database_url, timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            fail(f"cannot connect to --database-url ({type(exc).__name__}: {exc})")
        try:
            async with conn.transaction(readonly=True):
                return await draft_system(conn, system, schema=schema, database=database, categories=categories)
        finally:
            await conn.close()

    try:
        text = asyncio.run(run())
    except DraftError as exc:
        fail(str(exc))
    if output:
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:  # a directory that does not exist, one we may not write to, ...
            fail(f"--output: cannot write {output}: {exc.strerror or exc}", 2)
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text, nl=False)


@policy_app.command("check")
def policy_check() -> None:
    """Check every `sql` system of the policy in force against its database: tables, columns and
    their types, and that an identity leads to every dataset. Names each problem; exit 1 if any."""
    from activities.connectors.sql_check import check_policy
    from policy.model import PolicyError, load_policy

    settings = command_settings()
    try:
        policy = load_policy(settings.policy_path).policy
    except PolicyError as exc:
        fail(f"the policy does not load: {exc}")
    checked, problems = asyncio.run(check_policy(policy, settings))
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        fail(f"{len(problems)} problem(s) in {len(checked)} sql system(s)")
    typer.echo(f"ok: {len(checked)} sql system(s) match their databases ({', '.join(checked)})")
