"""`dsrflow` command line: run the stack and its parts, and the operator's tools.

Every command reads the one settings object; a bad variable ends the command with one line naming
it and exit code 2. The process ends with `os._exit` after flushing, because short-lived Temporal
SDK processes can crash at interpreter exit (sdk-python issue 300).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import sys
from datetime import date
from typing import Annotated

import asyncpg
import typer

from cli.audit import audit_app
from cli.common import HELP_MARKUP, command_group, command_settings, fail, refuse_a_new_secret, with_pool
from cli.letters import letters_app
from cli.policy import policy_app
from cli.requests import requests_app
from cli.tokens import token_app
from dsrflow.infra.production import refuse_unsafe_production
from dsrflow.settings import SettingsError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=HELP_MARKUP, help="dsrflow: data-subject requests, on time, with evidence.")
erasure_app = command_group("The erasure ledger.")
retention_app = command_group("The policy's retention periods.")
packages_app = command_group("Access and portability packages and processors' uploads in the package storage.")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.add_typer(erasure_app, name="erasure")
app.add_typer(retention_app, name="retention")
app.add_typer(packages_app, name="packages")
app.add_typer(policy_app, name="policy")
app.add_typer(requests_app, name="requests")
app.add_typer(letters_app, name="letters")


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"dsrflow {version('dsrflow')}")
        raise typer.Exit()


# The worker's and the API's start-up imports modules that live as long as the process: the
# collector's passes over them meanwhile free nothing, and cost each of the two 0.13-0.2 s of CPU,
# 12-18 % of its imports (measured with gc.callbacks). So no collection runs from `main` until a
# command has started: the worker and the API collect again once their modules are imported
# (`worker`, `api`), every other command from the moment it is chosen (`_options`). What the
# imports built is frozen first: turned on over it, the collector walked all of it again while
# the app or the worker was built (CPU of `dsrflow api` until it served: 1.02-1.12 s against
# 1.29-1.48 s; of `dsrflow worker` until it worked: 0.70-0.77 s against 0.78-0.81 s).
LONG_STARTS = ("api", "worker")


@app.callback()
def _options(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print dsrflow's version and exit.")] = False,
) -> None:
    # The option acts in its callback; the app's help is the Typer's.
    if ctx.invoked_subcommand not in LONG_STARTS:
        gc.freeze()  # what `main` imported, as the worker and the API do (LONG_STARTS)
        gc.enable()  # off since `main`


@app.command()
def up(
    demo_saas: Annotated[bool, typer.Option(
        "--demo-saas", help="also run the Stripe, HubSpot, Mailchimp and GA4 stand-ins and add them "
                            "to the policy as http systems")] = False,
) -> None:
    """Start the whole stack (embedded PostgreSQL, Temporal, SMTP sink unless configured), the
    worker and the API. Ctrl-C stops everything."""
    from cli.environment_names import refuse_unread_variables
    from devstack.stack import run_up

    settings = command_settings()
    # Here too, not only in the worker and the API it starts: their warnings go to their logs, so a
    # misspelt port variable in front of `make run` was said nowhere the user looks.
    refuse_unread_variables(settings)
    if demo_saas:
        settings = settings.model_copy(update={"demo_saas": True})
    raise typer.Exit(asyncio.run(run_up(settings)))


@app.command()
def api() -> None:
    """Run the HTTP API (REST, portal, codec endpoint)."""
    import uvicorn

    from api.app import create_app
    from cli.environment_names import refuse_unread_variables
    from dsrflow.infra.event_loop import uvicorn_loop
    from dsrflow.infra.tracing import setup_tracing, shutdown_tracing

    gc.freeze()  # what the imports built, before the collector is on again (LONG_STARTS)
    gc.enable()  # off since `main`, for the imports
    settings = command_settings()
    refuse_unsafe_production(settings)
    loaded = refuse_unread_variables(settings)
    setup_tracing(settings, "dsrflow-api")  # before the app: it instruments it (docs/observability.md)
    application = create_app(settings, policy=loaded)
    # What start-up built (modules, routes, pydantic's validators, the policy) lives as long as the
    # process: frozen out of the collector's generations, as the worker's is (workers/dsr_worker.py).
    gc.freeze()
    try:
        uvicorn.run(application, host=settings.api_host, port=settings.api_port,
                    loop=uvicorn_loop(settings), log_config=None, access_log=False)
    finally:
        shutdown_tracing()  # main() ends with os._exit: the exporter's own exit hook never runs


@app.command()
def worker() -> None:
    """Run the Temporal worker for request workflows."""
    from cli.environment_names import refuse_unread_variables
    from dsrflow.infra import event_loop
    from dsrflow.infra.tracing import setup_tracing, shutdown_tracing
    from workers.dsr_worker import run_worker

    gc.freeze()  # what the imports built, before the collector is on again (LONG_STARTS)
    gc.enable()  # off since `main`, for the imports
    settings = command_settings()
    refuse_unsafe_production(settings)
    loaded = refuse_unread_variables(settings)
    setup_tracing(settings, "dsrflow-worker")
    try:
        event_loop.run(settings, run_worker(settings, loaded))
    finally:
        shutdown_tracing()


@app.command()
def migrate() -> None:
    """Apply pending database migrations, then hash the identities of requests stored without
    their search hashes (or under another DSRFLOW_SECRET_KEY)."""
    from dsrflow.crypto.keys import load_secret_key
    from dsrflow.infra.migrate import migrate as apply
    from dsrflow.stores.request_lookup import backfill_database

    settings = command_settings()
    asyncio.run(refuse_a_new_secret(settings))
    applied = asyncio.run(apply(settings.effective_database_url))
    typer.echo(f"applied {', '.join(applied)}" if applied else "database is up to date")
    hashed = asyncio.run(backfill_database(settings.effective_database_url, load_secret_key(settings)))
    if hashed:
        typer.echo(f"hashed the identities of {hashed} requests for search")


@app.command()
def deadline(
    regime: Annotated[str, typer.Option(help="gdpr, uk_gdpr, ccpa, vcdpa, ctdpa, cpa, lgpd, pipeda")],
    received: Annotated[str, typer.Option(help="date of receipt, YYYY-MM-DD")],
    country: Annotated[str | None, typer.Option(
        help="GDPR: the member state where the controller is established, whose holidays count"
             " (default: the policy's defaults.country); never the subject's country")] = None,
    verified: Annotated[str | None, typer.Option(help="date identity was verified, YYYY-MM-DD")] = None,
    appeal: Annotated[bool, typer.Option(
        help="the deadlines of an appeal of a refused request (vcdpa, ctdpa, cpa)")] = False,
) -> None:
    """Print the statutory deadlines of a request as JSON, as the service computes them: under the
    GDPR in the calendar of the policy's country unless `--country` names another."""
    from dsrflow.domain.deadlines import DeadlineError, compute_deadline, country_of_law
    from policy.model import PolicyError, load_policy

    def parse(name: str, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            fail(f"--{name}: expected a date as YYYY-MM-DD, got {value!r}", 2)

    try:
        policy = load_policy(command_settings().policy_path).policy
    except PolicyError as exc:
        fail(f"the policy does not load: {exc}")
    try:
        # The calendar the service counts in (country_of_law), not Belgium's whatever the policy says.
        country = country or country_of_law(regime, policy.defaults.country)
        result = compute_deadline(regime, parse("received", received), country,
                                  parse("verified", verified) if verified is not None else None, appeal=appeal)
    except DeadlineError as exc:
        # The domain names its parameter (`regime: unknown 'xx'`); an operator typed the option.
        field = str(exc).partition(":")[0]
        fail(f"--{exc}" if field in ("regime", "country") else str(exc), 2)
    typer.echo(json.dumps(result.as_json_dict(), indent=2))


@erasure_app.command("replay")
def erasure_replay(
    since: Annotated[str, typer.Option(help="re-erase what was erased on or after YYYY-MM-DD")],
) -> None:
    """After restoring a backup: erase again every record the ledger says was erased since the
    date and that the restore brought back. Prints what was re-erased per system; a system that
    could not be reached is named, the others still run, and the exit code is 1."""
    from activities.erasure_replay import Replayed, replay_erasures
    from dsrflow.infra.db import create_pool
    from workers.dsr_worker import activity_context

    try:
        day = date.fromisoformat(since)
    except ValueError:
        fail(f"--since: expected a date as YYYY-MM-DD, got {since!r}", 2)

    async def run() -> Replayed:
        settings = command_settings()
        await refuse_a_new_secret(settings)
        pool = await create_pool(settings.effective_database_url, min_size=1, max_size=2)
        try:
            return await replay_erasures(activity_context(settings, pool), day)
        finally:
            await pool.close()

    replayed = asyncio.run(run())
    total = sum(replayed.again.values())
    detail = ", ".join(f"{system}: {n}" for system, n in sorted(replayed.again.items()) if n)
    typer.echo(f"re-erased {total} record(s)" + (f" ({detail})" if detail else ""))
    for system, why in sorted(replayed.failed.items()):
        typer.echo(f"not re-erased in {system}: {why}; run the replay again once it is fixed", err=True)
    if replayed.failed:
        raise typer.Exit(1)


@retention_app.command("plan")
def retention_plan(
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="judge as of the start of YYYY-MM-DD (controller's timezone); default now")] = None,
) -> None:
    """Print, per retention rule, what the daily retention sweep would erase (counts per system
    and dataset, never an address). Changes nothing."""
    from datetime import UTC, datetime, time
    from zoneinfo import ZoneInfo

    from activities.retention_plan import current_policy, describe, plan_retention
    from dsrflow.infra.db import create_pool
    from workers.dsr_worker import activity_context

    day = None
    if as_of is not None:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            fail(f"--as-of: expected a date as YYYY-MM-DD, got {as_of!r}", 2)

    async def run() -> str:
        settings = command_settings()
        await refuse_a_new_secret(settings)
        pool = await create_pool(settings.effective_database_url, min_size=1, max_size=2)
        try:
            ctx = activity_context(settings, pool)
            loaded = current_policy(ctx)
            moment = (datetime.combine(day, time.min, tzinfo=ZoneInfo(loaded.policy.defaults.timezone))
                      if day else datetime.now(UTC))
            return describe(await plan_retention(ctx, loaded, moment), moment, loaded)
        finally:
            await pool.close()

    from activities.connectors.base import PermanentConnectorError
    from activities.connectors.sql_database import SqlSystemUnavailable
    from policy.model import PolicyError

    try:
        text = asyncio.run(run())
    except (PolicyError, PermanentConnectorError, SqlSystemUnavailable) as exc:
        fail(str(exc))
    typer.echo(text)


@packages_app.command("purge")
def packages_purge(
    yes: Annotated[bool, typer.Option("--yes", help="delete them; without it, only count")] = False,
) -> None:
    """Delete the package files whose download link has expired or whose request closed a week ago
    without sending them, and stored objects no record names (a day old), as the hourly
    `dsrflow-package-purge` schedule does. Without --yes, only says how many it would delete."""
    from datetime import UTC, datetime

    from dsrflow.infra.storage import open_storage
    from dsrflow.stores.kept_copies import purge_expired

    store = open_storage(command_settings())
    report = asyncio.run(with_pool(lambda pool: purge_expired(pool, store, datetime.now(UTC), dry_run=not yes,
                                                               actor="cli")))
    typer.echo(report.describe(done=yes) + ("" if yes else "; run with --yes to delete them"))



def main() -> None:
    code: int | str | None = 0
    gc.disable()
    try:
        app()
    except SystemExit as exc:
        code = exc.code
        if isinstance(code, str):  # SystemExit("error: ..."): said, as the interpreter would say it
            print(code, file=sys.stderr)
            code = 1
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except (ConnectionError, socket.gaierror, asyncpg.PostgresConnectionError, asyncpg.InvalidCatalogNameError,
            asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        # Most often the database is not running: say so in one line, not a traceback.
        print(f"error: cannot reach the database (DSRFLOW_DATABASE_URL, or start it with "
              f"`dsrflow up`): {exc}", file=sys.stderr)
        code = 2
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
        # A database this version's migrations have not reached (or another one than dsrflow's):
        # every command read a missing table and printed the driver's traceback.
        print(f"error: the database lacks a table or column this command reads ({exc}): if "
              f"DSRFLOW_DATABASE_URL names dsrflow's database, run `dsrflow migrate` first", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
