"""Erasure in a sql system, record by record, under legal holds (Art. 17(3)).

For every dataset, children first, each of the subject's rows is either erased (deleted or
anonymised as the policy says), or held:
- a legal-claims hold placed by compliance keeps the rows of the categories it covers as they
  are, restricted, until it is released;
- a statutory hold keeps a record until 31 December of its document's year + the years the
  statute sets for documents of that year; the record is minimised to the fields the obligation needs (`held: true`) and
  restricted;
- a parent row that a held child still points at is held (minimised) as long as the child is.
Held records are returned so the activity can schedule their erasure for when the hold ends.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg

from activities.connectors.base import ErasureContext, HeldRecord, LegalClaimsHold, Subject
from activities.connectors.sql_queries import Plan, Query, ident, match
from policy.keeping import StatutoryHold
from policy.model import Policy
from policy.systems import Dataset

Row = dict[str, Any]  # a row an erasure decides on: key, and doc_date and parent_key where they apply


def retention_end(document_date: date, statute: StatutoryHold) -> date:
    """Kept until 31 December of the document's year + the years that apply to a document of
    that year: the period runs from 1 January after it (VAT Code Art. 60 §4, CIR 92 Art. 315),
    and the Law of 20 November 2022 lengthened it for documents of 2023 onwards only."""
    return date(document_date.year + statute.years_for(document_date.year), 12, 31)


def _categories(dataset: Dataset) -> set[str]:
    return {rule.category for rule in dataset.fields.values()}


def _covering(holds: tuple[LegalClaimsHold, ...], dataset: Dataset) -> LegalClaimsHold | None:
    for hold in holds:
        if hold.categories is None or set(hold.categories) & _categories(dataset):
            return hold
    return None


class HoldAwareErasure:
    """One erasure of one subject in one sql system, inside the caller's transaction."""

    def __init__(self, plan: Plan, policy: Policy, context: ErasureContext) -> None:
        self.plan = plan
        self.policy = policy
        self.context = context
        # dataset -> key -> (until, hold kind, hold ref) for rows kept in this run
        self.held: dict[str, dict[str, tuple[date | None, str, str]]] = defaultdict(dict)
        # dataset -> key -> the parent key its `via` column points at
        self.parents: dict[str, dict[str, str]] = defaultdict(dict)

    async def read(self, conn: asyncpg.Connection, datasets: Sequence[Dataset],
                   subject: Subject) -> dict[str, list[Row]]:
        """The subject's rows of every dataset, in one statement: what an erasure decides on.
        Reading a child's rows before its parent's are erased finds what reading it in its turn
        would (children are erased first; a child is found through its parent's identities)."""
        q = Query()
        columns = [self._row_columns(dataset, subject, q) for dataset in datasets]
        row = await conn.fetchrow("SELECT " + ", ".join(sql for sql, _ in columns), *q.args)
        return {dataset.name: [record for found in row[n]
                               if self.context.allows(dataset.name, (record := dict(zip(names, found, strict=True)))["key"])]
                for n, (dataset, (_, names)) in enumerate(zip(datasets, columns, strict=True))}

    def _row_columns(self, dataset: Dataset, subject: Subject, q: Query) -> tuple[str, list[str]]:
        """An array of the dataset's rows of the subject, each its key, its document date where a
        statute keeps it, and the parent key it points at; and those fields' names."""
        alias = q.alias()
        where = match(self.plan, dataset, subject, q, alias)
        fields, names = [f"{alias}.{ident(dataset.key)}::text"], ["key"]
        if dataset.hold and dataset.hold.date_column:
            # The latest of the columns that is set (GREATEST skips NULLs).
            fields.append(f"GREATEST({', '.join(f'{alias}.{ident(c)}' for c in dataset.hold.date_column)})")
            names.append("doc_date")
        if dataset.via:
            fields.append(f"{alias}.{ident(dataset.via.column)}::text")
            names.append("parent_key")
        return (f"ARRAY(SELECT ROW({', '.join(fields)}) FROM {ident(dataset.table)} AS {alias} "
                f"WHERE {where})"), names

    def decide(self, dataset: Dataset, rows: list[Row]) -> dict[str, tuple[date | None, str, str]]:
        """Which of these rows are held, until when and why."""
        for row in rows:
            if dataset.via and row["parent_key"] is not None:
                self.parents[dataset.name][row["key"]] = row["parent_key"]
        legal = _covering(self.context.legal_holds, dataset)
        if legal is not None:
            self.held[dataset.name] = {row["key"]: (None, "legal_claims", legal.id) for row in rows}
            return self.held[dataset.name]
        held: dict[str, tuple[date | None, str, str]] = {}
        hold = dataset.hold
        if hold and hold.date_column:
            statute = self.policy.statutory_holds[hold.statute]
            for row in rows:
                if row["doc_date"] is not None:
                    until = retention_end(row["doc_date"], statute)
                    if until >= self.context.today:
                        held[row["key"]] = (until, "statutory", hold.statute)
        # Rows that a held child row still refers to stay as long as the child does.
        for child in self.plan.children[dataset.name]:
            for child_key, (child_until, kind, ref) in self.held[child.name].items():
                parent_key = self.parents[child.name].get(child_key)
                if parent_key is None or parent_key not in {r["key"] for r in rows}:
                    continue
                current = held.get(parent_key)
                if current is None or (current[0] is not None and (child_until is None or child_until > current[0])):
                    held[parent_key] = (child_until, kind, ref)
        self.held[dataset.name] = held
        return held

    async def minimise(self, conn: asyncpg.Connection, dataset: Dataset, keys: list[str],
                       types: dict[str, str], legal: bool) -> int:
        """Held rows: restricted; under a statute, every field the obligation does not need is
        cleared (legal-claims holds keep the evidence as it is)."""
        if not keys:
            return 0
        q = Query()
        assignments = []
        if not legal:
            for column, rule in dataset.fields.items():
                if rule.held or rule.erase == "keep":
                    continue
                value = rule.value if rule.erase == "fixed" else None
                assignments.append(f"{ident(column)} = " + ("NULL" if value is None else q.value(value, types[column])))
        if dataset.restricted_column:
            assignments.append(f"{ident(dataset.restricted_column)} = true")
        if not assignments:
            return 0
        sql = (f"UPDATE {ident(dataset.table)} SET {', '.join(assignments)} "
               f"WHERE {ident(dataset.key)}::text = ANY({q.arg(keys)}::text[])")
        status = await conn.execute(sql, *q.args)
        return int(status.split()[-1])

    @staticmethod
    async def delete(conn: asyncpg.Connection, dataset: Dataset, keys: list[str]) -> list[str]:
        if not keys:
            return []
        rows = await conn.fetch(
            f"DELETE FROM {ident(dataset.table)} WHERE {ident(dataset.key)}::text = ANY($1::text[]) "
            f"RETURNING {ident(dataset.key)}::text AS key", keys)
        return [r["key"] for r in rows]

    def held_records(self) -> list[HeldRecord]:
        return [
            HeldRecord(dataset=dataset, key=key, hold_kind=kind, hold_ref=ref, until=until)
            for dataset, rows in self.held.items()
            for key, (until, kind, ref) in rows.items()
        ]


def kept_summary(policy: Policy, system: str, held: list[HeldRecord],
                 legal_holds: dict[str, Any]) -> list[dict[str, Any]]:
    """Per dataset, hold and end date: how many records were kept, under what, until when (no
    keys). A statute's records are grouped by their own end date, so the letter says when each
    goes (a 2022 invoice years before a 2023 one), not only when the last one does."""
    groups: dict[tuple[str, str, str, str], list[HeldRecord]] = defaultdict(list)
    for record in held:
        ends = record.until.isoformat() if record.hold_kind == "statutory" and record.until else ""
        groups[(record.dataset, record.hold_kind, record.hold_ref, ends)].append(record)
    summary = []
    for (dataset, kind, ref, _), records in sorted(groups.items()):
        if kind == "statutory":
            statute = policy.statutory_holds[ref]
            basis, law = statute.basis, statute.law
            until = max((r.until for r in records if r.until), default=None)
        else:
            hold = legal_holds.get(ref, {})
            basis = hold.get("basis", "Art. 17(3)(e) GDPR")
            law = "a legal claim (establishment, exercise or defence of legal claims)"
            until = hold.get("review_date")
        # `until`: a statute's end date; a legal-claims hold's review date (it has no end date:
        # it ends with its release, which `hold_ref`, the hold's id, lets a reader look up).
        summary.append({"system": system, "dataset": dataset, "records": len(records),
                        "hold_kind": kind, "hold_ref": ref, "basis": basis, "law": law,
                        "until": until.isoformat() if until else None})
    return summary
