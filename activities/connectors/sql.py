"""The `sql` connector: a PostgreSQL database whose tables the policy describes as datasets.

Everything about the database comes from the policy: which tables, how a row is found to be the
subject's (an identity column, or a parent dataset's row it points at), what each column is and
what erasure does to it. The code holds no table or column names.

Rules worth knowing:
- rows are the subject's when an identity column matches (e-mail case-insensitively, customer id;
  a name only in a dataset that has no e-mail / customer-id column), or when they point at the
  subject's rows of the `via` parent dataset, recursively;
- erasure runs in one transaction, children before parents. `delete` deletes; `anonymise` applies
  the field rules. A parent whose rows an anonymised child keeps pointing at (its link column is
  not erased to null) is anonymised instead of deleted, so no foreign key is broken;
- `hash` writes keyed_hash(secret, system, dataset, column, value); a value that already is such a
  digest (64 hex characters) is left alone, so running erasure again changes nothing
  (activities/connectors/sql_anonymise.py);
- the database schema is checked against the policy on first use: a missing table or column is a
  PermanentConnectorError naming system, dataset and column, and so is any data error;
  unreachable databases raise SqlSystemUnavailable, which retrying can fix
  (activities/connectors/sql_database.py).
Messages carry names and counts, never the subject's values.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import date
from functools import partial
from typing import Any

import asyncpg

from activities.connectors.base import (
    AccessRecord,
    ActionHook,
    ActionOutcome,
    Connector,
    ConnectorEnv,
    Erased,
    ErasedHook,
    ErasureContext,
    PartOpener,
    PermanentConnectorError,
    Subject,
    TaskStatus,
    left_as_kept,
)
from activities.connectors.sql_anonymise import Anonymiser
from activities.connectors.sql_database import (
    check_schema,
    mapped_errors,
    system_database_url,
)
from activities.connectors.sql_erasure import HoldAwareErasure, Row
from activities.connectors.sql_export import (
    CSV_ROWS,
    JSON_LINES,
    copy_together,
    export_queries,
    shared_snapshot,
)
from activities.connectors.sql_identities import check_identities
from activities.connectors.sql_queries import (
    Linked,
    Plan,
    category_groups,
    erased_rules,
    ident,
    linked_values,
    plain,
    select_fields,
    update_rows,
)
from policy.systems import Dataset, FieldRule, corrections_by_dataset


class SqlConnector(Connector):
    prefetch = 500  # rows per round trip of the access cursor: memory stays flat

    def __init__(self, env: ConnectorEnv) -> None:
        self.env = env
        self.name = env.system_name
        try:
            self.plan = Plan(env.system)
        except ValueError as exc:
            raise PermanentConnectorError(f"system {self.name!r}: {exc}") from None
        self._anonymiser = Anonymiser(env.secret, self.name, self.plan)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._types: dict[str, dict[str, str]] | None = None  # table -> column -> SQL type

    # Connection, schema check, errors ---------------------------------------------------------

    def _url(self) -> str:
        return system_database_url(self.name, self.env.system, self.env.settings)

    def _mapped(self, dataset: str | None = None) -> AbstractContextManager[None]:
        return mapped_errors(self.name, dataset)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        shared = self.env.connections
        with self._mapped():
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = (await shared.pool(self._url()) if shared is not None
                                  else await asyncpg.create_pool(self._url(), min_size=0, max_size=2))
            async with self._pool.acquire() as conn:
                if self._types is None:
                    check = partial(check_schema, conn, self.name, self.plan)
                    self._types = await (shared.schema(self._url(), self.env.system, check)
                                         if shared is not None else check())
                yield conn

    @asynccontextmanager
    async def _second_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of its own beside the pool's, for the export's second COPY. Waiting for a
        second one from the worker's shared pool while holding the first could deadlock: a few
        package builds at once would each hold one and wait for another."""
        with self._mapped():
            conn = await asyncpg.connect(self._url())
        try:
            yield conn
        finally:
            await conn.close()

    @asynccontextmanager
    async def _subject_connection(self, subject: Subject) -> AsyncIterator[asyncpg.Connection]:
        """A connection for acting on the subject's rows, once their identities agree on whose
        rows they are (activities/connectors/sql_identities.py)."""
        async with self._connection() as conn:
            with self._mapped():
                await check_identities(conn, self.name, self.plan.parents_first, subject)
            yield conn

    async def check_identities(self, subject: Subject) -> None:
        """PermanentConnectorError if the subject's identities disagree in this system."""
        async with self._subject_connection(subject):
            pass

    def _column_types(self, dataset: Dataset) -> Mapping[str, str]:
        assert self._types is not None
        return self._types[dataset.table]

    async def _update(self, conn: asyncpg.Connection, dataset: Dataset, subject: Subject,
                      values: Mapping[str, Any], leave: Sequence[str] = ()) -> dict[str, int]:
        sql, args = update_rows(self.plan, dataset, subject, values, self._column_types(dataset), leave)
        with self._mapped(dataset.name):
            row = await conn.fetchrow(sql, *args)
        return {"found": row["found"], "changed": row["changed"], **({"left": row["left"]} if row["left"] else {})}

    @staticmethod
    def _outcome(counts: dict[str, dict[str, int]], message: str | None = None) -> ActionOutcome:
        found = sum(c["found"] for c in counts.values())
        changed = sum(c["changed"] for c in counts.values())
        # Nothing to apply in this system is done; something to apply but no rows is not_found.
        # Rows a correction left as an earlier erasure kept them (`left`, counted apart from
        # `found`) exist: done, not "not found" (readers say they were not corrected). Counted
        # per dataset too, as the http connector counts them, and said in the message: the letter
        # names what was left uncorrected (activities/letter_outcome.py `_left`).
        left = sum(c.get("left", 0) for c in counts.values())
        if left:
            message = f"{message}; {left_as_kept(left)}" if message else left_as_kept(left)
        status: TaskStatus = "done" if found or left or not counts else "not_found"
        return ActionOutcome(status=status, found=found, changed=changed,
                             datasets=counts, message=message)

    # Actions --------------------------------------------------------------------------------

    async def access(self, subject: Subject) -> AsyncIterator[AccessRecord]:
        """Every row of the subject's, once per category its listed columns belong to. One read-
        only snapshot across datasets; a server-side cursor per dataset."""
        async with self._subject_connection(subject) as conn:
            with self._mapped():
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    for dataset in self.plan.parents_first:
                        groups = category_groups(dataset)
                        sql, args = select_fields(self.plan, dataset, subject,
                                                  subject.held.get(f"{self.name}.{dataset.name}"))
                        with self._mapped(dataset.name):
                            async for row in conn.cursor(sql, *args, prefetch=self.prefetch):
                                for category, origins in groups:
                                    yield AccessRecord(
                                        dataset=dataset.name, category=category, origin_of=origins,
                                        fields={c: plain(row[c]) for c in origins},
                                    )

    async def export(self, subject: Subject, part: PartOpener) -> bool:
        """What `access` reads, written by PostgreSQL: per (dataset, category) a COPY of the
        records as JSON lines and one as CSV rows, at once on two connections that share one
        snapshot (activities/connectors/sql_export.py)."""
        async with self._subject_connection(subject) as conn, self._second_connection() as csv_conn:
            with self._mapped():
                async with shared_snapshot(conn, csv_conn):
                    for dataset in self.plan.parents_first:
                        held = subject.held.get(f"{self.name}.{dataset.name}")
                        linked = await self._linked(conn, dataset, subject)
                        for category, origins in category_groups(dataset):
                            if (opened := part(dataset.name, category, origins)) is None:
                                continue
                            sink, columns = opened
                            json_sql, csv_sql, args = export_queries(
                                self.plan, dataset, subject, held, columns, self._column_types(dataset), linked)
                            with self._mapped(dataset.name):
                                await copy_together([(conn, json_sql, sink.json_lines, JSON_LINES),
                                                     (csv_conn, csv_sql, sink.csv_rows, CSV_ROWS)], args)
        return True

    async def _linked(self, conn: asyncpg.Connection, dataset: Dataset, subject: Subject) -> Linked | None:
        """For a dataset reached through its parent, the values pointing at the subject's rows
        there, read once for both COPYs of each of its categories (sql_queries.linked_values)."""
        if dataset.via is None:
            return None
        sql, args = linked_values(self.plan, dataset, subject)
        with self._mapped(dataset.name):
            values = [row[0] for row in await conn.fetch(sql, *args)]
        return values, self._column_types(dataset)[dataset.via.column]

    async def erase(self, subject: Subject, context: ErasureContext | None = None) -> ActionOutcome:
        """Erase the subject's rows, keeping (minimised, restricted) what a hold requires; one
        transaction, children before parents."""
        context = context or ErasureContext(today=date.today())
        run = HoldAwareErasure(self.plan, self.env.policy, context)
        counts: dict[str, dict[str, int]] = {}
        erased: dict[str, list[tuple[str, str]]] = {}
        async with self._subject_connection(subject) as conn:
            with self._mapped():
                async with conn.transaction():
                    found = await run.read(conn, self.plan.children_first, subject)
                    for dataset in self.plan.children_first:
                        with self._mapped(dataset.name):
                            counts[dataset.name], erased[dataset.name] = await self._erase_dataset(
                                conn, run, dataset, subject, found[dataset.name])
                    outcome = self._outcome(counts)
                    outcome.kept = sum(c["kept"] for c in counts.values())
                    outcome.erased = {d: keys for d, keys in erased.items() if keys}
                    outcome.held = run.held_records()
                    if context.before_commit is not None:
                        await context.before_commit(outcome)
        return outcome

    async def _erase_dataset(self, conn: asyncpg.Connection, run: HoldAwareErasure, dataset: Dataset,
                             subject: Subject, rows: list[Row]) -> tuple[dict[str, int], list[tuple[str, str]]]:
        held = run.decide(dataset, rows)
        free = [r["key"] for r in rows if r["key"] not in held]
        legal = any(kind == "legal_claims" for _, kind, _ in held.values())
        minimised = await run.minimise(conn, dataset, list(held), dict(self._column_types(dataset)), legal)
        counts = {"found": len(rows), "changed": minimised, "kept": len(held)}
        if self.plan.erasure[dataset.name] == "delete":
            gone = await run.delete(conn, dataset, free)
            counts.update(changed=minimised + len(gone), deleted=len(gone))
            return counts, [(key, "deleted") for key in gone]
        if held and free:
            raise PermanentConnectorError(
                f"system {self.name!r}, dataset {dataset.name!r}: some rows are held and the rest "
                f"would be anonymised; give the dataset `erasure: delete` or hold all of it")
        if held:
            return counts, []
        anonymised = await self._anonymiser.subject_rows(conn, dataset, subject, self._column_types(dataset),
                                                         self._update)
        counts.update(changed=anonymised["changed"], anonymised=anonymised["anonymised"])
        return counts, [(key, "anonymised") for key in free]

    async def erase_keys(self, keys: Mapping[str, Sequence[str]], *,
                         before_commit: ErasedHook | None = None) -> Erased:
        """Erase given records (a hold ended, or a restore brought them back): deleted, or
        anonymised by the dataset's rules. Records already gone are skipped. `before_commit`
        keeps the evidence while the transaction is still open."""
        erased: dict[str, list[tuple[str, str]]] = {}
        async with self._connection() as conn:
            with self._mapped():
                async with conn.transaction():
                    for dataset in self.plan.children_first:
                        wanted = list(keys.get(dataset.name, ()))
                        if not wanted:
                            continue
                        with self._mapped(dataset.name):
                            if self.plan.erasure[dataset.name] == "delete":
                                gone = await HoldAwareErasure.delete(conn, dataset, wanted)
                                erased[dataset.name] = [(k, "deleted") for k in gone]
                            else:
                                done = await self._anonymiser.by_key(conn, dataset, wanted, erased_rules(dataset),
                                                                     self._column_types(dataset))
                                erased[dataset.name] = [(k, "anonymised") for k in done]
                    if before_commit is not None:
                        await before_commit(erased)
        return erased

    async def unrestrict_keys(self, keys: Mapping[str, Sequence[str]]) -> int:
        """Lift the restriction an erasure's hold set on these records (HoldAwareErasure.minimise)
        once nothing keeps them so (activities/called_off_marks.py), in one transaction; the rows
        changed. Un-restricting a row that is not restricted changes nothing: a run again is idle."""
        changed = 0
        async with self._connection() as conn:
            with self._mapped():
                async with conn.transaction():
                    for dataset in self.plan.parents_first:
                        wanted = list(keys.get(dataset.name, ()))
                        if not wanted or not dataset.restricted_column:
                            continue
                        column = ident(dataset.restricted_column)
                        with self._mapped(dataset.name):
                            status = await conn.execute(
                                f"UPDATE {ident(dataset.table)} SET {column} = false "
                                f"WHERE {ident(dataset.key)}::text = ANY($1::text[]) AND {column}", wanted)
                        changed += int(status.split()[-1])
        return changed

    async def clear_fields(self, dataset: Dataset, keys: Sequence[str], rules: Mapping[str, FieldRule]) -> list[str]:
        """Apply these field rules (hash, null or a value) to the rows with these keys, in one
        transaction; the rows stay. Returns the keys of the rows found."""
        async with self._connection() as conn, conn.transaction():
            with self._mapped(dataset.name):
                return await self._anonymiser.by_key(conn, dataset, keys, rules, self._column_types(dataset))

    async def rectify(self, subject: Subject, corrections: dict[str, str], *,
                      before_commit: ActionHook | None = None) -> ActionOutcome:
        """A key sets the columns the request's policy declares `rectifiable` under that name or
        identity (policy/rectification.py), and only with a value each of them accepts: intake
        checked against the policy of its day, this checks against the request's own version.
        Keys matching nothing here are named in the message."""
        # Children first: parents still match the subject as before while their children change.
        plans, unknown = corrections_by_dataset(self.plan.children_first, corrections)
        message = f"no field in this system for: {', '.join(unknown)}" if unknown else None
        return await self._set_everywhere(subject, plans, message, before_commit, leave_held=True)

    async def _set_everywhere(self, subject: Subject, updates: dict[str, dict[str, Any]], message: str | None,
                              before_commit: ActionHook | None, *, leave_held: bool = False) -> ActionOutcome:
        """`leave_held`: rows kept under a hold since an erasure (`subject.held`) stay as the law
        keeps them; a correction, or a restriction's lift, changes the rows in use only."""
        counts: dict[str, dict[str, int]] = {}
        if not updates:
            return self._outcome(counts, message)
        async with self._subject_connection(subject) as conn:
            with self._mapped():
                async with conn.transaction():
                    for name, values in updates.items():
                        leave = subject.held.get(f"{self.name}.{name}", ()) if leave_held else ()
                        counts[name] = await self._update(conn, self.plan.datasets[name], subject, values, leave)
                    outcome = self._outcome(counts, message)
                    if before_commit is not None:
                        await before_commit(outcome)
        return outcome

    async def _restriction(self, subject: Subject, restricted: bool, before_commit: ActionHook | None) -> ActionOutcome:
        updates = {d.name: {d.restricted_column: restricted}
                   for d in self.plan.parents_first if d.restricted_column}
        missing = [d.name for d in self.plan.parents_first if not d.restricted_column]
        message = f"no restriction column in: {', '.join(missing)}" if missing else None
        # A lift leaves the rows a hold keeps since an erasure (`subject.held`): the hold marked them
        # restricted, and keeps them so until it ends. Before, lifting a restriction the subject had
        # asked for freed them too, the hold still in force.
        return await self._set_everywhere(subject, updates, message, before_commit, leave_held=not restricted)

    async def restrict(self, subject: Subject, *, before_commit: ActionHook | None = None) -> ActionOutcome:
        return await self._restriction(subject, True, before_commit)

    async def lift_restriction(self, subject: Subject, *,
                               before_commit: ActionHook | None = None) -> ActionOutcome:
        return await self._restriction(subject, False, before_commit)

    async def object(self, subject: Subject, scope: str, *,
                     before_commit: ActionHook | None = None) -> ActionOutcome:
        updates = {d.name: dict(columns) for d in self.plan.parents_first
                   for name, columns in d.objection_updates.items() if name == scope and columns}
        message = None if updates else f"no dataset in this system carries out objection scope {scope!r}"
        return await self._set_everywhere(subject, updates, message, before_commit)

    async def status(self, subject: Subject, external_id: str) -> ActionOutcome:
        return ActionOutcome(status="done")  # every action here completes synchronously

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            if self.env.connections is None:  # its own, not the worker's shared one
                await pool.close()

