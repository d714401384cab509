"""Processors' uploaded exports in an access or portability package.

A processor without an API answers on its link's page (api/callbacks/processor_uploads.py); here its files
are copied, decrypted only in memory, into the package under its system's folder
(`<system>/files/<name>`), next to what the other systems' connectors exported. A processor that
did not send its export (staff resolved its task without one, or the request began before
processors were asked) is named as missing, with the reason, in the package's summary and in the
response letter: the package never passes for complete when it is not.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from activities.processor_csv import write_csv, write_zip
from dsrflow.i18n import ENGLISH, N_, Translator
from dsrflow.infra.storage import BlobStore
from dsrflow.stores.export_store import read_export
from policy.model import Policy
from schemas.workflow import ASKED_BY_EMAIL, Plan

# Why a processor's data is not in the package, as the subject reads it after the processor's name.
MISSING_REASONS = {
    "not_provided": N_("this processor of ours did not send us the copy of your data it holds, so we could "
                       "not include it"),
    "not_asked": N_("we did not obtain from this processor of ours the copy of your data it holds, so we "
                    "could not include it"),
}


@dataclass
class ProcessorFiles:
    """The uploaded files per system, and the systems asked by e-mail whose export is missing."""

    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # system -> MISSING_REASONS key

    def counts(self) -> dict[str, int]:
        return {system: len(rows) for system, rows in self.files.items()}


async def processor_files(pool: Any, plan: Plan) -> ProcessorFiles:
    asked = [task.system for task in plan.tasks if task.connector == ASKED_BY_EMAIL]
    found = ProcessorFiles()
    if not asked:
        return found
    rows = await pool.fetch(
        """SELECT m.system, m.confirmed_at, e.id, e.filename, e.media_type, e.size_bytes, e.sha256, e.path
             FROM manual_tasks m LEFT JOIN processor_exports e ON e.external_id = m.external_id AND e.purged_at IS NULL
            WHERE m.request_id = $1 AND m.action = 'access' AND m.system = ANY($2::text[])
            ORDER BY m.system, e.filename""",
        plan.request_id, asked)
    for system in asked:
        mine = [r for r in rows if r["system"] == system]
        if not mine:
            found.missing[system] = "not_asked"
        elif mine[0]["confirmed_at"] is None:
            found.missing[system] = "not_provided"
        else:  # answered: its files, or none when it told us it holds no data
            found.files[system] = [dict(r) for r in mine if r["id"] is not None]
    return found


def listed_files(found: ProcessorFiles, policy: Policy) -> list[dict[str, Any]]:
    """The summary's rows describing each uploaded file, under the name it has in the archive."""
    return [{"system": system,
             "system_label": policy.system_label(system),
             "file": f"{system}/files/{row['filename']}", "media_type": row["media_type"],
             "size_bytes": row["size_bytes"], "sha256": row["sha256"]}
            for system, rows in sorted(found.files.items()) for row in rows]


# What a CSV, and a ZIP archive of files, are copied by (activities/processor_csv.py): their
# formula cells neutralised. The media types are the upload check's (api/callbacks/export_files.py).
_COPIED_BY = {"text/csv": write_csv, "application/zip": write_zip}


def _write_as_is(chunks: Iterable[bytes], out: IO[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)


def write_processor_files(archive: zipfile.ZipFile, found: ProcessorFiles, store: BlobStore, secret: bytes) -> None:
    """Copy each uploaded file, decrypted, into the archive (names as in `listed_files`)."""
    for system, rows in sorted(found.files.items()):
        for row in rows:
            with archive.open(f"{system}/files/{row['filename']}", "w") as out:
                copy = _COPIED_BY.get(row["media_type"], _write_as_is)
                copy(read_export(store, row["path"], secret, str(row["id"])), out)


def missing_reasons(missing: dict[str, str], policy: Policy, t: Translator = ENGLISH) -> list[dict[str, str]]:
    """What the subject reads about each missing system: its name and why."""
    out = []
    for system, code in sorted(missing.items()):
        label = policy.system_label(system)
        out.append({"system": label, "reason": t.gettext(MISSING_REASONS.get(code, MISSING_REASONS["not_asked"]))})
    return out


__all__ = ["MISSING_REASONS", "ProcessorFiles", "listed_files", "missing_reasons", "processor_files",
           "write_processor_files"]
