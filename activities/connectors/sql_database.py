"""A `sql` system's database: where it is, whether its schema has what the policy names, and how its
errors read to staff.

Errors are sorted the way a retry can use them: a configuration or data error (no such table,
column, database or user; a value the column refuses) is a PermanentConnectorError naming system,
dataset and constraint, never the subject's values; a database that cannot be reached right now is
SqlSystemUnavailable, which the activity's retry policy tries again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from activities.connectors import expand_env
from activities.connectors.base import PermanentConnectorError
from activities.connectors.sql_queries import SCHEMA_QUERY, TEXT_TYPES, Plan
from activities.errors import TRANSIENT_DB_ERRORS
from dsrflow.settings import Settings
from policy.systems import System

_CONFIGURATION = (
    asyncpg.exceptions.SyntaxOrAccessError,  # undefined table / column, privileges
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.InvalidAuthorizationSpecificationError,  # bad user or password
)


class SqlSystemUnavailable(ConnectionError):
    """The database cannot be reached right now; the activity's retry policy should try again."""


def system_database_url(name: str, system: System, settings: Settings) -> str:
    """Where a sql system's database is: `config.url`, or `config.database` on the app's server."""
    try:
        config = expand_env(system.config)
    except KeyError as exc:
        raise PermanentConnectorError(f"system {name!r}: config: {exc.args[0]}") from None
    if config.get("url"):
        return str(config["url"])
    if not config.get("database"):
        raise PermanentConnectorError(f"system {name!r}: config needs `database` or `url`")
    base = urlsplit(settings.effective_database_url)
    return urlunsplit(base._replace(path="/" + quote(str(config["database"]))))


@contextmanager
def mapped_errors(system: str, dataset: str | None = None) -> Iterator[None]:
    """Raise what the block's database raised as one of the two errors above."""
    where = f"system {system!r}" + (f", dataset {dataset!r}" if dataset else "")
    try:
        yield
    except (PermanentConnectorError, SqlSystemUnavailable):
        raise
    except _CONFIGURATION as exc:
        raise PermanentConnectorError(f"{where}: {exc}") from None
    except asyncpg.DataError as exc:
        # The server's message may quote a value (a correction, an e-mail): name the kind only.
        raise PermanentConnectorError(f"{where}: {type(exc).__name__} (SQLSTATE {exc.sqlstate})") from None
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise PermanentConnectorError(
            f"{where}: {type(exc).__name__} on constraint {exc.constraint_name!r}"
        ) from None
    except TRANSIENT_DB_ERRORS as exc:
        raise SqlSystemUnavailable(f"{where}: database unavailable ({type(exc).__name__})") from None


async def check_schema(conn: asyncpg.Connection, system: str, plan: Plan) -> dict[str, dict[str, str]]:
    """The SQL type of every column the policy's datasets use (table -> column -> type); a table
    or column that does not exist, or a `hash` rule on a column that is not text, is a
    PermanentConnectorError naming it."""
    used = [(d, plan.columns_used(d)) for d in plan.parents_first]
    tables = sorted({table for _, by_table in used for table in by_table})
    types: dict[str, dict[str, str]] = defaultdict(dict)
    for row in await conn.fetch(SCHEMA_QUERY, tables):
        types[row["table"]][row["column"]] = row["type"]
    for dataset, by_table in used:
        where = f"system {system!r}, dataset {dataset.name!r}"
        for table, columns in by_table.items():
            if table not in types:
                raise PermanentConnectorError(f"{where}: table {table!r} does not exist")
            for column in sorted(columns - types[table].keys()):
                raise PermanentConnectorError(f"{where}: column {column!r} does not exist in table {table!r}")
        for column, rule in dataset.fields.items():
            if rule.erase == "hash" and types[dataset.table][column].split("(")[0] not in TEXT_TYPES:
                raise PermanentConnectorError(f"{where}: column {column!r}: erase: hash needs a text column")
    return dict(types)
