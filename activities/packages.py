"""Access and portability packages: a zip with JSON and CSV per system and category, plus an HTML
summary with the Art. 15 information, streamed encrypted into the package storage
(dsrflow/infra/storage.py: `$DSRFLOW_HOME/packages` or a bucket). Records pass through small
spools, so memory does not grow with the subject's data."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import IO, Any

import asyncpg
from temporalio import activity

from activities.connectors.base import AccessRecord, ClosedMeanwhile, PartOpener, PermanentConnectorError, Subject
from activities.context import ActivityContext
from activities.fanout import open_connector, subject_of
from activities.heartbeat import heartbeating
from activities.letters import deliver_letter
from activities.package_streams import LEVEL, SPOOL_IN_MEMORY, CopiedPart, csv_header
from activities.package_summary import part_files, render_summary
from activities.processor_exports import (
    ProcessorFiles,
    listed_files,
    missing_reasons,
    processor_files,
    write_processor_files,
)
from activities.task_results import store_task_result
from dsrflow.crypto.filecrypt import EncryptedWriter
from dsrflow.crypto.hashing import subject_hash
from dsrflow.crypto.package_files import package_key, package_writer
from dsrflow.domain.audit import append_event
from dsrflow.i18n import translations
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.metrics import package_built
from dsrflow.infra.storage import BlobStore
from dsrflow.stores.deferred_store import kept_records
from dsrflow.stores.requests_store import get_request
from policy.disclosure import PORTABLE_ORIGINS, Origin
from policy.model import Policy
from schemas.plain_text import csv_cell
from schemas.workflow import LetterJob, PackageInfo, Plan, TaskResult


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return str(value)


def _csv_value(value: Any) -> Any:
    """A field as its CSV cell: what the JSON file says, nested values as JSON text, and text a
    spreadsheet would run as a formula neutralised (schemas/plain_text.py; the JSON keeps it)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_json_default)
    return csv_cell(value if isinstance(value, str) else _json_default(value))


def _spool_file() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)


@dataclass
class _Spool:
    """The records of one (system, dataset, category) until they go in the zip: each already as
    its JSON text and CSV row, so the zip only copies bytes. Rows are written to CSV with the
    columns seen so far; only when a later record brings a new column is the CSV rebuilt."""

    system: str
    dataset: str
    category: str
    file: IO[bytes] = field(default_factory=_spool_file)  # JSON, one record a line
    csv_file: IO[bytes] = field(default_factory=_spool_file)
    columns: list[str] = field(default_factory=list)
    origin_of: dict[str, Origin] = field(default_factory=dict)  # column -> origin, for the summary
    count: int = 0
    _csv: Any = None
    _csv_text: Any = None
    _csv_stale: bool = False

    def add(self, fields: dict[str, Any], origin_of: Mapping[str, Origin]) -> None:
        for column in fields:
            if column not in self.columns:
                self.origin_of[column] = origin_of[column]
                self.columns.append(column)
                self._csv_stale = self._csv_stale or self.count > 0
        self.file.write(json.dumps(fields, default=_json_default, ensure_ascii=False).encode() + b"\n")
        if not self._csv_stale:
            if self._csv is None:
                self._csv_text = io.TextIOWrapper(self.csv_file, encoding="utf-8", newline="")
                self._csv = csv.writer(self._csv_text)
            self._csv.writerow([_csv_value(fields.get(c)) for c in self.columns])
        self.count += 1

    def json_records(self) -> Iterator[bytes]:
        self.file.seek(0)
        for line in self.file:
            yield line.rstrip(b"\n")

    def write_into(self, archive: zipfile.ZipFile, json_name: str, csv_name: str) -> None:
        _write_json(archive, json_name, self)
        _write_csv(archive, csv_name, self)

    def close(self) -> None:
        if self._csv_text is not None:
            self._csv_text.detach()
        self.csv_file.close()
        self.file.close()


# What a package holds per (system, dataset, category): records spooled one by one, or the files
# a connector's `export` streamed in (activities/package_streams.py).
Part = _Spool | CopiedPart
Parts = dict[tuple[str, str, str], Part]


def _write_json(archive: zipfile.ZipFile, name: str, spool: _Spool) -> None:
    """The spooled lines as one JSON array, a record a line: each line's newline becomes ",\n"
    block by block, and the last one's comma is dropped."""
    spool.file.seek(0)
    with archive.open(name, "w") as out:
        out.write(b"[\n")
        pending = b""
        while block := spool.file.read(SPOOL_IN_MEMORY):
            out.write(pending)
            pending = block.replace(b"\n", b",\n")
        out.write(pending[:-2] + b"\n]\n")


def _write_csv(archive: zipfile.ZipFile, name: str, spool: _Spool) -> None:
    with archive.open(name, "w") as raw:
        raw.write(csv_header(spool.columns))
        if spool._csv_stale:
            with io.TextIOWrapper(raw, encoding="utf-8", newline="") as out:
                writer = csv.writer(out)
                for line in spool.json_records():
                    row = json.loads(line)
                    writer.writerow([_csv_value(row.get(c)) for c in spool.columns])
            return
        if spool._csv_text is not None:
            spool._csv_text.flush()
        spool.csv_file.seek(0)
        shutil.copyfileobj(spool.csv_file, raw, SPOOL_IN_MEMORY)


def spool_for(spools: Parts, key: tuple[str, str, str]) -> _Spool:
    """The spool of one (system, dataset, category), opened on first use."""
    spool = spools.get(key)
    if spool is None:
        spool = spools[key] = _Spool(*key)
    if not isinstance(spool, _Spool):
        raise ValueError(f"{key}: records read one by one for a part that was exported")
    return spool


def _part_opener(spools: Parts, system: str, portability: bool) -> PartOpener:
    """Where a connector's `export` writes each (dataset, category): a part of its own, or
    nowhere for derived or inferred data when the package is for portability."""
    def part(dataset: str, category: str, origin_of: Mapping[str, Origin]) -> tuple[CopiedPart, list[str]] | None:
        columns = [c for c, origin in origin_of.items() if not portability or origin in PORTABLE_ORIGINS]
        if not columns:
            return None
        if (system, dataset, category) in spools:  # its files are written as they come: once
            raise ValueError(f"system {system!r} exported dataset {dataset!r}, category {category!r} twice")
        copied = spools[(system, dataset, category)] = CopiedPart(columns, {c: origin_of[c] for c in columns})
        return copied, columns

    return part


def portable(record: AccessRecord) -> dict[str, Any]:
    """The fields of a record a portability package holds: provided and observed (Art. 20(1),
    WP242 rev.01), never derived or inferred."""
    return {c: v for c, v in record.fields.items() if record.origin_of[c] in PORTABLE_ORIGINS}


def filled(spools: Parts) -> Parts:
    """The spools that received records (an `export` opens one for every category it reads)."""
    for key in [k for k, spool in spools.items() if not spool.count]:
        spools.pop(key).close()
    return spools


def _write_archive(writer: EncryptedWriter, spools: Parts, summary: str,
                   uploaded: ProcessorFiles, store: BlobStore, secret: bytes) -> None:
    with zipfile.ZipFile(writer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=LEVEL) as archive:
        for key, spool in sorted(spools.items()):
            spool.write_into(archive, *part_files(*key))
            spool.close()
        write_processor_files(archive, uploaded, store, secret)
        archive.writestr("summary.html", summary)
    writer.close()


class PackageActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    async def _with_held_records(self, subject: Subject) -> Subject:
        """Records kept under a hold are minimised and no longer match the subject's identities;
        they are still the subject's data, found by key."""
        return replace(subject, held=await kept_records(
            self.ctx.pool, subject_hash=subject_hash(self.ctx.secret, subject.email)))

    @activity.defn(name="build_package")
    async def build_package(self, plan: Plan) -> PackageInfo:
        ctx = self.ctx
        row = await get_request(ctx.pool, plan.request_id)
        if row is None:
            raise LookupError(f"request {plan.request_id} not found")
        # The package's row and its `package.built` event are written in one transaction.
        existing = await ctx.pool.fetchrow(
            """SELECT p.*, e.data AS built FROM packages p
               LEFT JOIN audit_events e ON e.event_key = $3
               WHERE p.request_id = $1 AND p.kind = $2""",
            plan.request_id, plan.request_type, _built_key(plan.request_id))
        if existing:  # built by an earlier attempt that died before reporting
            return await _built_before(ctx, plan, existing)
        policy = (await ctx.policy(plan.policy_version)).policy
        portability = plan.request_type == "portability"
        # Closed unanswered (a retry after the close; the close itself stops `_gather`): nothing is read.
        closed = row["closed_at"] is not None and row["status"] != "completed"
        subject = replace(await self._with_held_records(subject_of(row)), closed=closed)
        package_id = str(uuid.uuid5(uuid.UUID(plan.request_id), plan.request_type))

        async with heartbeating():
            started = time.monotonic()
            spools: Parts = {}
            try:
                failed = {} if closed else await self._gather(plan, subject, portability, spools)
            except ClosedMeanwhile:
                closed = True
            if closed:
                for spool in spools.values():
                    spool.close()
                return await self._called_off(plan, subject, package_id)
            if failed:
                for spool in spools.values():
                    spool.close()
                await self._needs_attention(plan, row, failed)
                # Retried (backing off to every 5 minutes) until the system can be read again.
                raise RuntimeError("the package cannot be built: " + "; ".join(failed.values()))
            await self._attention_resolved(plan)
            uploaded = await processor_files(ctx.pool, plan)
            info = await self._write(plan, row, policy, filled(spools), package_id, uploaded)
            package_built(plan.request_type, time.monotonic() - started, info.size_bytes)
            return info

    async def _gather(self, plan: Plan, subject: Subject, portability: bool,
                      spools: Parts) -> dict[str, str]:
        """Every system's records for the package, spooled per (system, dataset, category); the
        systems that refused to be read, with their message."""
        failed: dict[str, str] = {}
        for task in plan.tasks:
            try:
                async with open_connector(self.ctx, plan.policy_version, task.system) as connector:
                    if await connector.export(subject, _part_opener(spools, task.system, portability)):
                        continue
                    async for record in connector.access(subject):
                        fields = portable(record) if portability else record.fields
                        if fields:
                            spool_for(spools, (task.system, record.dataset, record.category)).add(
                                fields, record.origin_of)
            except PermanentConnectorError as exc:
                failed[task.system] = str(exc)
        return failed

    async def _called_off(self, plan: Plan, subject: Subject, package_id: str) -> PackageInfo:
        """The request was closed unanswered before the package was built: it is not built, and each
        job a processor was asked for is called off there (`call_off_access`: OpenDSR's, as an
        erasure's at the close), its answer on the system's task (the request's Results, the evidence
        pack) beside the call-off's event. Before, the package waited for the processor's export and
        was built, for a request the subject had withdrawn, and the job stayed asked."""
        for task in plan.tasks:
            async with open_connector(self.ctx, plan.policy_version, task.system) as connector:
                outcome = await connector.call_off_access(replace(subject, closed=True), plan.request_type)
            if outcome is not None:
                await store_task_result(self.ctx, plan.request_id, TaskResult(
                    system=task.system, action=plan.request_type, status=outcome.status, found=outcome.found,
                    changed=outcome.changed, external_id=outcome.external_id, message=outcome.message))
        return PackageInfo(package_id=package_id, kind=plan.request_type, records=0, size_bytes=0, stopped=True)

    async def _needs_attention(self, plan: Plan, row: Any, failed: dict[str, str]) -> None:
        """A system that cannot be read (credentials, permissions, configuration) holds the
        package back: its task shows as needing attention in the queue and on the request page,
        and staff get one alert per system, as for a failed fan-out task."""
        days_left = await self.ctx.days_left(row, datetime.now(UTC))
        for system, message in failed.items():
            await store_task_result(self.ctx, plan.request_id, TaskResult(
                system=system, action=plan.request_type, status="needs_attention", message=message))
            await deliver_letter(self.ctx, LetterJob(
                request_id=plan.request_id, purpose="staff_alert", key=f"package-{system}", to_staff=True,
                params={"kind": "needs_attention", "days_left": days_left,
                        "facts": {"what": "package_unreadable", "request_type": plan.request_type,
                                  "system": system, "message": message}}))

    async def _attention_resolved(self, plan: Plan) -> None:
        """The systems an earlier attempt could not read have been read: their tasks are done,
        stored and audited as every task change is."""
        for system in await self.ctx.pool.fetch(
                """SELECT system FROM system_tasks
                   WHERE request_id = $1 AND action = $2 AND status = 'needs_attention'""",
                plan.request_id, plan.request_type):
            await store_task_result(self.ctx, plan.request_id, TaskResult(
                system=system["system"], action=plan.request_type, status="done"))

    async def _write(self, plan: Plan, row: Any, policy: Policy, spools: Parts,
                     package_id: str, uploaded: ProcessorFiles) -> PackageInfo:
        ctx = self.ctx
        # The summary speaks the subject's language, the policy's texts included.
        language = str(row["language"])
        told = (await ctx.policy(plan.policy_version)).in_language(language)
        summary = render_summary(told, spools, request_id=plan.request_id, kind=plan.request_type,
                                 generated_on=datetime.now(UTC).date(),
                                 regime=row["regime"], country=row["country"],
                                 processor_files=listed_files(uploaded, told),
                                 missing=missing_reasons(uploaded.missing, told, translations(language)),
                                 language=language)
        # Compressing is the long part for a large package: in a thread (zlib lets go of the GIL),
        # so the worker's other activities and the heartbeat carry on meanwhile. The package is
        # stored whole before its row names it (a retry writes the same key again).
        blob = ctx.storage.writer(package_key(package_id))
        try:
            await asyncio.to_thread(_write_archive, package_writer(blob, ctx.secret, package_id),
                                    spools, summary, uploaded, ctx.storage, ctx.secret)
            size = await blob.commit()
        finally:
            blob.discard()

        records = sum(s.count for s in spools.values())
        per_system: dict[str, int] = {}
        for (system, _, _), spool in spools.items():
            per_system[system] = per_system.get(system, 0) + spool.count
        async with ctx.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO packages (id, request_id, kind, path, size_bytes, records)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING""",
                package_id, plan.request_id, plan.request_type, blob.key, size, records,
            )
            await append_event(
                conn, event_key=_built_key(plan.request_id), request_id=plan.request_id,
                event_type="package.built", actor="workflow",
                data={"package_id": package_id, "records": records, "systems": per_system,
                      "processor_files": uploaded.counts(), "missing": uploaded.missing},
            )
        failpoint("package-built", plan.request_id)  # on record, and the workflow not yet told
        return PackageInfo(package_id=package_id, kind=plan.request_type, records=records,
                           size_bytes=size, systems=per_system, processor_files=uploaded.counts(),
                           missing=uploaded.missing)


def _built_key(request_id: str) -> str:
    return f"{request_id}:package"


async def _built_before(ctx: ActivityContext, plan: Plan, existing: asyncpg.Record) -> PackageInfo:
    """What the attempt that built the package would have reported, as it recorded it: the
    response letter lists the systems' copies and the processors' files from this. Before, a retry
    reported no systems, and the letter left out every "a copy of your data" line."""
    built = existing["built"]
    if built is None or "processor_files" not in built:  # recorded before the event said it all
        uploaded = await processor_files(ctx.pool, plan)
        built = {**(built or {}), "processor_files": uploaded.counts(), "missing": uploaded.missing}
    return PackageInfo(package_id=str(existing["id"]), kind=existing["kind"], records=existing["records"],
                       size_bytes=existing["size_bytes"], systems=built.get("systems", {}),
                       processor_files=built["processor_files"], missing=built["missing"])
