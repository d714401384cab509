"""The request page's Systems table: each planned system with its latest result, the workflow's
live one, else the stored one, else what the access package read from it (api/console/request_context.py
builds the page's context with it)."""

from __future__ import annotations

from typing import Any


def _package_reads(pack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the access package took from each system, once it is built (its audit event): an
    access request has no task per system, the package reads them all at once."""
    built = next((e["data"] or {} for e in pack["audit"]["events"] if e["event_type"] == "package.built"), None)
    if built is None:
        return {}
    reads: dict[str, dict[str, Any]] = {
        s: {"status": "read into the package", "found": n} for s, n in (built.get("systems") or {}).items()}
    for system, files in (built.get("processor_files") or {}).items():
        reads[system] = {"status": "export received", "found": files, "message": f"{files} file(s) from the processor"}
    for system, reason in (built.get("missing") or {}).items():
        reads[system] = {"status": "no export", "message": str(reason).replace("_", " ")}
    return reads


def task_rows(pack: dict[str, Any], live, labels: dict[str, str]) -> list[dict[str, Any]]:
    """Every planned system with its latest result: the workflow's live one, else the stored one,
    else what the package read from it; "waiting" only while nothing has been asked of it."""
    stored = {t["system"]: t for t in pack["results"]}
    current = {r.system: _live(r, stored.get(r.system)) for r in live.results} if live else {}
    # What the plan asks of each system and the Art. 19 recipient it tells (a stored result does
    # not keep the recipient), shown before any result.
    planned = {t["system"]: {"label": t["label"], "action": t["action"], "recipient": t.get("recipient")}
               for t in (pack["plan"] or {}).get("tasks", [])}
    systems = list(planned) + sorted((set(stored) | set(current)) - set(planned))
    reads = _package_reads(pack)
    # A system the built package did not name held nothing for the subject.
    nothing = {"status": "read into the package", "found": 0} if reads else {}
    # A result for a system the plan does not name (its plan not yet stored, a plan of an older
    # shape) tells no recipient the page could name: the page showed a 500 instead.
    return [{"label": labels.get(s, s), "status": "waiting", "system": s, "recipient": None, **planned.get(s, {}),
             **reads.get(s, nothing), **stored.get(s, {}), **current.get(s, {})} for s in systems]


def _live(result: Any, stored: dict[str, Any] | None) -> dict[str, Any]:
    """The workflow's live result of a task, with the note on record of the same attempt: the request's
    workflow knows a task running on its own (a child workflow) as pending only, while the task
    records why it waits (a SaaS down, tried again by itself; a processor's e-mail not yet sent)."""
    shown = result.model_dump()
    if (shown["message"] is None and stored and stored.get("message")
            and (stored.get("status"), stored.get("attempt")) == (shown["status"], shown["attempt"])):
        shown["message"] = stored["message"]
    return shown
